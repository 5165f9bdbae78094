"""Hostile XML and oversized bodies get the service's own clear fault, and the simulator stays up."""

from __future__ import annotations

import pytest
from lxml import etree

from esante.simulators.kits.xml import XmlRejected, parse_xml
from tests.conftest import VECTORS, RunningSimulator, official_request

HOSTILE = sorted((VECTORS / "hostile").glob("*.xml"))


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_parser_refuses_dtds_and_entities(path) -> None:
    with pytest.raises(XmlRejected, match="not allowed"):
        parse_xml(path.read_bytes())


def test_parser_refuses_oversize_and_garbage() -> None:
    with pytest.raises(XmlRejected, match="exceeds"):
        parse_xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    with pytest.raises(XmlRejected, match="not well-formed"):
        parse_xml(b"<a><b></a>")
    with pytest.raises(XmlRejected, match="empty"):
        parse_xml(b"   ")


def _fault(response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    erreur = root.find(".//{urn:siram}Erreur")
    return erreur.get("code"), erreur.text


def _still_serving(insi: RunningSimulator) -> None:
    ok = insi.post_soap(official_request(birth_name="MOREAU", first_names=["CLAIRE"], sex="F",
                                         birth_date="1985-04-12"))
    assert ok.status_code == 200 and b"<CodeCR>00</CodeCR>" in ok.content


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_simulator_answers_hostile_xml_with_a_fault(insi: RunningSimulator, path) -> None:
    response = insi.post_soap(path.read_bytes())
    assert response.status_code == 500
    code, text = _fault(response)
    assert code == "insi_101" and "not allowed" in text
    assert b"root:" not in response.content  # /etc/passwd never leaks
    _still_serving(insi)


def test_simulator_refuses_oversized_body_and_journals_it(insi: RunningSimulator) -> None:
    response = insi.post_soap(b"<x>" + b"A" * (512 * 1024) + b"</x>")
    assert response.status_code == 500
    code, text = _fault(response)
    assert code == "insi_102" and "limit" in text
    exchange = insi.admin("GET", "/journal").json()["exchanges"][-1]
    assert exchange["request_truncated"] is True and exchange["status"] == 500
    _still_serving(insi)
