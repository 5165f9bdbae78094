"""One-pass checks of a DMP feed (TD2.1): the official example passes, each requirement broken alone in the
official example gives exactly its finding, hostile documents give findings and never crash."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from lxml import etree

from esante.simulators.core.findings import Finding, errors
from esante.simulators.dmp.documents.value_sets import dmp_value_sets
from esante.simulators.kits.ihe_xds.cda import HL7
from esante.simulators.kits.ihe_xds.ebrim import RIM, parse_submission
from esante.simulators.kits.ihe_xds.submission import check_submission
from esante.simulators.kits.xmldsig import DS
from tests.dmp_official import OfficialFeed, dataset_with_official_patient, td21

DATASET = dataset_with_official_patient()
H = {"h": HL7}
R = {"r": RIM}
ME2 = "DocumentME2"
SCHEME = {"class": "41a5887f", "type": "f0306f51", "format": "a09d5840", "facility": "f33fb8ac",
          "practice": "cccf5598", "confidentiality": "f4f85eac", "content": "aa543740"}

Mutation = Callable[[OfficialFeed], None]


def _run(feed: OfficialFeed) -> list[Finding]:
    return check_submission(parse_submission(feed.request), feed.documents, DATASET, value_sets=dmp_value_sets())


def test_official_td21_has_no_error() -> None:
    findings = _run(td21())
    assert errors(findings) == []
    assert {f.requirement for f in findings} == {  # warnings the spec text justifies (see the modules)
        "CISIS-HDR-VERSIONING", "CISIS-HDR-PATIENT-FAMILY", "CISIS-HDR-PATIENT-GIVEN", "CISIS-HDR-PATIENT-BIRTHPLACE",
        "DMP-AGR-TIMES", "DMP-AGR-UNIQUEID", "DMP-SIG-COVERAGE"}


# ------------------------------------------------------------------------------------------- helpers


def cda(edit: Callable[[etree._Element], None]) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        root = etree.fromstring(feed.documents[ME2])
        edit(root)
        feed.documents[ME2] = etree.tostring(root)
    return mutate


def cda_remove(path: str) -> Mutation:
    return cda(lambda root: root.remove(root.find(path, H)))


def cda_set(path: str, attribute: str, value: str) -> Mutation:
    return cda(lambda root: root.find(path, H).set(attribute, value))


def entry(feed: OfficialFeed, entry_id: str = ME2) -> etree._Element:
    return feed.request.find(f".//r:ExtrinsicObject[@id='{entry_id}']", R)


def classification(feed: OfficialFeed, scheme: str, owner: str = ME2) -> etree._Element:
    parent = feed.request.find(".//r:RegistryPackage", R) if owner == "SS" else entry(feed, owner)
    fragment = SCHEME.get(scheme, scheme)
    return next(c for c in parent.iterfind("r:Classification", R) if fragment in c.get("classificationScheme", ""))


def set_code(scheme: str, code: str | None = None, system: str | None = None, owner: str = ME2) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        node = classification(feed, scheme, owner)
        if code is not None:
            node.set("nodeRepresentation", code)
        if system is not None:
            node.find(".//r:Value", R).text = system
    return mutate


def slot(name: str, value: str | None, owner: str = ME2) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        parent = feed.request.find(".//r:RegistryPackage", R) if owner == "SS" else entry(feed, owner)
        node = parent.find(f"r:Slot[@name='{name}']", R)
        if value is None:
            parent.remove(node)
            return
        if node is None:
            node = etree.SubElement(parent, f"{{{RIM}}}Slot", name=name)
            etree.SubElement(etree.SubElement(node, f"{{{RIM}}}ValueList"), f"{{{RIM}}}Value")
        node.find(".//r:Value", R).text = value
    return mutate


def patient_ids(value: str, owners: tuple[str, ...]) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        for node in feed.request.iter(f"{{{RIM}}}ExternalIdentifier"):
            if node.get("registryObject") in owners and "patientId" in (node.find(".//r:LocalizedString", R)
                                                                       .get("value")):
                node.set("value", value)
    return mutate


def remove_objects(*ids: str, document: str | None = None) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        objects = feed.request.find("r:RegistryObjectList", R)
        for child in list(objects):
            if child.get("id") in ids:
                objects.remove(child)
        if document:
            del feed.documents[document]
    return mutate


def manifest_uri(uri: str, digest: str | None = None) -> Mutation:
    def mutate(feed: OfficialFeed) -> None:
        signature = etree.fromstring(feed.documents["Signature01"])
        reference = signature.findall(f".//{{{DS}}}Manifest/{{{DS}}}Reference")[1]
        reference.set("URI", uri)
        if digest is not None:
            reference.find(f"{{{DS}}}DigestValue").text = digest
        feed.documents["Signature01"] = etree.tostring(signature)
    return mutate


def _add_event_code(feed: OfficialFeed) -> None:
    node = etree.SubElement(entry(feed), f"{{{RIM}}}Classification", id="ev", classifiedObject=ME2,
                            classificationScheme="urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4",
                            nodeRepresentation="X")
    value_list = etree.SubElement(etree.SubElement(node, f"{{{RIM}}}Slot", name="codingScheme"), f"{{{RIM}}}ValueList")
    etree.SubElement(value_list, f"{{{RIM}}}Value").text = "9.9.9"


def _unknown_type_code(feed: OfficialFeed) -> None:
    set_code("type", "99999-9")(feed)
    cda_set("h:code", "code", "99999-9")(feed)


def _swap_patient_ids(root: etree._Element) -> None:
    role = root.find("h:recordTarget/h:patientRole", H)
    ins, local = role.findall("h:id", H)
    role.remove(ins)
    local.addnext(ins)


OTHER_INS = "285046938321480^^^&1.2.250.1.213.1.4.10&ISO^NH"
ALL = ("SubmissionSet01", ME2, "Signature01")

# requirement -> (mutation of the official feed, rule, location fragment)
CASES: dict[str, tuple[Mutation, str, str]] = {
    # CDA header (CI-SIS volet Structuration minimale)
    "CISIS-HDR-REALM": (cda_set("h:realmCode", "code", "EN"), "cda_header", "/ClinicalDocument/realmCode"),
    "CISIS-HDR-TYPEID": (cda_set("h:typeId", "extension", "POCD_HD000041"), "cda_header", "typeId"),
    "CISIS-HDR-TEMPLATE": (cda(lambda r: r.remove(r.findall("h:templateId", H)[2])), "cda_header", "templateId"),
    "CISIS-HDR-ID": (cda_set("h:id", "extension", "1"), "cda_header", "/ClinicalDocument/id/@extension"),
    "CISIS-HDR-CODE": (cda(lambda r: r.find("h:code", H).attrib.pop("codeSystem")), "cda_header", "/code"),
    "CISIS-HDR-TITLE": (cda(lambda r: setattr(r.find("h:title", H), "text", " ")), "cda_header", "title"),
    "CISIS-HDR-EFFECTIVE-TIME": (cda_set("h:effectiveTime", "value", "2019-02-21T13:34:45"), "cda_header",
                                 "effectiveTime"),
    "CISIS-HDR-CONFIDENTIALITY": (cda_remove("h:confidentialityCode"), "cda_header", "confidentialityCode"),
    "CISIS-HDR-LANGUAGE": (cda_remove("h:languageCode"), "cda_header", "languageCode"),
    "CISIS-HDR-INS-FIRST": (cda(_swap_patient_ids), "cda_header", "/recordTarget/patientRole/id[1]"),
    "CISIS-HDR-AUTHOR-ID": (cda_set("h:author/h:assignedAuthor/h:id", "root", "1.2.3"), "cda_header",
                            "/ClinicalDocument/author[1]/assignedAuthor/id"),
    "CISIS-HDR-CUSTODIAN": (cda(lambda r: r.find(".//h:representedCustodianOrganization/h:id", H).attrib.pop(
        "extension")), "cda_header", "custodian"),
    "CISIS-HDR-LEGAL-AUTHENTICATOR": (cda_remove("h:legalAuthenticator"), "cda_header", "legalAuthenticator"),
    "CISIS-HDR-DOCUMENTATIONOF": (cda_remove("h:documentationOf"), "cda_header", "documentationOf"),
    "CISIS-HDR-COMPONENTOF": (cda_remove("h:componentOf"), "cda_header", "componentOf"),
    "CISIS-HDR-BODY": (cda_set("h:component/h:nonXMLBody/h:text", "representation", "TXT"), "cda_header",
                       "nonXMLBody/text"),
    "CISIS-CDA-XML": (lambda feed: feed.documents.__setitem__(ME2, b"<ClinicalDocument"), "cda_header",
                      "CDA DocumentME2"),
    # XDS metadata
    "DMP-XDS-PATIENTID": (patient_ids("207058575627097", (ME2,)), "xds_metadata", "ExternalIdentifier patientId"),
    "DMP-XDS-UNIQUEID": ((lambda f: entry(f).remove(entry(f).findall("r:ExternalIdentifier", R)[1])),
                         "xds_metadata", "uniqueId"),
    "DMP-XDS-REQUIRED": (slot("creationTime", None), "xds_metadata", "ExtrinsicObject DocumentME2 slot creationTime"),
    "DMP-XDS-DTM": (slot("serviceStopTime", "2010-03-19"), "xds_metadata", "slot serviceStopTime"),
    "DMP-XDS-MIMETYPE": ((lambda f: entry(f).set("mimeType", "application/pdf")), "xds_metadata", "mimeType"),
    "DMP-XDS-CLASSCODE": (set_code("class", "99"), "xds_metadata", "classification classCode"),
    "DMP-XDS-TYPECODE": (_unknown_type_code, "xds_metadata", "classification typeCode"),
    "DMP-XDS-FORMATCODE": (set_code("format", system="2.16.840.1.113883.6.1"), "xds_metadata", "formatCode"),
    "DMP-XDS-FACILITYTYPECODE": (set_code("facility", "SA99"), "xds_metadata", "healthcareFacilityTypeCode"),
    "DMP-XDS-PRACTICESETTINGCODE": (set_code("practice", "XYZ"), "xds_metadata", "practiceSettingCode"),
    "DMP-XDS-CONFIDENTIALITY": ((lambda f: entry(f).remove(classification(f, "confidentiality"))),
                                "xds_metadata", "confidentialityCode"),
    "DMP-XDS-EVENTCODE": (_add_event_code, "xds_metadata", "eventCodeList"),
    "DMP-XDS-AUTHOR": ((lambda f: classification(f, "93606bcf").find(".//r:Value", R).__setattr__(
        "text", "899900063480^MAX^LIBRE^^^^^^&1.2.3&ISO^D^^^IDNPS")), "xds_metadata", "author[1] slot authorPerson"),
    "DMP-XDS-SUBMISSIONSET": (slot("submissionTime", None, "SS"), "xds_metadata", "submissionTime"),
    "DMP-XDS-CONTENTTYPECODE": (set_code("content", system="1.2.3", owner="SS"), "xds_metadata", "contentTypeCode"),
    "DMP-XDS-HASMEMBER": (remove_objects("assoc1"), "xds_metadata", "Association HasMember"),
    "DMP-XDS-DOCUMENT": (lambda feed: feed.documents.__setitem__("Extra", b"x"), "xds_metadata", "Document Extra"),
    "DMP-XDS-HASH": (slot("hash", "0" * 40), "xds_metadata", "slot hash"),
    "DMP-XDS-SIZE": (slot("size", "12"), "xds_metadata", "slot size"),
    # agreement metadata <-> CDA <-> DMP patients
    "DMP-AGR-PATIENT": (patient_ids(OTHER_INS, ALL), "agreement", "ExternalIdentifier patientId"),
    "DMP-AGR-AUTHOR": (cda_set("h:author/h:assignedAuthor/h:id", "extension", "810999900011"), "agreement",
                       "authorPerson"),
    "DMP-AGR-TYPECODE": (set_code("type", "11488-4"), "agreement", "classification typeCode"),
    "DMP-AGR-CONFIDENTIALITY": (cda_set("h:confidentialityCode", "code", "R"), "agreement", "confidentialityCode"),
    "DMP-AGR-FORMATCODE": (set_code("format", "urn:ihe:iti:xds-sd:pdf:2008"), "agreement", "formatCode"),
    # signature document
    "DMP-SIG-PRESENT": (remove_objects("Signature01", "assoc2", "assoc3", document="Signature01"), "signature",
                        "RegistryObjectList"),
    "DMP-SIG-ASSOCIATION": (remove_objects("assoc3"), "signature", "ExtrinsicObject Signature01 Association signs"),
    "DMP-SIG-DOCUMENT": (lambda feed: feed.documents.__setitem__("Signature01", b"<Signature/>"), "signature",
                         "Document Signature01"),
    # the official manifest's stale digest, once its reference names the XDS uniqueId as IHE DSG requires
    "DMP-SIG-DIGEST": (manifest_uri("urn:oid:1.2.250.1.999.1.1.7898.3.1622814651504"), "signature",
                       "/Signature/Object/Manifest/Reference[2]"),
}


@pytest.mark.parametrize("requirement", CASES)
def test_each_requirement_broken_alone_gives_its_finding(requirement: str) -> None:
    mutation, rule, location = CASES[requirement]
    feed = td21()
    mutation(feed)
    found = errors(_run(feed))
    assert {(f.rule, f.requirement) for f in found} == {(rule, requirement)}, found
    assert all(location in f.location and f.message and f.code.startswith("XDS") for f in found), found


def test_unknown_patient() -> None:
    from esante.simulators.dataset import dataset_from_mapping, load_dataset
    data = load_dataset().model_dump()
    data["patients"] = [p for p in data["patients"] if p["id"] != "DMPEX01"]
    data["dmp_records"] = [r for r in data["dmp_records"] if r["patient_id"] != "DMPEX01"]
    feed = td21()
    found = errors(check_submission(parse_submission(feed.request), feed.documents, dataset_from_mapping(data),
                                    value_sets=dmp_value_sets()))
    assert [(f.requirement, f.code) for f in found] == [("DMP-AGR-PATIENT-KNOWN", "XDSUnknownPatientId")]


def test_official_manifest_with_right_digest_covers_the_document() -> None:
    feed = td21()
    c14n = etree.tostring(etree.fromstring(feed.documents[ME2]), method="c14n", with_comments=True)
    digest = base64.b64encode(hashlib.sha1(c14n).digest()).decode()
    manifest_uri("urn:oid:1.2.250.1.999.1.1.7898.3.1622814651504", digest)(feed)
    assert not [f for f in _run(feed) if f.rule == "signature"]


def test_right_hash_and_size_pass() -> None:
    feed = td21()
    data = feed.documents[ME2]
    slot("hash", hashlib.sha1(data).hexdigest())(feed)
    slot("size", str(len(data)))(feed)
    assert errors(_run(feed)) == []


def test_missing_document_bytes() -> None:
    feed = td21()
    del feed.documents[ME2]
    found = errors(_run(feed))
    assert [(f.requirement, f.code) for f in found] == [("DMP-XDS-DOCUMENT", "XDSMissingDocument")]


def test_recent_document_must_carry_the_ins_traits() -> None:
    """After 2021-01-01 the official CDA's SP family name and missing birth place are errors."""
    feed = td21()
    cda_set("h:effectiveTime", "value", "20240221133445+0100")(feed)
    found = errors(_run(feed))
    assert {f.requirement for f in found} == {"CISIS-HDR-PATIENT-FAMILY", "CISIS-HDR-PATIENT-GIVEN",
                                              "CISIS-HDR-PATIENT-BIRTHPLACE"}


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><ClinicalDocument>&x;'
           b"</ClinicalDocument>",
    "billion laughs": b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>',
    "too big": b"<ClinicalDocument>" + b" " * (21 * 1024 * 1024) + b"</ClinicalDocument>",
    "deep": b"<a>" * 100_000 + b"</a>" * 100_000,
    "not xml": b"\x00\xff\x10PK",
    "other root": b'<Envelope xmlns="urn:x"/>',
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_cda_is_a_finding(name: str) -> None:
    feed = td21()
    feed.documents[ME2] = HOSTILE[name]
    found = errors(_run(feed))
    assert [f.requirement for f in found] == ["CISIS-CDA-XML"], found


