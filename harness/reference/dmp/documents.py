"""The reference candidate's DMP feed (TD2.1, ITI-41): CDA document, XAdES signature document and the ebRIM
``SubmitObjectsRequest`` describing both, built from plain dicts as a driver action sends them.

The candidate's own code (it must not import the simulator's checks): XDS constants are its own copies.
Named defects (``scenarios/dmp/defects.yaml``: ``cda_*``, ``xds_*``, ``agreement_*``, ``*signature*``) each
break one rule of the feed on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from esante.harness.reference.dmp.cda import (
    CONFIDENTIALITY_OID,
    LOINC,
    PS_OID,
    STRUCTURE_OID,
    CdaFacts,
    build_cda,
    professional_national_id,
    structure_national_id,
)
from esante.harness.reference.dmp.xades import PURPOSE_OF_SIGNATURE, build_signature
from esante.harness.reference.pdf import minimal_pdf

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SCHEMES = {
    "de_author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    "ss_author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "class": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "type": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "format": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "facility": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practice": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
    "confidentiality": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "event": "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4",
    "content_type": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
}
IDENTIFIERS = {
    "de_patient": ("urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", "XDSDocumentEntry.patientId"),
    "de_unique": ("urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", "XDSDocumentEntry.uniqueId"),
    "ss_patient": ("urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", "XDSSubmissionSet.patientId"),
    "ss_source": ("urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "XDSSubmissionSet.sourceId"),
    "ss_unique": ("urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", "XDSSubmissionSet.uniqueId"),
}
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
SOURCE_ID = "1.2.250.1.999.7.1"  # the candidate's own XDS source OID
TYPE_CODE = ("11488-4", LOINC, "CR ou fiche de consultation ou de visite")
WRONG_TYPE_CODE = ("11490-0", LOINC, "Lettre de liaison à la sortie d'un établissement de soins")
FORMATS = {"N1": ("urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en Pdf/A-1"),
           "N3": ("urn:asip:ci-sis:2010", "Document à corps structuré CI-SIS")}
DMP_CONFIDENTIALITY = {"MASQUE_PS": "Masqué aux professionnels de santé",
                       "INVISIBLE_PATIENT": "Non visible par le patient"}


@dataclass(frozen=True, slots=True)
class Feed:
    """An ITI-41 feed: ``documents`` maps each DocumentEntry id (= xds:Document/@id, the MTOM part) to bytes."""

    metadata_element: etree._Element
    documents: dict[str, bytes]
    document_entry_id: str
    unique_id: str


def new_oid() -> str:
    """A globally unique OID derived from a UUID (ITU-T X.667: 2.25.<uuid as integer>)."""
    return f"2.25.{uuid.uuid4().int}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")


class _Rim:
    """Writes ebRIM objects; classification and identifier ids are numbered per submission."""

    def __init__(self) -> None:
        self.request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
        self.objects = self.sub(self.request, "RegistryObjectList")
        self.count = 0

    def sub(self, parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{RIM}}}{tag}", attributes)

    def next_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def slot(self, parent: etree._Element, name: str, *values: str) -> None:
        values_list = self.sub(self.sub(parent, "Slot", name=name), "ValueList")
        for value in values:
            self.sub(values_list, "Value").text = value

    def text(self, parent: etree._Element, tag: str, value: str) -> None:
        self.sub(self.sub(parent, tag), "LocalizedString", value=value, charset="UTF8")

    def coded(self, parent: etree._Element, scheme: str, code: str, system: str, display: str) -> None:
        node = self.sub(parent, "Classification", classificationScheme=SCHEMES[scheme],
                        classifiedObject=parent.get("id", ""), id=self.next_id("cl"), nodeRepresentation=code)
        self.slot(node, "codingScheme", system)
        self.text(node, "Name", display)

    def author(self, parent: etree._Element, scheme: str, author: dict[str, str]) -> None:
        node = self.sub(parent, "Classification", classificationScheme=SCHEMES[scheme],
                        classifiedObject=parent.get("id", ""), id=self.next_id("cl"), nodeRepresentation="")
        for name, value in author.items():
            self.slot(node, name, value)

    def identifier(self, parent: etree._Element, kind: str, value: str) -> None:
        scheme, name = IDENTIFIERS[kind]
        node = self.sub(parent, "ExternalIdentifier", id=self.next_id("ei"), identificationScheme=scheme,
                        registryObject=parent.get("id", ""), value=value)
        self.text(node, "Name", name)

    def association(self, kind: str, source: str, target: str, **slots: str) -> None:
        node = self.sub(self.objects, "Association", id=self.next_id("as"), associationType=kind,
                        sourceObject=source, targetObject=target)
        for name, value in slots.items():
            self.slot(node, name, value)


def _author(professional: dict[str, Any], structure: dict[str, Any]) -> dict[str, str]:
    national_id = professional_national_id(professional)
    person = f"{national_id}^{professional['family_name']}^{professional['given_name']}^^^^^^&{PS_OID}&ISO^D^^^IDNPS"
    institution = f"{structure['name']}^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^{structure_national_id(structure)}"
    author = {"authorPerson": person, "authorInstitution": institution}
    if professional.get("specialty_code"):
        author["authorSpecialty"] = f"{professional['specialty_code']}^^1.2.250.1.71.4.2.5"
    return author


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: str
    unique_id: str
    data: bytes
    title: str
    class_code: tuple[str, str, str]
    type_code: tuple[str, str, str]
    format_code: tuple[str, str, str]
    creation_time: str
    language: str
    service: tuple[str, str]
    event_codes: tuple[tuple[str, str, str], ...] = ()


def _document_entry(rim: _Rim, entry: _Entry, patient_cx: str, author: dict[str, str],
                    confidentiality: tuple[str, ...], sector: str, defects: frozenset[str]) -> None:
    node = rim.sub(rim.objects, "ExtrinsicObject", id=entry.entry_id, mimeType="text/xml", objectType=STABLE)
    digest = hashlib.sha1(entry.data + (b"x" if "xds_bad_hash" in defects else b"")).hexdigest()
    for name, value in (("creationTime", entry.creation_time), ("hash", digest), ("languageCode", entry.language),
                        ("serviceStartTime", entry.service[0]), ("serviceStopTime", entry.service[1]),
                        ("size", str(len(entry.data))), ("sourcePatientId", patient_cx)):
        rim.slot(node, name, value)
    rim.slot(node, "legalAuthenticator", author["authorPerson"])
    rim.text(node, "Name", entry.title)
    rim.author(node, "de_author", author)
    rim.coded(node, "class", *entry.class_code)
    rim.coded(node, "type", *entry.type_code)
    rim.coded(node, "format", *entry.format_code)
    rim.coded(node, "facility", sector, "1.2.250.1.71.4.2.4", sector)
    rim.coded(node, "practice", "ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de santé")
    rim.coded(node, "confidentiality", "N", CONFIDENTIALITY_OID, "Normal")
    for code in confidentiality:
        rim.coded(node, "confidentiality", code, "1.2.250.1.213.1.1.4.13", DMP_CONFIDENTIALITY[code])
    for event in entry.event_codes:
        rim.coded(node, "event", *event)
    rim.identifier(node, "de_patient", patient_cx)
    rim.identifier(node, "de_unique", entry.unique_id)


def _submission_set(rim: _Rim, patient_cx: str, author: dict[str, str], now: str) -> str:
    node = rim.sub(rim.objects, "RegistryPackage", id="SubmissionSet01")
    rim.slot(node, "submissionTime", now)
    rim.text(node, "Name", "Alimentation du DMP")
    rim.author(node, "ss_author", author)
    rim.coded(node, "content_type", "04", "1.2.250.1.213.2.2", "Hospitalisation de jour")
    rim.sub(node, "Classification", classificationNode=SUBMISSION_SET_NODE, classifiedObject="SubmissionSet01",
            id=rim.next_id("cl"))
    rim.identifier(node, "ss_patient", patient_cx)
    rim.identifier(node, "ss_source", SOURCE_ID)
    rim.identifier(node, "ss_unique", new_oid())
    return "SubmissionSet01"


def _patient_cx(patient: dict[str, Any], defects: frozenset[str]) -> str:
    ins = patient["ins"]
    nir = ins["nir"]
    if "agreement_patient" in defects:  # another person's matricule: last digit of the order number changed
        nir = nir[:-1] + str((int(nir[-1]) + 1) % 10)
    if "xds_patient_id_not_cx" in defects:
        return nir + ins["key"]
    return f"{nir}{ins['key']}^^^&{ins['oid']}&ISO^NH"


def build_feed(patient: dict[str, Any], professional: dict[str, Any], structure: dict[str, Any], *, kind: str,
               title: str, confidentiality: tuple[str, ...] = (), replaces: dict[str, Any] | None = None,
               defects: frozenset[str] = frozenset(), certificate: tuple[bytes, bytes] | None = None,
               pdf: bytes | None = None) -> Feed:
    """One TD2.1 feed. ``kind`` "N1" (PDF, XDS-SD) or "N3" (structured); ``confidentiality`` adds MASQUE_PS /
    INVISIBLE_PATIENT; ``replaces`` ({"entry_uuid", "unique_id", "set_id"?, "version"?}) makes it replace a
    document (RPLC); ``certificate`` = (cert PEM, key PEM) signs the signature document; ``pdf`` is the N1
    body (default: a one-page PDF showing the title)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown document kind {kind!r} (N1 or N3)")
    now = _now()
    unique_id = new_oid()
    facts = CdaFacts(unique_id, (replaces or {}).get("set_id") or unique_id,
                     int((replaces or {}).get("version", 0)) + 1, TYPE_CODE, now, now, now,
                     "application/pdf" if kind == "N1" else None)
    cda = build_cda(patient, professional, structure, kind=kind, title=title, facts=facts, replaces=replaces,
                    pdf=(pdf or minimal_pdf(title)) if kind == "N1" else b"", defects=defects)
    rim = _Rim()
    patient_cx = _patient_cx(patient, defects)
    author = _author(professional, structure)
    submission_set = _submission_set(rim, patient_cx, author, now)
    sector = structure.get("sector_code", "SA01")
    fmt_code, fmt_name = FORMATS[kind]
    fmt = (fmt_code, LOINC if "xds_wrong_format_code" in defects else "1.3.6.1.4.1.19376.1.2.3", fmt_name)
    type_code = WRONG_TYPE_CODE if "agreement_type_code" in defects else TYPE_CODE
    document = _Entry("Document01", unique_id, cda, title, ("10", "1.2.250.1.213.1.1.4.1", "Compte rendu"),
                      type_code, fmt, now, "fr-FR", (now, now))
    _document_entry(rim, document, patient_cx, author, confidentiality, sector, defects)
    rim.association(HAS_MEMBER, submission_set, document.entry_id, SubmissionSetStatus="Original")
    if replaces is not None:
        rim.association(RPLC, document.entry_id, replaces["entry_uuid"])
    documents = {document.entry_id: cda}
    if "no_signature_document" not in defects:
        documents["Signature01"] = _signature_entry(rim, submission_set, document, patient_cx, author, sector,
                                                    certificate, defects)
    return Feed(rim.request, documents, document.entry_id, unique_id)


