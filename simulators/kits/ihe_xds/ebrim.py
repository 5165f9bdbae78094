"""The XDS.b metadata model (ebRIM 3.0): parse a ``SubmitObjectsRequest``, write a registry's ExtrinsicObject.

IHE ITI TF-3 4.2 maps XDS attributes onto ebRIM: Slots (creationTime, hash...), Classifications with a
classificationScheme UUID (classCode, typeCode...; ``nodeRepresentation`` = code, slot ``codingScheme`` =
its system, Name = display), ExternalIdentifiers (patientId, uniqueId) and Associations (HasMember, RPLC,
signs, UpdateAvailabilityStatus). Entries are frozen, slotted and hold tuples so that a registry can keep
100,000 of them; whatever the model does not name is kept in ``other_*`` fields so nothing is lost.

Only structural breakage raises :class:`MetadataError` here (no id, a classification without scheme, a
duplicate id...). Whether values are right is judged by :mod:`.metadata_rules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

from lxml import etree

from esante.simulators.kits.ihe_xds.ebrs import RegistryError

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
_R = f"{{{RIM}}}"

STABLE_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"

# classificationScheme UUIDs (ITI TF-3 Table 4.2.5-1).
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
CODED_SCHEMES = {  # DocumentEntry field -> scheme
    "class_code": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "type_code": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "format_code": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "healthcare_facility_type_code": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practice_setting_code": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
}
CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

#: DocumentEntry slots the model names (slot name -> field); all single-valued but sourcePatientInfo.
ENTRY_SLOTS = {
    "creationTime": "creation_time", "hash": "hash", "languageCode": "language_code",
    "legalAuthenticator": "legal_authenticator", "repositoryUniqueId": "repository_unique_id",
    "serviceStartTime": "service_start_time", "serviceStopTime": "service_stop_time", "size": "size",
    "sourcePatientId": "source_patient_id",
}

Slots = tuple[tuple[str, tuple[str, ...]], ...]
_T = TypeVar("_T")


class MetadataError(RegistryError):
    """Metadata too broken to read: a registry answers ``XDSRegistryMetadataError``, saying where."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__("XDSRegistryMetadataError", message, location)


@dataclass(frozen=True, slots=True)
class Coded:
    code: str
    scheme: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class Author:
    person: str | None = None
    institutions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Classification:
    """A classification the model does not name, kept whole."""

    scheme: str
    node: str
    representation: str | None
    slots: Slots = ()
    name: str = ""


