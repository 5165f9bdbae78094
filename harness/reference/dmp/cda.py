"""The reference candidate's CDA R2 documents for the DMP: a structured "N3" report and an unstructured "N1"
(XDS-SD) one wrapping a PDF, with the CI-SIS header (volet Structuration minimale).

This is the candidate's own code: it must not import the simulator's checks. Named defects switch off one
rule each (see :mod:`.documents`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PS_OID = "1.2.250.1.71.4.2.1"
STRUCTURE_OID = "1.2.250.1.71.4.2.2"
LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_OID = "2.16.840.1.113883.5.25"
PROFESSION_OID = "1.2.250.1.71.1.2.7"
SECTOR_OID = "1.2.250.1.71.4.2.4"
LOCAL_PATIENT_OID = "1.2.250.1.999.7.2"  # the candidate's own patient numbering (IPP)
TEMPLATES = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")
XDS_SD_TEMPLATE = "1.3.6.1.4.1.19376.1.2.20"
PCC_MEDICAL_DOCUMENT = "1.3.6.1.4.1.19376.1.5.3.1.1.1"


@dataclass(frozen=True, slots=True)
class CdaFacts:
    """What the metadata must repeat of a document it describes."""

    document_id: str
    set_id: str
    version: int
    type_code: tuple[str, str, str]
    effective_time: str  # UTC, YYYYMMDDHHMMSS
    service_start: str
    service_stop: str
    media_type: str | None  # nonXMLBody mediaType, None for a structured body


def structure_national_id(structure: dict[str, Any]) -> str:
    """idNat_Struct of a FINESS structure: "1" + FINESS."""
    return f"1{structure['finess']}"


def professional_national_id(professional: dict[str, Any]) -> str:
    return professional.get("national_id") or f"8{professional['rpps']}"


class _Cda:
    def __init__(self) -> None:
        self.root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap={None: HL7, "xsi": XSI})

    def add(self, parent: etree._Element | None, tag: str, text: str | None = None, **attributes: str) -> Any:
        element = etree.SubElement(self.root if parent is None else parent, f"{{{HL7}}}{tag}", attributes)
        if text is not None:
            element.text = text
        return element


def _patient(cda: _Cda, patient: dict[str, Any], defects: frozenset[str]) -> None:
    role = cda.add(cda.add(None, "recordTarget"), "patientRole")
    ins = patient["ins"]
    local = {"root": LOCAL_PATIENT_OID, "extension": f"IPP{ins['nir'][-6:]}"}
    if "cda_ins_not_first" in defects:
        cda.add(role, "id", **local)
    cda.add(role, "id", root=ins["oid"], extension=ins["nir"] + ins["key"])
    if "cda_ins_not_first" not in defects:
        cda.add(role, "id", **local)
    person = cda.add(role, "patient")
    name = cda.add(person, "name")
    cda.add(name, "given", patient["first_names"][0], qualifier="BR")
    cda.add(name, "given", " ".join(patient["first_names"]))
    cda.add(name, "family", patient["birth_name"], qualifier="BR")
    if patient.get("used_name"):
        cda.add(name, "family", patient["used_name"], qualifier="CL")
    cda.add(person, "administrativeGenderCode", code=patient["sex"], codeSystem="2.16.840.1.113883.5.1")
    cda.add(person, "birthTime", value=patient["birth_date"].replace("-", ""))
    if "cda_missing_birthplace" not in defects:
        cda.add(cda.add(cda.add(cda.add(person, "birthplace"), "place"), "addr"), "county", patient["birth_place"])


def _assigned_person(cda: _Cda, parent: etree._Element, professional: dict[str, Any]) -> None:
    name = cda.add(cda.add(parent, "assignedPerson"), "name")
    cda.add(name, "given", professional["given_name"])
    cda.add(name, "family", professional["family_name"])


def _organization(cda: _Cda, parent: etree._Element, tag: str, structure: dict[str, Any]) -> None:
    organization = cda.add(parent, tag)
    cda.add(organization, "id", root=STRUCTURE_OID, extension=structure_national_id(structure))
    cda.add(organization, "name", structure["name"])


def _people(cda: _Cda, professional: dict[str, Any], structure: dict[str, Any], now: str) -> None:
    national_id = professional_national_id(professional)
    author = cda.add(None, "author")
    cda.add(author, "time", value=now)
    assigned = cda.add(author, "assignedAuthor")
    cda.add(assigned, "id", root=PS_OID, extension=national_id)
    cda.add(assigned, "code", code=professional["profession_code"], codeSystem=PROFESSION_OID,
            displayName=professional.get("profession_label", ""))
    _assigned_person(cda, assigned, professional)
    _organization(cda, assigned, "representedOrganization", structure)
    custodian = cda.add(cda.add(None, "custodian"), "assignedCustodian")
    _organization(cda, custodian, "representedCustodianOrganization", structure)
    legal = cda.add(None, "legalAuthenticator")
    cda.add(legal, "time", value=now)
    cda.add(legal, "signatureCode", code="S")
    entity = cda.add(legal, "assignedEntity")
    cda.add(entity, "id", root=PS_OID, extension=national_id)
    _assigned_person(cda, entity, professional)


def _context(cda: _Cda, structure: dict[str, Any], facts: CdaFacts, replaces: dict[str, Any] | None) -> None:
    event = cda.add(cda.add(None, "documentationOf"), "serviceEvent")
    cda.add(event, "code", code="11488-4", codeSystem=LOINC, displayName="Consultation")
    times = cda.add(event, "effectiveTime")
    cda.add(times, "low", value=f"{facts.service_start}+0000")
    cda.add(times, "high", value=f"{facts.service_stop}+0000")
    if replaces is not None:
        related = cda.add(None, "relatedDocument", typeCode="RPLC")
        cda.add(cda.add(related, "parentDocument"), "id", root=replaces["unique_id"])
    encounter = cda.add(cda.add(None, "componentOf"), "encompassingEncounter")
    cda.add(cda.add(encounter, "effectiveTime"), "low", value=f"{facts.service_start}+0000")
    facility = cda.add(cda.add(encounter, "location"), "healthCareFacility")
    cda.add(facility, "code", code=structure.get("sector_code", "SA01"), codeSystem=SECTOR_OID)


def _body(cda: _Cda, kind: str, title: str, pdf: bytes) -> None:
    component = cda.add(None, "component")
    if kind == "N1":
        cda.add(cda.add(component, "nonXMLBody"), "text", base64.b64encode(pdf).decode(),
                mediaType="application/pdf", representation="B64")
        return
    section = cda.add(cda.add(cda.add(component, "structuredBody"), "component"), "section")
    cda.add(section, "code", code="29545-1", codeSystem=LOINC, displayName="Examen physique")
    cda.add(section, "title", title)
    cda.add(section, "text", "Examen clinique sans particularité.")


def build_cda(patient: dict[str, Any], professional: dict[str, Any], structure: dict[str, Any], *,
              kind: str, title: str, facts: CdaFacts, confidentiality: str = "N",
              replaces: dict[str, Any] | None = None, pdf: bytes = b"",
              defects: frozenset[str] = frozenset()) -> bytes:
    """The CDA document described by ``facts``; ``kind`` is "N1" (PDF in nonXMLBody) or "N3" (structured)."""
    cda = _Cda()
    cda.add(None, "realmCode", code="FR")
    cda.add(None, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    templates = [t for t in TEMPLATES if not ("cda_missing_template" in defects and t == TEMPLATES[1])]
    templates.append(XDS_SD_TEMPLATE if kind == "N1" else PCC_MEDICAL_DOCUMENT)
    for template in templates:
        cda.add(None, "templateId", root=template)
    cda.add(None, "id", root=facts.document_id)
    code, system, display = facts.type_code
    cda.add(None, "code", code=code, codeSystem=system, displayName=display)
    cda.add(None, "title", title)
    now = f"{facts.effective_time}+0000"
    cda.add(None, "effectiveTime", value=now)
    cda.add(None, "confidentialityCode", code=confidentiality, codeSystem=CONFIDENTIALITY_OID)
    cda.add(None, "languageCode", code="fr-FR")
    cda.add(None, "setId", root=facts.set_id)
    cda.add(None, "versionNumber", value=str(facts.version))
    _patient(cda, patient, defects)
    _people(cda, professional, structure, now)
    _context(cda, structure, facts, replaces)
    _body(cda, kind, title, pdf)
    return etree.tostring(cda.root, xml_declaration=True, encoding="UTF-8")