def _signature_entry(rim: _Rim, submission_set: str, document: _Entry, patient_cx: str, author: dict[str, str],
                     sector: str, certificate: tuple[bytes, bytes] | None, defects: frozenset[str]) -> bytes:
    if certificate is None:
        raise ValueError("a DMP feed needs a signing certificate and key (PEM)")
    data = build_signature({document.unique_id: document.data}, *certificate,
                           tamper="signature_digest_mismatch" in defects)
    entry = _Entry("Signature01", new_oid(), data, "Signature",
                   ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature"),
                   ("E1762", "ASTM", "Full Document"),
                   ("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style"),
                   document.creation_time, "art", document.service,
                   ((PURPOSE_OF_SIGNATURE, "1.2.840.10065.1.12", "Source"),))
    _document_entry(rim, entry, patient_cx, author, (), sector, defects - {"xds_bad_hash"})
    rim.association(HAS_MEMBER, submission_set, entry.entry_id, SubmissionSetStatus="Original")
    rim.association(SIGNS, entry.entry_id, submission_set)
    return data


def build_metadata_update(feed: Feed, *, entry_uuid: str, version: str, confidentiality: tuple[str, ...],
                          patient: dict[str, Any], professional: dict[str, Any],
                          structure: dict[str, Any]) -> etree._Element:
    """TD3.3a (ITI-57): the DocumentEntry of ``feed`` resubmitted as a new version of the registry entry
    ``entry_uuid`` (same lid, ``PreviousVersion`` slot) with the DMP confidentiality codes ``confidentiality``
    (MASQUE_PS to hide it from professionals, INVISIBLE_PATIENT...; () makes it visible again)."""
    original = next(node for node in feed.metadata_element.iter(f"{{{RIM}}}ExtrinsicObject")
                    if node.get("id") == feed.document_entry_id)
    rim = _Rim()
    submission_set = _submission_set(rim, _patient_cx(patient, frozenset()), _author(professional, structure),
                                     _now())
    entry = etree.fromstring(etree.tostring(original))
    new_id = "DocumentUpdate01"
    entry.attrib.update({"id": new_id, "lid": entry_uuid})
    for node in list(entry.iterchildren(f"{{{RIM}}}Classification", f"{{{RIM}}}ExternalIdentifier")):
        node.attrib.update({k: new_id for k in ("classifiedObject", "registryObject") if k in node.attrib})
        if node.get("classificationScheme") == SCHEMES["confidentiality"] and node.get("nodeRepresentation") != "N":
            entry.remove(node)
    rim.objects.append(entry)
    rim.slot(entry, "PreviousVersion", version)
    entry.find(f"{{{RIM}}}Name").addprevious(entry[-1])  # slots come first in an ebRIM object
    for code in confidentiality:
        rim.coded(entry, "confidentiality", code, "1.2.250.1.213.1.1.4.13", DMP_CONFIDENTIALITY[code])
    rim.association(HAS_MEMBER, submission_set, new_id, SubmissionSetStatus="Original", PreviousVersion=version)
    return rim.request
