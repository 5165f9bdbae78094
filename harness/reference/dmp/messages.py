"""The bodies of the reference candidate's DMPi requests, and how it reads the DMP's answers.

HL7v3 patient transactions (TD0.2 existence test, TD1.3a administrative data, TD0.5 search without INS),
the habilitation service (TD0.3), and IHE XDS.b (ITI-18 FindDocuments / GetDocuments, ITI-43 retrieve, ITI-57
metadata update: a new version of an entry, or an availability status change). Built with lxml from plain
values; answers are read by namespace and local name. The candidate's own code: the URNs and OIDs below are
public protocol constants, copied, not imported from the simulator.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HABILITATIONS = "urn:si-dmp-habilitations"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"

OID_DMP = "1.2.250.1.213.4.1.1.1"
DMP_REPOSITORY = "1.2.250.1.213.4.1.1.1.2"
OID_INTERACTION = "2.16.840.1.113883.1.6"
OID_REASON = "1.2.250.1.213.1.1.4.11"
OID_SOFTWARE = "1.2.250.1.999.7"  # the candidate's own OID arc (device id, message ids)
KEYWORD_AUTHORISATION, KEYWORD_TREATING_DOCTOR = "AUTORISATION", "STATUT_MT"
REASONS = {"TEST_EXST": "Test d'existence de dossier",
           "CNSLT_DATA": "Consultation des données de gestion du dossier"}

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
STATUS_URNS = {
    "approved": "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    "archived": "urn:asip:ci-sis:2010:StatusType:Archived",
    "deprecated": "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated",
    "deleted": "urn:asip:ci-sis:2010:StatusType:Deleted",
}
STATUS_NAMES = {urn: name for name, urn in STATUS_URNS.items()}
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
CLASS_SCHEME = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
SIGNATURE_CLASS = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"  # IHE DSG: the feed's signature document
CONFIDENTIALITY_SCHEME = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DMP_CONFIDENTIALITY_OID = "1.2.250.1.213.1.1.4.13"
CONFIDENTIALITY_NAMES = {"MASQUE_PS": "Masqué aux professionnels de santé",
                         "INVISIBLE_PATIENT": "Non visible par le patient"}
UNIQUE_ID_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_IDENTIFIERS = (("urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", "XDSSubmissionSet.patientId"),
                  ("urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "XDSSubmissionSet.sourceId"),
                  ("urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", "XDSSubmissionSet.uniqueId"))
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
UPDATE_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
SOURCE_ID = "1.2.250.1.999.7.1"


class DmpRefusal(Exception):
    """The DMP refused in the transaction's own form: HL7v3 ``AE``, a status other than ``DMPOk``, an XDS
    ``Failure``. ``code`` is the DMP's code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code, self.message = code, message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _find(root: etree._Element, *path: str) -> etree._Element | None:
    """The first descendant path by local names (prefixes and default namespaces vary between answers)."""
    current = [root]
    for name in path:
        current = [c for parent in current for c in parent if _local(c) == name]
        if not current:
            return None
    return current[0]


def _find_all(root: etree._Element, name: str) -> list[etree._Element]:
    return [e for e in root.iter() if _local(e) == name]


def patient_cx(nir: str, key: str, oid: str) -> str:
    return f"{nir}{key}^^^&{oid}&ISO^NH"


# -- HL7v3 ---------------------------------------------------------------------------------------------------
def _hl7_message(interaction: str, software: str) -> etree._Element:
    msg = etree.Element(f"{{{HL7}}}{interaction}", ITSVersion="XML_1.0", nsmap={None: HL7})
    _sub(msg, HL7, "id", root=f"{OID_SOFTWARE}.1", extension=str(uuid.uuid4()))
    _sub(msg, HL7, "creationTime", value=_now())
    _sub(msg, HL7, "interactionId", root=OID_INTERACTION, extension=interaction)
    _sub(msg, HL7, "processingCode", code="P")
    _sub(msg, HL7, "processingModeCode", code="T")
    _sub(msg, HL7, "acceptAckCode", code="AL")
    for role, device_id, name in (("receiver", OID_DMP, "DMP"), ("sender", OID_SOFTWARE, software)):
        device = _sub(_sub(msg, HL7, role, typeCode="RCV" if role == "receiver" else "SND"), HL7, "device",
                      classCode="DEV", determinerCode="INSTANCE")
        _sub(device, HL7, "id", root=device_id)
        _sub(device, HL7, "softwareName", name)
    return msg