@dataclass(frozen=True, slots=True)
class ExternalId:
    scheme: str
    value: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    id: str
    unique_id: str | None = None
    patient_id: str | None = None
    lid: str | None = None
    mime_type: str | None = None
    object_type: str = STABLE_ENTRY
    status: str | None = None
    title: str | None = None
    comments: str | None = None
    class_code: Coded | None = None
    type_code: Coded | None = None
    format_code: Coded | None = None
    healthcare_facility_type_code: Coded | None = None
    practice_setting_code: Coded | None = None
    confidentiality_codes: tuple[Coded, ...] = ()
    event_codes: tuple[Coded, ...] = ()
    authors: tuple[Author, ...] = ()
    creation_time: str | None = None
    service_start_time: str | None = None
    service_stop_time: str | None = None
    language_code: str | None = None
    hash: str | None = None
    size: str | None = None
    repository_unique_id: str | None = None
    legal_authenticator: str | None = None
    source_patient_id: str | None = None
    source_patient_info: tuple[str, ...] = ()
    version_name: str | None = None
    previous_version: str | None = None
    other_slots: Slots = ()
    other_classifications: tuple[Classification, ...] = ()
    other_external_ids: tuple[ExternalId, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    id: str
    unique_id: str | None = None
    source_id: str | None = None
    patient_id: str | None = None
    submission_time: str | None = None
    title: str | None = None
    comments: str | None = None
    content_type_code: Coded | None = None
    authors: tuple[Author, ...] = ()
    other_slots: Slots = ()
    other_classifications: tuple[Classification, ...] = ()
    other_external_ids: tuple[ExternalId, ...] = ()


@dataclass(frozen=True, slots=True)
class Association:
    id: str
    type: str
    source: str
    target: str
    slots: Slots = ()

    def slot(self, name: str) -> str | None:
        return _first(self.slots, name)


@dataclass(frozen=True, slots=True)
class Submission:
    submission_set: SubmissionSet | None
    documents: tuple[DocumentEntry, ...] = ()
    associations: tuple[Association, ...] = ()

    def document(self, entry_id: str) -> DocumentEntry | None:
        return next((doc for doc in self.documents if doc.id == entry_id), None)


def _first(slots: Slots, name: str) -> str | None:
    for slot_name, values in slots:
        if slot_name == name:
            return values[0] if values else None
    return None


# ---------------------------------------------------------------------------------------------- parsing


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _slots_of(element: etree._Element) -> Slots:
    return tuple((slot.get("name", ""), tuple(value.text or "" for value in slot.iter(f"{_R}Value")))
                 for slot in element.iterchildren(f"{_R}Slot"))


def _localized(element: etree._Element, child: str) -> str | None:
    holder = element.find(f"{_R}{child}")
    if holder is None:
        return None
    string = holder.find(f"{_R}LocalizedString")
    return None if string is None else string.get("value")


# A registry holds 100,000 entries that repeat the same few codes and authors: equal values are shared
# (bounded caches, so hostile metadata with endless distinct codes cannot grow them).
_shared_coded = lru_cache(maxsize=4096)(Coded)
_shared_author = lru_cache(maxsize=4096)(Author)
_SHARED_SLOTS = {"languageCode", "legalAuthenticator", "repositoryUniqueId", "sourcePatientId"}


@lru_cache(maxsize=16384)
def _shared(value: _T) -> _T:
    """The first seen value equal to ``value`` (patient ids, authenticators... repeat across entries)."""
    return value


def _author(slots: Slots) -> Author:
    values = dict(slots)
    person = values.get("authorPerson", ())
    return _shared_author(person[0] if person else None, values.get("authorInstitution", ()),
                          values.get("authorRole", ()), values.get("authorSpecialty", ()),
                          values.get("authorTelecommunication", ()))


def _coded(node: etree._Element, where: str) -> Coded:
    scheme = _first(_slots_of(node), "codingScheme")
    code = node.get("nodeRepresentation")
    if not code or not scheme:
        raise MetadataError(where,
                            "a coded classification needs a nodeRepresentation and a codingScheme slot")
    return _shared_coded(code, scheme, _localized(node, "Name") or "")


def _require(element: etree._Element, attribute: str, where: str) -> str:
    value = element.get(attribute)
    if not value:
        raise MetadataError(where, f"the {attribute} attribute is missing or empty")
    return value


class _Reader:
    """Sorts the children of one registry object into the model's fields."""

    def __init__(self, element: etree._Element, kind: str) -> None:
        self.id = _require(element, "id", kind)
        self.where = f"{kind} {self.id}"
        self.slots = _slots_of(element)
        self.coded: dict[str, list[Coded]] = {}
        self.authors: list[Author] = []
        self.external: dict[str, str] = {}
        self.other_classifications: list[Classification] = []
        self.other_external: list[ExternalId] = []
        for child in element.iterchildren(f"{_R}Classification"):
            self._classification(child)
        for child in element.iterchildren(f"{_R}ExternalIdentifier"):
            scheme = _require(child, "identificationScheme", f"{self.where} ExternalIdentifier")
            value = _require(child, "value", f"{self.where} ExternalIdentifier {scheme}")
            if scheme in self.external:
                raise MetadataError(self.where, f"ExternalIdentifier {scheme} twice")
            self.external[scheme] = value
            self.other_external.append(ExternalId(scheme, value, _localized(child, "Name") or ""))

    def _classification(self, node: etree._Element) -> None:
        scheme = node.get("classificationScheme", "")
        if not scheme and not node.get("classificationNode"):
            raise MetadataError(f"{self.where} Classification",
                                "neither classificationScheme nor classificationNode")
        if node.get("classificationNode") == SUBMISSION_SET_NODE:
            return  # what makes a RegistryPackage the SubmissionSet: implied by the model
        if scheme in (DE_AUTHOR, SS_AUTHOR):
            self.authors.append(_author(_slots_of(node)))
        elif scheme in _KNOWN_CODED:
            self.coded.setdefault(scheme, []).append(_coded(node, f"{self.where} Classification {scheme}"))
        else:
            self.other_classifications.append(Classification(
                scheme, node.get("classificationNode", ""), node.get("nodeRepresentation"), _slots_of(node),
                _localized(node, "Name") or ""))

    def single(self, scheme: str) -> Coded | None:
        codes = self.coded.get(scheme, [])
        if len(codes) > 1:
            raise MetadataError(self.where, f"classification {scheme} occurs twice")
        return codes[0] if codes else None

    def take_external(self, *schemes: str) -> list[str | None]:
        kept = [self.external.get(scheme) for scheme in schemes]
        self.other_external = [ext for ext in self.other_external if ext.scheme not in schemes]
        return kept


_KNOWN_CODED = {*CODED_SCHEMES.values(), CONFIDENTIALITY, EVENT_CODE, CONTENT_TYPE}


def parse_document_entry(element: etree._Element) -> DocumentEntry:
    """One ``rim:ExtrinsicObject`` as a DocumentEntry."""
    reader = _Reader(element, "ExtrinsicObject")
    named: dict[str, str | None] = {}
    others = []
    source_patient_info: tuple[str, ...] = ()
    previous_version = None
    for name, values in reader.slots:
        if name in ENTRY_SLOTS and ENTRY_SLOTS[name] not in named:
            value = values[0] if values else None
            named[ENTRY_SLOTS[name]] = _shared(value) if name in _SHARED_SLOTS else value
        elif name == "sourcePatientInfo":
            source_patient_info = _shared(values)
        elif name == "PreviousVersion":
            previous_version = values[0] if values else None
        else:
            others.append((name, values))
    unique_id, patient_id = reader.take_external(DE_UNIQUE_ID, DE_PATIENT_ID)
    version = element.find(f"{_R}VersionInfo")
    lid = element.get("lid")
    return DocumentEntry(
        id=reader.id, unique_id=unique_id, patient_id=_shared(patient_id),
        lid=reader.id if lid == reader.id else lid, mime_type=_shared(element.get("mimeType")),
        object_type=_shared(element.get("objectType") or STABLE_ENTRY), status=_shared(element.get("status")),
        title=_localized(element, "Name"),
        comments=_localized(element, "Description"),
        **{name: reader.single(scheme) for name, scheme in CODED_SCHEMES.items()},
        confidentiality_codes=tuple(reader.coded.get(CONFIDENTIALITY, ())),
        event_codes=tuple(reader.coded.get(EVENT_CODE, ())), authors=tuple(reader.authors),
        **named, source_patient_info=source_patient_info,
        version_name=None if version is None else _shared(version.get("versionName")),
        previous_version=previous_version, other_slots=tuple(others),
        other_classifications=tuple(reader.other_classifications),
        other_external_ids=tuple(reader.other_external))


def _parse_submission_set(element: etree._Element) -> SubmissionSet:
    reader = _Reader(element, "RegistryPackage")
    unique_id, source_id, patient_id = reader.take_external(SS_UNIQUE_ID, SS_SOURCE_ID, SS_PATIENT_ID)
    return SubmissionSet(
        id=reader.id, unique_id=unique_id, source_id=source_id, patient_id=patient_id,
        submission_time=_first(reader.slots, "submissionTime"), title=_localized(element, "Name"),
        comments=_localized(element, "Description"), content_type_code=reader.single(CONTENT_TYPE),
        authors=tuple(reader.authors),
        other_slots=tuple(slot for slot in reader.slots if slot[0] != "submissionTime"),
        other_classifications=tuple(reader.other_classifications),
        other_external_ids=tuple(reader.other_external))


def _parse_association(element: etree._Element) -> Association:
    where = f"Association {element.get('id') or '(no id)'}"
    return Association(_require(element, "id", "Association"), _require(element, "associationType", where),
                       _require(element, "sourceObject", where), _require(element, "targetObject", where),
                       _slots_of(element))


def _is_submission_set(package: etree._Element, classifications: Iterable[etree._Element]) -> bool:
    return any(node.get("classificationNode") == SUBMISSION_SET_NODE
               and node.get("classifiedObject", package.get("id")) == package.get("id")
               for node in classifications)


def parse_submission(element: etree._Element) -> Submission:
    """A ``lcm:SubmitObjectsRequest`` (ITI-41 and ITI-57 bodies) as a :class:`Submission`."""
    if _local(element) != "SubmitObjectsRequest":
        raise MetadataError(_local(element) or "body",
                            "expected an lcm:SubmitObjectsRequest")
    objects = element.find(f"{_R}RegistryObjectList")
    if objects is None:
        raise MetadataError("SubmitObjectsRequest", "no rim:RegistryObjectList")
    packages, documents, associations, loose = [], [], [], []
    for child in objects:
        kind = _local(child)
        if kind == "RegistryPackage":
            packages.append(child)
        elif kind == "ExtrinsicObject":
            documents.append(parse_document_entry(child))
        elif kind == "Association":
            associations.append(_parse_association(child))
        elif kind == "Classification":
            loose.append(child)
        elif kind and kind != "ObjectRef":  # an ObjectRef only names an object already in the registry
            raise MetadataError(f"RegistryObjectList {kind}",
                                f"unsupported registry object {kind}")
    submission = Submission(_submission_set(packages, loose), tuple(documents), tuple(associations))
    _check_unique_ids(submission)
    return submission


def _submission_set(packages: list[etree._Element], loose: list[etree._Element]) -> SubmissionSet | None:
    sets = [p for p in packages if _is_submission_set(p, [*p.iterchildren(f"{_R}Classification"), *loose])]
    if len(packages) != len(sets):
        raise MetadataError("RegistryPackage",
                            "folders are not supported; every RegistryPackage must be the SubmissionSet")
    if len(sets) > 1:
        raise MetadataError("RegistryPackage", "more than one SubmissionSet")
    return _parse_submission_set(sets[0]) if sets else None


def _check_unique_ids(submission: Submission) -> None:
    seen: set[str] = set()
    ids = [doc.id for doc in submission.documents] + [a.id for a in submission.associations]
    if submission.submission_set is not None:
        ids.append(submission.submission_set.id)
    for object_id in ids:
        if object_id in seen:
            raise MetadataError(object_id, "the same id is used by two objects")
        seen.add(object_id)


# ---------------------------------------------------------------------------------------------- writing


def _sub(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{_R}{tag}", attributes)


def _write_slot(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    value_list = _sub(_sub(parent, "Slot", name=name), "ValueList")
    for value in values:
        _sub(value_list, "Value").text = value


def _write_localized(parent: etree._Element, tag: str, value: str | None) -> None:
    if value is not None:
        string = _sub(_sub(parent, tag), "LocalizedString", value=value)
        string.set("{http://www.w3.org/XML/1998/namespace}lang", "FR")
        string.set("charset", "UTF8")


class _Writer:
    """Numbers the classification and identifier ids of one object: ``<object id>:<n>``."""

    def __init__(self, element: etree._Element, object_id: str) -> None:
        self.element, self.object_id, self.count = element, object_id, 0

    def _next_id(self) -> str:
        self.count += 1
        return f"{self.object_id}:{self.count}"

    def classification(self, scheme: str, representation: str | None, slots: Iterable[tuple[str, Iterable[str]]],
                       name: str = "", node: str = "") -> None:
        attributes = {"classificationScheme": scheme, "classifiedObject": self.object_id, "id": self._next_id()}
        if node:
            attributes["classificationNode"] = node
        if representation is not None:
            attributes["nodeRepresentation"] = representation
        if not scheme:
            del attributes["classificationScheme"]
        classification = _sub(self.element, "Classification", **attributes)
        for slot_name, values in slots:
            _write_slot(classification, slot_name, values)
        if name:
            _write_localized(classification, "Name", name)

    def coded(self, scheme: str, coded: Coded | None) -> None:
        if coded is not None:
            self.classification(scheme, coded.code, [("codingScheme", [coded.scheme])], coded.display)

    def authors(self, scheme: str, authors: Iterable[Author]) -> None:
        for author in authors:
            slots = [("authorPerson", [author.person] if author.person else []),
                     ("authorInstitution", author.institutions), ("authorRole", author.roles),
                     ("authorSpecialty", author.specialties), ("authorTelecommunication", author.telecoms)]
            self.classification(scheme, "", [slot for slot in slots if slot[1]])

    def others(self, classifications: Iterable[Classification]) -> None:
        for other in classifications:
            self.classification(other.scheme, other.representation, other.slots, other.name, other.node)

    def external(self, scheme: str, value: str | None, name: str) -> None:
        if value is not None:
            identifier = _sub(self.element, "ExternalIdentifier", id=self._next_id(), identificationScheme=scheme,
                              registryObject=self.object_id, value=value)
            _write_localized(identifier, "Name", name)


def _entry_slots(entry: DocumentEntry) -> list[tuple[str, tuple[str, ...]]]:
    slots = [(name, (value,)) for name, attr in ENTRY_SLOTS.items()
             if (value := getattr(entry, attr)) is not None]
    if entry.source_patient_info:
        slots.append(("sourcePatientInfo", entry.source_patient_info))
    if entry.previous_version is not None:
        slots.append(("PreviousVersion", (entry.previous_version,)))
    return sorted([*slots, *entry.other_slots], key=lambda slot: slot[0])


def document_entry_element(entry: DocumentEntry) -> etree._Element:
    """The ExtrinsicObject of ``entry`` as a registry returns it in an ITI-18 LeafClass response."""
    attributes = {"id": entry.id, "isOpaque": "false", "objectType": entry.object_type}
    if entry.lid is not None:
        attributes["lid"] = entry.lid
    if entry.mime_type is not None:
        attributes["mimeType"] = entry.mime_type
    if entry.status is not None:
        attributes["status"] = entry.status
    element = etree.Element(f"{_R}ExtrinsicObject", attributes, nsmap={"rim": RIM})
    for name, values in _entry_slots(entry):
        _write_slot(element, name, values)
    _write_localized(element, "Name", entry.title)
    _write_localized(element, "Description", entry.comments)
    if entry.version_name is not None:
        _sub(element, "VersionInfo", versionName=entry.version_name)
    writer = _Writer(element, entry.id)
    writer.authors(DE_AUTHOR, entry.authors)
    for name, scheme in CODED_SCHEMES.items():
        writer.coded(scheme, getattr(entry, name))
    for coded in entry.confidentiality_codes:
        writer.coded(CONFIDENTIALITY, coded)
    for coded in entry.event_codes:
        writer.coded(EVENT_CODE, coded)
    writer.others(entry.other_classifications)
    writer.external(DE_PATIENT_ID, entry.patient_id, "XDSDocumentEntry.patientId")
    writer.external(DE_UNIQUE_ID, entry.unique_id, "XDSDocumentEntry.uniqueId")
    for other in entry.other_external_ids:
        writer.external(other.scheme, other.value, other.name)
    return element