@pytest.mark.parametrize("name", ["xxe", "billion laughs", "not xml"])
def test_hostile_signature_is_a_finding(name: str) -> None:
    feed = td21()
    feed.documents["Signature01"] = HOSTILE[name]
    assert [f.requirement for f in errors(_run(feed))] == ["DMP-SIG-DOCUMENT"]


@pytest.mark.parametrize(("mutation", "requirement"), [
    (cda_set("h:id", "root", "1.2.250.01.x"), "CISIS-HDR-ID"),
    (cda_set("h:id", "root", "1." + "2" * 70), "CISIS-HDR-ID"),
    (lambda feed: entry(feed).findall("r:ExternalIdentifier", R)[1].set("value", "1.2.250^DOC1"), "DMP-XDS-UNIQUEID"),
])
def test_identifiers_must_be_oids(mutation: Mutation, requirement: str) -> None:
    feed = td21()
    mutation(feed)
    assert [f.requirement for f in errors(_run(feed))] == [requirement]


def test_the_dmp_judges_with_its_own_confidentiality_codes() -> None:
    """The CI-SIS value sets alone do not know MASQUE_PS: the DMP adds its codes (JDV_J58) to judge its feeds."""
    feed = td21()
    submission = parse_submission(feed.request)
    cisis_only = errors(check_submission(submission, feed.documents, DATASET))
    assert {(f.requirement, f.code) for f in cisis_only} == {("DMP-XDS-CONFIDENTIALITY", "XDSRegistryMetadataError")}
    assert errors(_run(feed)) == []