def _query(control: etree._Element) -> etree._Element:
    query = _sub(control, HL7, "queryByParameter")
    _sub(query, HL7, "queryId", root=f"{OID_SOFTWARE}.2", extension=str(uuid.uuid4()))
    _sub(query, HL7, "statusCode", code="new")
    return _sub(query, HL7, "parameterList")


def patient_query(reason: str, ins: str, ins_oid: str, software: str) -> etree._Element:
    """PRPA_IN201307UV02 with reasonCode TEST_EXST (TD0.2) or CNSLT_DATA (TD1.3a)."""
    msg = _hl7_message("PRPA_IN201307UV02", software)
    control = _sub(msg, HL7, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(control, HL7, "reasonCode", code=reason, codeSystem=OID_REASON, displayName=REASONS[reason])
    identifier = _sub(_query(control), HL7, "patientIdentifier")
    _sub(identifier, HL7, "value", root=ins_oid, extension=ins)
    _sub(identifier, HL7, "semanticsText", "Patient.id")
    return msg


def patient_search(family: str, given: str | None, birth_date: str | None, software: str) -> etree._Element:
    """PRPA_IN201305UV02 (PDQv3, TD0.5): the DMP's patients by name (and first name, birth date)."""
    msg = _hl7_message("PRPA_IN201305UV02", software)
    control = _sub(msg, HL7, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(control, HL7, "code", code="PRPA_TE201305UV02", codeSystem=OID_INTERACTION)
    params = _query(control)
    if birth_date:
        birth = _sub(params, HL7, "livingSubjectBirthTime")
        _sub(birth, HL7, "value", value=birth_date.replace("-", ""))
        _sub(birth, HL7, "semanticsText", "LivingSubject.birthTime")
    name = _sub(params, HL7, "livingSubjectName")
    value = _sub(name, HL7, "value")
    _sub(value, HL7, "family", family)
    if given:
        _sub(value, HL7, "given", given)
    _sub(name, HL7, "semanticsText", "LivingSubject.name")
    return msg


def _acknowledged(body: etree._Element) -> etree._Element | None:
    """The HL7 acknowledgement; DmpRefusal for typeCode AE/AR; the detail element (informational) if any.

    ``typeCode`` is an attribute in HL7v3 NE2009 (the DMP's patient messages) and an element in NE2008 (PDQ's
    PRPA_IN201306UV02, as the official TD0.5 answer writes it)."""
    ack = _find(body, "acknowledgement")
    if ack is None:
        raise DmpRefusal("DMPInvalidAnswer", f"{_local(body)} without an acknowledgement")
    type_element = _find(ack, "typeCode")
    type_code = ack.get("typeCode") or (type_element.get("code") if type_element is not None else None) or "AE"
    detail = _find(ack, "acknowledgementDetail")
    code = _find(detail, "code") if detail is not None else None
    if type_code != "AA":
        text = _find(detail, "text") if detail is not None else None
        raise DmpRefusal(code.get("code", type_code) if code is not None else type_code,
                         (text.text or "").strip() if text is not None else "")
    return code


@dataclass(frozen=True, slots=True)
class Existence:
    """What TD0.2 says: open / closed / absent, the caller's authorisation, whether they are the treating doctor."""

    status: str
    authorisation: str | None = None
    treating_doctor: bool | None = None


def read_existence(body: etree._Element) -> Existence:
    detail = _acknowledged(body)
    response = _find(body, "controlActProcess", "queryAck", "queryResponseCode")
    if response is not None and response.get("code") == "NF":
        return Existence("absent")
    found: dict[str, etree._Element] = {}
    for line in _find_all(body, "attentionLine"):
        keyword, value = _find(line, "keyWordText"), _find(line, "value")
        if keyword is not None and value is not None:
            found[keyword.get("code", "")] = value
    authorisation = found.get(KEYWORD_AUTHORISATION)
    treating = found.get(KEYWORD_TREATING_DOCTOR)
    status = _find(body, "controlActProcess", "subject", "registrationEvent", "subject1", "patient", "statusCode")
    closed = (detail is not None and detail.get("code") == "DMPClosed") or (
        status is not None and status.get("code") == "terminated")
    return Existence("closed" if closed else "open",
                     authorisation.get("code") if authorisation is not None else None,
                     treating.get("value") == "true" if treating is not None else None)


def read_admin(body: etree._Element) -> dict[str, bool]:
    """TD1.3a: the administrative observations (oppositions...) as code → boolean."""
    _acknowledged(body)
    out = {}
    for observation in _find_all(body, "administrativeObservation"):
        code, value = _find(observation, "code"), _find(observation, "value")
        if code is not None and value is not None:
            out[code.get("code", "")] = value.get("value") == "true"
    return out


@dataclass(frozen=True, slots=True)
class FoundPatient:
    ins: str | None
    family_name: str
    given_names: tuple[str, ...]
    birth_date: str | None


def read_patients(body: etree._Element) -> list[FoundPatient]:
    """TD0.5: the patients of a PRPA_IN201306UV02."""
    _acknowledged(body)
    found = []
    for patient in _find_all(body, "patient"):
        ids = [i for i in patient if _local(i) == "id"]
        ins = next((i.get("extension") for i in ids if (i.get("root") or "").startswith("1.2.250.1.213.1.4.")
                    and i.get("root") != "1.2.250.1.213.1.4.2"), None)
        name = _find(patient, "patientPerson", "name")
        family = _find(name, "family") if name is not None else None
        given = tuple((g.text or "").strip() for g in name if _local(g) == "given") if name is not None else ()
        birth = _find(patient, "patientPerson", "birthTime")
        found.append(FoundPatient(ins, (family.text or "").strip() if family is not None else "", given,
                                  birth.get("value") if birth is not None else None))
    return found


# -- habilitations -------------------------------------------------------------------------------------------
def set_authorization(action: str = "AJOUT") -> etree._Element:
    body = etree.Element(f"{{{HABILITATIONS}}}setAuthorization", nsmap={None: HABILITATIONS})
    _sub(body, HABILITATIONS, "action", action)
    return body


def read_status(body: etree._Element) -> str:
    """``output/status`` of a habilitation answer: DmpRefusal unless DMPOk; returns the context text."""
    status, context = _find(body, "output", "status"), _find(body, "output", "context")
    code = (status.text or "").strip() if status is not None else ""
    text = (context.text or "").strip() if context is not None else ""
    if code != "DMPOk":
        raise DmpRefusal(code or "DMPInvalidAnswer", text)
    return text


# -- XDS -----------------------------------------------------------------------------------------------------
def _slot(parent: etree._Element, name: str, *values: str) -> etree._Element:
    slot = _sub(parent, RIM, "Slot", name=name)
    value_list = _sub(slot, RIM, "ValueList")
    for value in values:
        _sub(value_list, RIM, "Value", value)
    return slot


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stored_query(query_id: str, params: dict[str, list[str]]) -> etree._Element:
    """An AdhocQueryRequest (LeafClass); each parameter's values are already written as ITI-18 wants."""
    request = etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={"query": QUERY, "rim": RIM})
    _sub(request, QUERY, "ResponseOption", returnComposedObjects="true", returnType="LeafClass")
    query = _sub(request, RIM, "AdhocQuery", id=query_id)
    for name, values in params.items():
        _slot(query, name, *values)
    return request


def find_documents(patient: str, statuses: list[str] | None) -> etree._Element:
    """FindDocuments for a patient CX; ``statuses`` None leaves $XDSDocumentEntryStatus out (a defect)."""
    params = {"$XDSDocumentEntryPatientId": [_quoted(patient)]}
    if statuses is not None:
        params["$XDSDocumentEntryStatus"] = ["(" + ",".join(_quoted(STATUS_URNS[s]) for s in statuses) + ")"]
    return stored_query(FIND_DOCUMENTS, params)


def get_documents(unique_id: str) -> etree._Element:
    return stored_query(GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [f"({_quoted(unique_id)})"]})


