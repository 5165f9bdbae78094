"""The official DMP example messages (tests/vectors/dmp/), read for the DMP document tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from esante.simulators.dataset import load_dataset
from esante.simulators.dataset.models import Dataset
from esante.simulators.kits.xml import parse_xml

VECTORS = Path(__file__).parent / "vectors" / "dmp"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
#: The official request's xop:Include cids, by the DocumentEntry they carry (its xds:Document ids differ in
#: case from the ExtrinsicObject ids: "documentME2" vs "DocumentME2").
TD21_PARTS = {"DocumentME2": "WS_DMP_TD2.1-DocumentME2.xml", "Signature01": "WS_DMP_TD2.1-SignatureXades.xml"}


@dataclass(frozen=True)
class OfficialFeed:
    request: etree._Element  # the SubmitObjectsRequest
    documents: dict[str, bytes]


def mime_parts(raw: bytes) -> dict[str, bytes]:
    """The parts of the saved multipart/related request, by Content-ID."""
    boundary = raw.split(b"\n", 1)[0].strip()
    parts = {}
    for part in raw.split(boundary)[1:-1]:
        head, _, body = part.lstrip(b"\r\n").partition(b"\n\n")
        cid = re.search(rb"Content-ID: <([^>]+)>", head)
        assert cid is not None
        parts[cid.group(1).decode()] = body.rstrip(b"\r\n")
    return parts


def submit_objects_request(data: bytes) -> etree._Element:
    element = parse_xml(data).find(f".//{{{LCM}}}SubmitObjectsRequest")
    assert element is not None
    return element


def td21() -> OfficialFeed:
    parts = mime_parts((VECTORS / "td21_request.txt").read_bytes())
    return OfficialFeed(submit_objects_request(parts["rootpart@soapui.org"]),
                        {entry: parts[cid] for entry, cid in TD21_PARTS.items()})


def dataset_with_official_patient() -> Dataset:
    """The default data set: it holds the official examples' patient (DMPEX01, INS-NIR de test
    207058575627097) and author (899900063480), as the DMP that answered the official example knows them."""
    return load_dataset()
