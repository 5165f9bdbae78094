"""Read the header of a CDA R2 document into a small :class:`CdaHeader`, in one walk over the header.

Only the level-1 header elements the DMP cares about are read (CI-SIS volet Structuration minimale, 3.5):
the body is only typed (structuredBody / nonXMLBody and its mediaType), never walked, so a 100 kB or 10 MB
document costs one parse.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from esante.simulators.kits.xml import parse_xml

HL7 = "urn:hl7-org:v3"
_H = f"{{{HL7}}}"
#: Largest CDA document accepted (the DMP caps documents well below; a scanned PDF in B64 fits).
MAX_CDA_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ii:
    root: str
    extension: str = ""


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    system: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class CdaHeader:
    realm: str | None = None
    type_id: Ii | None = None
    template_ids: tuple[str, ...] = ()
    document_id: Ii | None = None
    code: Code | None = None
    title: str | None = None
    effective_time: str | None = None
    confidentiality: Code | None = None
    language: str | None = None
    set_id: Ii | None = None
    version_number: str | None = None
    patient_ids: tuple[Ii, ...] = ()
    family_names: tuple[tuple[str, str], ...] = ()  # (qualifier, name)
    given_names: tuple[tuple[str, str], ...] = ()
    gender: str | None = None
    birth_time: str | None = None
    birthplace_cog: str | None = None
    author_ids: tuple[tuple[Ii, ...], ...] = ()  # the ids of each author's assignedAuthor
    custodian_ids: tuple[Ii, ...] = ()
    legal_authenticator_ids: tuple[Ii, ...] = ()
    documentation_of: int = 0
    service_start: str | None = None
    service_stop: str | None = None
    component_of: bool = False
    body_kind: str | None = None  # "structured" or "nonXML"
    media_type: str | None = None
    representation: str | None = None
    related_documents: tuple[tuple[str, Ii], ...] = ()  # (typeCode, parent document id)


def parse_cda(data: bytes) -> etree._Element:
    """The hardened parse of a CDA document (raises ``XmlRejected``)."""
    return parse_xml(data, max_bytes=MAX_CDA_BYTES)


def _ii(element: etree._Element | None) -> Ii | None:
    if element is None or not element.get("root"):
        return None
    return Ii(element.get("root", ""), element.get("extension", ""))


def _ids(parent: etree._Element | None) -> tuple[Ii, ...]:
    if parent is None:
        return ()
    return tuple(ii for ii in map(_ii, parent.iterchildren(f"{_H}id")) if ii is not None)


def _code(element: etree._Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(element.get("code", ""), element.get("codeSystem", ""), element.get("displayName", ""))


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    value = "".join(element.itertext()).strip()
    return value or None


def _path(element: etree._Element | None, *steps: str) -> etree._Element | None:
    for step in steps:
        if element is None:
            return None
        element = element.find(f"{_H}{step}")
    return element


def _patient(fields: dict[str, object], role: etree._Element) -> None:
    fields["patient_ids"] = _ids(role)
    patient = role.find(f"{_H}patient")
    if patient is None:
        return
    name = patient.find(f"{_H}name")
    if name is not None:
        for part in ("family", "given"):
            fields[f"{part}_names"] = tuple((n.get("qualifier", ""), _text(n) or "")
                                            for n in name.iterchildren(f"{_H}{part}"))
    gender = patient.find(f"{_H}administrativeGenderCode")
    fields["gender"] = None if gender is None else gender.get("code")
    birth = patient.find(f"{_H}birthTime")
    fields["birth_time"] = None if birth is None else birth.get("value")
    fields["birthplace_cog"] = _text(_path(patient, "birthplace", "place", "addr", "county"))


def _service_times(fields: dict[str, object], documentation: etree._Element) -> None:
    times = _path(documentation, "serviceEvent", "effectiveTime")
    if times is not None and "service_start" not in fields:
        low, high = times.find(f"{_H}low"), times.find(f"{_H}high")
        fields["service_start"] = None if low is None else low.get("value")
        fields["service_stop"] = None if high is None else high.get("value")


def _body(fields: dict[str, object], component: etree._Element) -> None:
    if component.find(f"{_H}structuredBody") is not None:
        fields["body_kind"] = "structured"
        return
    text = _path(component, "nonXMLBody", "text")
    if component.find(f"{_H}nonXMLBody") is not None:
        fields["body_kind"] = "nonXML"
        fields["media_type"] = None if text is None else text.get("mediaType")
        fields["representation"] = None if text is None else text.get("representation")


def read_header(root: etree._Element) -> CdaHeader:
    """The header of a parsed ``ClinicalDocument`` (any other root gives an empty header)."""
    if root.tag != f"{_H}ClinicalDocument":
        return CdaHeader()
    fields: dict[str, object] = {}
    templates, authors, related = [], [], []
    documentation = 0
    for child in root.iterchildren():
        tag = child.tag[len(_H):] if isinstance(child.tag, str) and child.tag.startswith(_H) else ""
        if tag == "templateId" and child.get("root"):
            templates.append(child.get("root", ""))
        elif tag in ("realmCode", "languageCode"):
            fields.setdefault("realm" if tag == "realmCode" else "language", child.get("code"))
        elif tag in ("typeId", "id", "setId"):
            fields[{"typeId": "type_id", "id": "document_id", "setId": "set_id"}[tag]] = _ii(child)
        elif tag in ("code", "confidentialityCode"):
            fields["code" if tag == "code" else "confidentiality"] = _code(child)
        elif tag == "title":
            fields["title"] = _text(child)
        elif tag in ("effectiveTime", "versionNumber"):
            fields["effective_time" if tag == "effectiveTime" else "version_number"] = child.get("value")
        elif tag == "recordTarget" and "patient_ids" not in fields:
            role = child.find(f"{_H}patientRole")
            if role is not None:
                _patient(fields, role)
        elif tag == "author":
            authors.append(_ids(child.find(f"{_H}assignedAuthor")))
        elif tag == "custodian":
            fields["custodian_ids"] = _ids(_path(child, "assignedCustodian", "representedCustodianOrganization"))
        elif tag == "legalAuthenticator":
            fields["legal_authenticator_ids"] = _ids(child.find(f"{_H}assignedEntity"))
        elif tag == "documentationOf":
            documentation += 1
            _service_times(fields, child)
        elif tag == "relatedDocument":
            parent = _ii(_path(child, "parentDocument", "id"))
            if parent is not None:
                related.append((child.get("typeCode", ""), parent))
        elif tag == "componentOf":
            fields["component_of"] = child.find(f"{_H}encompassingEncounter") is not None
        elif tag == "component":
            _body(fields, child)
    return CdaHeader(template_ids=tuple(templates), author_ids=tuple(authors), documentation_of=documentation,
                     related_documents=tuple(related), **fields)  # type: ignore[arg-type]
