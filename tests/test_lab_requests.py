"""The INSi requests of ``esante.harness.lab.insi``: built from the official example request (and nothing else),
valid against the official WSDL's schemas, and answered by the simulator as a real client's are."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from lxml import etree

from esante.harness.lab import Lab
from esante.harness.lab.insi import Software, traits_request, vitale_request
from esante.simulators.dataset import load_dataset
from tests.insi_official import SOAP12, assert_valid, body_child, canonical, require_official

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_REQUEST = ROOT / "tests" / "vectors" / "insi_official_request.xml"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
RESULT = "http://www.cnamts.fr/INSiResultat"


def _official_without_security() -> etree._Element:
    official = etree.parse(str(OFFICIAL_REQUEST)).getroot()
    security = official.find(f"{{{SOAP12}}}Header/{{{WSSE}}}Security")
    assert security is not None
    security.getparent().remove(security)
    return official


def test_the_template_is_the_official_request_without_its_cps_assertion() -> None:
    shipped = yaml.safe_load((ROOT / "harness" / "lab" / "insi_request.yaml").read_text(encoding="utf-8"))
    assert shipped["source"] == "tests/vectors/insi_official_request.xml"
    assert canonical(etree.fromstring(shipped["envelope"].encode())) == canonical(_official_without_security())


def test_the_official_values_give_back_the_official_request() -> None:
    """Fed the official example's own values, the builder writes the official request (ids and times aside)."""
    built = etree.fromstring(traits_request(
        birth_name="PATB-QUATRE", first_names="LAURENCE", sex="F", birth_date="1907-05-25",
        software=Software(idam="NumAutorisation", name="GIE", version="1.00.00"),
        message_id="0dfb8f66-de74-4f30-ba83-bebde1239ebf").body)
    official = _official_without_security()
    assert canonical(body_child(built)) == canonical(body_child(official))
    volatile = {"Id", "Temps", "Instance"}

    def stable(element: etree._Element) -> etree._Element:
        element = copy.deepcopy(element)
        for node in element.iter():
            if isinstance(node.tag, str) and etree.QName(node).localname in volatile:
                node.text = ""
        return element

    assert canonical(stable(built.find(f"{{{SOAP12}}}Header"))) == \
        canonical(stable(official.find(f"{{{SOAP12}}}Header")))


@pytest.mark.parametrize("build", [lambda: traits_request(patient="P001"), lambda: vitale_request(patient="P001"),
                                   lambda: traits_request(birth_name="DE VINCI", first_names=["LEONARDO", "DI"],
                                                          sex="M", birth_date="1452-00-00", birth_place="99127")])
def test_the_requests_follow_the_official_schemas(build) -> None:  # type: ignore[no-untyped-def]
    require_official()
    envelope = etree.fromstring(build().body)
    for block in envelope.find(f"{{{SOAP12}}}Header"):
        if isinstance(block.tag, str):
            assert_valid(block)
    assert_valid(body_child(envelope))


def test_the_simulator_answers_them_as_a_real_clients(tmp_path: Path) -> None:
    patient = load_dataset().patient("P001")
    with Lab(["insi"], workdir=tmp_path) as lab, lab.http(lab.ca.issue_client("INSI-AUTO")) as http:
        for request in (traits_request(patient="P001"), vitale_request(patient="P001")):
            answer = http.post(lab.url("insi") + request.path, content=request.body, headers=request.headers)
            assert answer.status_code == 200, answer.text
            result = body_child(etree.fromstring(answer.content))
            assert result.findtext(f"{{{RESULT}}}CR/{{{RESULT}}}CodeCR") == "00"
            assert result.findtext(f".//{{{RESULT}}}INSACTIF/{{{RESULT}}}IdIndividu/{{{RESULT}}}NumIdentifiant") \
                == patient.ins.nir
        operations = [e.notes.get("operation") for e in lab["insi"].exchanges()]
    assert operations == ["rechercherInsAvecTraitsIdentite", "rechercherInsAvecCarteVitale"]


def test_a_request_lacking_what_the_service_needs_is_refused() -> None:
    with pytest.raises(ValueError, match="birth date"):
        traits_request(birth_name="MOREAU", first_names="CLAIRE", sex="F")
    without_card = next(p for p in load_dataset().patients if p.vitale is None)
    with pytest.raises(ValueError, match="no carte Vitale"):
        vitale_request(patient=without_card.id)
    with pytest.raises(KeyError, match="P999"):
        traits_request(patient="P999")