def read_registry(response: etree._Element) -> None:
    """A RegistryResponse (or one nested in the answer): DmpRefusal with the first errorCode on Failure."""
    registry = response if _local(response) in ("RegistryResponse", "AdhocQueryResponse") else _find(
        response, "RegistryResponse")
    if registry is None:
        raise DmpRefusal("DMPInvalidAnswer", f"{_local(response)} carries no RegistryResponse")
    if registry.get("status") == RESPONSE_FAILURE:
        error = next(iter(_find_all(registry, "RegistryError")), None)
        if error is None:
            raise DmpRefusal("XDSRegistryError", "Failure without a RegistryError")
        raise DmpRefusal(error.get("errorCode", "XDSRegistryError"), error.get("codeContext", ""))


@dataclass(slots=True)
class Entry:
    """A DocumentEntry as the registry returned it; ``element`` is kept whole for an ITI-57 new version."""

    entry_uuid: str
    unique_id: str
    lid: str
    status: str
    title: str | None
    confidentiality: list[str]
    version: str
    repository: str | None
    element: etree._Element = field(repr=False)

    @property
    def is_signature(self) -> bool:
        """The XAdES signature document of a submission, not a document a professional reads."""
        return any(_local(c) == "Classification" and c.get("classificationScheme") == CLASS_SCHEME
                   and c.get("nodeRepresentation") == SIGNATURE_CLASS for c in self.element)


