"""The XDS.b metadata model reads the official DMP messages and writes entries a registry answers with."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from esante.simulators.kits.ihe_xds.ebrim import (
    RIM,
    UPDATE_STATUS,
    Coded,
    MetadataError,
    document_entry_element,
    parse_document_entry,
    parse_submission,
)
from esante.simulators.kits.ihe_xds.hl7v2 import format_cx, format_xcn, format_xon, parse_cx, parse_xcn, parse_xon
from esante.simulators.kits.xml import parse_xml
from tests.dmp_official import VECTORS, submit_objects_request, td21


def test_official_td21_metadata() -> None:
    submission = parse_submission(td21().request)
    assert submission.submission_set is not None
    assert submission.submission_set.content_type_code == Coded("04", "1.2.250.1.213.2.2", "Hospitalisation de jour")
    document, signature = submission.documents
    assert document.id == "DocumentME2"
    assert document.unique_id == "1.2.250.1.999.1.1.7898.3.1622814651504"
    assert document.patient_id == "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH^^20100907"
    assert document.type_code == Coded("27899-4", "2.16.840.1.113883.6.1", "CR d'acte diagnostique (autre)")
    assert document.format_code is not None and document.format_code.code == "urn:ihe:iti:xds-sd:text:2008"
    assert document.creation_time == "20100319194535"
    assert document.source_patient_info == ("PID-5|patb-quatre^LAURENCE^^^^^L", "PID-7|19070525", "PID-8|F")
    assert document.authors[0].person == "899900063480^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert [c.code for c in signature.confidentiality_codes] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    assert [a.type.rsplit(":", 1)[-1] for a in submission.associations] == ["HasMember", "HasMember", "signs"]


@pytest.mark.parametrize(("name", "new_status"), [("td33c_request.xml", "urn:asip:ci-sis:2010:StatusType:Deleted"),
                                                  ("td33d_request.xml", "urn:asip:ci-sis:2010:StatusType:Archived")])
def test_official_update_availability_status(name: str, new_status: str) -> None:
    submission = parse_submission(submit_objects_request((VECTORS / name).read_bytes()))
    (association,) = submission.associations
    assert association.type == UPDATE_STATUS
    assert association.target == "urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e"
    assert association.slot("NewStatus") == new_status
    assert association.slot("OriginalStatus") is not None
    assert submission.documents == ()


def _official_entries() -> list[etree._Element]:
    response = parse_xml((VECTORS / "td31_response.xml").read_bytes())
    return list(response.iter(f"{{{RIM}}}ExtrinsicObject"))


def test_every_td31_entry_round_trips() -> None:
    elements = _official_entries()
    assert len(elements) == 21
    for element in elements:
        entry = parse_document_entry(element)
        assert entry.repository_unique_id == "1.2.250.1.213.4.1.1.1.2" and entry.hash and entry.version_name == "1"
        assert parse_document_entry(document_entry_element(entry)) == entry


def test_written_entry_looks_like_the_registry_response() -> None:
    official = _official_entries()[0]
    written = document_entry_element(parse_document_entry(official))
    assert written.attrib == official.attrib
    names = [slot.get("name") for slot in written.iterchildren(f"{{{RIM}}}Slot")]
    assert names == [slot.get("name") for slot in official.iterchildren(f"{{{RIM}}}Slot")]
    schemes = sorted(c.get("classificationScheme") for c in written.iter(f"{{{RIM}}}Classification"))
    assert schemes == sorted(c.get("classificationScheme") for c in official.iter(f"{{{RIM}}}Classification"))


def test_resubmitted_entry_keeps_lid_and_previous_version() -> None:
    entry = dataclasses.replace(parse_document_entry(_official_entries()[0]), previous_version="1",
                                confidentiality_codes=(Coded("N", "2.16.840.1.113883.5.25"),
                                                       Coded("MASQUE_PS", "1.2.250.1.213.1.1.4.13")))
    again = parse_document_entry(document_entry_element(entry))
    assert again.lid == entry.lid and again.previous_version == "1"
    assert [c.code for c in again.confidentiality_codes] == ["N", "MASQUE_PS"]


def test_unknown_slots_and_classifications_are_kept() -> None:
    element = _official_entries()[0]
    slot = etree.SubElement(element, f"{{{RIM}}}Slot", name="documentAvailability")
    etree.SubElement(etree.SubElement(slot, f"{{{RIM}}}ValueList"), f"{{{RIM}}}Value").text = "Online"
    etree.SubElement(element, f"{{{RIM}}}Classification", classificationScheme="urn:uuid:other",
                     classifiedObject=element.get("id"), id="x", nodeRepresentation="X")
    entry = parse_document_entry(element)
    assert ("documentAvailability", ("Online",)) in entry.other_slots
    assert entry.other_classifications[0].representation == "X"
    assert parse_document_entry(document_entry_element(entry)) == entry


def _broken(mutate: str) -> etree._Element:
    request = td21().request
    objects = request[0]
    if mutate == "no id":
        del objects.find(f"{{{RIM}}}ExtrinsicObject").attrib["id"]
    elif mutate == "duplicate id":
        objects.findall(f"{{{RIM}}}ExtrinsicObject")[1].set("id", "DocumentME2")
    elif mutate == "folder":
        etree.SubElement(objects, f"{{{RIM}}}RegistryPackage", id="Folder01")
    elif mutate == "coded without scheme":
        node = objects.find(f"{{{RIM}}}ExtrinsicObject/{{{RIM}}}Classification[@nodeRepresentation='10']")
        node.remove(node.find(f"{{{RIM}}}Slot"))
    elif mutate == "association without target":
        del objects.find(f"{{{RIM}}}Association").attrib["targetObject"]
    elif mutate == "no list":
        request.remove(objects)
    return request


@pytest.mark.parametrize("mutate", ["no id", "duplicate id", "folder", "coded without scheme",
                                    "association without target", "no list"])
def test_structurally_broken_metadata_raises(mutate: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_submission(_broken(mutate))
    assert caught.value.code == "XDSRegistryMetadataError" and caught.value.location


def test_wrong_root_is_a_metadata_error() -> None:
    with pytest.raises(MetadataError):
        parse_submission(etree.Element("{urn:x}Other"))


def test_hl7v2_forms() -> None:
    cx = parse_cx("207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH^^20100907")
    assert (cx.id, cx.oid, cx.type_code, cx.problem) == ("207058575627097", "1.2.250.1.213.1.4.10", "NH", "")
    assert parse_cx("207058575627097").problem and parse_cx("1^x^^&1.2&ISO").problem
    assert parse_cx(format_cx("1", "1.2")).oid == "1.2"
    xcn = parse_xcn(format_xcn("899900063480", "MAX", "LIBRE", "1.2.250.1.71.4.2.1"))
    assert (xcn.id, xcn.family, xcn.given, xcn.oid, xcn.id_type) == (
        "899900063480", "MAX", "LIBRE", "1.2.250.1.71.4.2.1", "IDNPS")
    xon = parse_xon(format_xon("CABINET", "1.2.250.1.71.4.2.2", "499900063480001"))
    assert (xon.name, xon.oid, xon.id) == ("CABINET", "1.2.250.1.71.4.2.2", "499900063480001")