def _entry(element: etree._Element) -> Entry:
    unique = next((e.get("value", "") for e in element if _local(e) == "ExternalIdentifier"
                   and e.get("identificationScheme") == UNIQUE_ID_SCHEME), "")
    name = _find(element, "Name", "LocalizedString")
    codes = [c.get("nodeRepresentation", "") for c in element if _local(c) == "Classification"
             and c.get("classificationScheme") == CONFIDENTIALITY_SCHEME]
    version = _find(element, "VersionInfo")
    repository = next((_find(s, "ValueList", "Value") for s in element if _local(s) == "Slot"
                       and s.get("name") == "repositoryUniqueId"), None)
    return Entry(element.get("id", ""), unique, element.get("lid") or element.get("id", ""),
                 STATUS_NAMES.get(element.get("status", ""), element.get("status", "")),
                 name.get("value") if name is not None else None, codes,
                 version.get("versionName", "1") if version is not None else "1",
                 (repository.text or "").strip() if repository is not None else None, element)


def read_entries(response: etree._Element, *, status: bool = True) -> list[Entry]:
    """The entries of an AdhocQueryResponse, once its status says Success (``status`` False: the defect
    ``dmp_ignores_query_status``, a refused search read as an empty one)."""
    if status:
        read_registry(response)
    return [_entry(e) for e in _find_all(response, "ExtrinsicObject")]


def retrieve_request(repository: str, unique_id: str) -> etree._Element:
    request = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetRequest", nsmap={None: XDSB})
    item = _sub(request, XDSB, "DocumentRequest")
    _sub(item, XDSB, "RepositoryUniqueId", repository)
    _sub(item, XDSB, "DocumentUniqueId", unique_id)
    return request


def provide_and_register(metadata: etree._Element, documents: dict[str, str]) -> etree._Element:
    """ITI-41 body: the SubmitObjectsRequest, then one ``xdsb:Document`` per entry id with its MTOM cid."""
    request = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDSB})
    request.append(metadata)
    for entry_id, cid in documents.items():
        _sub(_sub(request, XDSB, "Document", id=entry_id), XOP, "Include", href=f"cid:{cid}")
    return request


# -- ITI-57 --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Submitter:
    """Who submits an update: the SubmissionSet's author and patient."""

    author_person: str
    author_institution: str
    patient: str


def _submission_set(objects: etree._Element, who: Submitter) -> str:
    package = _sub(objects, RIM, "RegistryPackage", id="SubmissionSet01")
    _slot(package, "submissionTime", _now())
    _sub(_sub(package, RIM, "Name"), RIM, "LocalizedString", value="Mise à jour de métadonnées", charset="UTF8")
    author = _sub(package, RIM, "Classification", classificationScheme=SS_AUTHOR, classifiedObject="SubmissionSet01",
                  id="cl01", nodeRepresentation="")
    _slot(author, "authorPerson", who.author_person)
    _slot(author, "authorInstitution", who.author_institution)
    content = _sub(package, RIM, "Classification", classificationScheme=SS_CONTENT_TYPE,
                   classifiedObject="SubmissionSet01", id="cl02", nodeRepresentation="04")
    _slot(content, "codingScheme", "1.2.250.1.213.2.2")
    _sub(_sub(content, RIM, "Name"), RIM, "LocalizedString", value="Hospitalisation de jour", charset="UTF8")
    _sub(package, RIM, "Classification", classificationNode=SUBMISSION_SET_NODE, classifiedObject="SubmissionSet01",
         id="cl03")
    values = (who.patient, SOURCE_ID, f"2.25.{uuid.uuid4().int}")
    for number, ((scheme, label), value) in enumerate(zip(SS_IDENTIFIERS, values, strict=True), 1):
        identifier = _sub(package, RIM, "ExternalIdentifier", id=f"ei0{number}", identificationScheme=scheme,
                          registryObject="SubmissionSet01", value=value)
        _sub(_sub(identifier, RIM, "Name"), RIM, "LocalizedString", value=label, charset="UTF8")
    return "SubmissionSet01"


def _update_request(who: Submitter) -> tuple[etree._Element, etree._Element, str]:
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = _sub(request, RIM, "RegistryObjectList")
    return request, objects, _submission_set(objects, who)


def status_update(entry: Entry, new_status: str, who: Submitter) -> etree._Element:
    """ITI-57 UpdateAvailabilityStatus (TD3.3c delete, TD3.3d archive / unarchive) of the entry's current version."""
    request, objects, package = _update_request(who)
    association = _sub(objects, RIM, "Association", id="as01", associationType=UPDATE_STATUS, sourceObject=package,
                       targetObject=entry.entry_uuid)
    _slot(association, "OriginalStatus", STATUS_URNS[entry.status])
    _slot(association, "NewStatus", STATUS_URNS[new_status])
    return request


def new_version(entry: Entry, confidentiality: list[str], who: Submitter, *, previous_version: str) -> tuple[
        etree._Element, str]:
    """ITI-57 metadata update (TD3.3a/b): the entry again under a new entryUUID, same lid, ``PreviousVersion``
    slot, with the DMP confidentiality codes ``confidentiality`` (MASQUE_PS, INVISIBLE_PATIENT) replacing its own.
    Returns the request and the new entryUUID."""
    request, objects, package = _update_request(who)
    new_id = f"urn:uuid:{uuid.uuid4()}"
    element = copy.deepcopy(entry.element)
    for attribute in ("status", "id"):
        element.attrib.pop(attribute, None)
    element.set("id", new_id)
    element.set("lid", entry.lid)
    for child in list(element):
        if _superseded(child):
            element.remove(child)
    slots = [c for c in element if _local(c) == "Slot"]
    anchor = slots[-1] if slots else None
    slot = etree.Element(f"{{{RIM}}}Slot", name="PreviousVersion")
    _sub(_sub(slot, RIM, "ValueList"), RIM, "Value", previous_version)
    if anchor is not None:
        anchor.addnext(slot)
    else:
        element.insert(0, slot)
    for code in confidentiality:
        node = _sub(element, RIM, "Classification", classificationScheme=CONFIDENTIALITY_SCHEME,
                    classifiedObject=new_id, id="", nodeRepresentation=code)
        _slot(node, "codingScheme", DMP_CONFIDENTIALITY_OID)
        _sub(_sub(node, RIM, "Name"), RIM, "LocalizedString", value=CONFIDENTIALITY_NAMES[code], charset="UTF8")
    _renumber(element, new_id)
    identifiers = [c for c in element if _local(c) == "ExternalIdentifier"]
    for identifier in identifiers:  # ExternalIdentifiers come last in an ExtrinsicObject
        element.remove(identifier)
        element.append(identifier)
    objects.append(element)
    association = _sub(objects, RIM, "Association", id="as01", associationType=HAS_MEMBER, sourceObject=package,
                       targetObject=new_id)
    _slot(association, "SubmissionSetStatus", "Original")
    _slot(association, "PreviousVersion", previous_version)
    return request, new_id


def _superseded(child: etree._Element) -> bool:
    """What a new version does not repeat: the registry's version, an old PreviousVersion, the DMP codes."""
    kind = _local(child)
    return kind == "VersionInfo" or (kind == "Slot" and child.get("name") == "PreviousVersion") or (
        kind == "Classification" and child.get("classificationScheme") == CONFIDENTIALITY_SCHEME
        and child.get("nodeRepresentation") in CONFIDENTIALITY_NAMES)


def _renumber(element: etree._Element, new_id: str) -> None:
    """Classifications and identifiers of the new entry get ids of their own and point at it."""
    number = 0
    for child in element:
        if _local(child) in ("Classification", "ExternalIdentifier"):
            number += 1
            child.set("id", f"{new_id}:{number}")
            child.set("classifiedObject" if _local(child) == "Classification" else "registryObject", new_id)
