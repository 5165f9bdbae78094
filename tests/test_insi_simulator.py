"""The INSi simulator against the official example messages and its own published behaviour."""

from __future__ import annotations

import pytest
from lxml import etree

from esante.simulators.insi.protocol import NS_RESULTAT
from esante.simulators.kits.soap import SOAP11_NS, WSSE_NS
from tests.conftest import VECTORS, RunningSimulator, official_request

R = f"{{{NS_RESULTAT}}}"


def _result(response) -> etree._Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/soap+xml")
    return etree.fromstring(response.content).find(f".//{R}RESULTAT")


def _fault_code(response) -> str:
    assert response.status_code == 500
    return etree.fromstring(response.content).find(".//{urn:siram}Erreur").get("code")


def test_official_request_as_published_is_refused_for_its_unknown_idam(insi: RunningSimulator) -> None:
    """The official example carries the placeholder IDAM 'NumAutorisation': desir_550, as the real service."""
    response = insi.post_soap((VECTORS / "insi_official_request.xml").read_bytes())
    assert _fault_code(response) == "desir_550"
    root = etree.fromstring(response.content)
    assert root.find(".//{http://www.w3.org/2003/05/soap-envelope}Subcode/"
                     "{http://www.w3.org/2003/05/soap-envelope}Value").text == "soap:siram_100"


def test_official_request_with_authorised_idam_finds_the_official_example_identity(insi: RunningSimulator) -> None:
    """PATB-QUATRE LAURENCE (the data set's DMPEX01): the INS of the DMP package's example answer. The answer is
    the live service's shape (``test_insi_official.py`` compares it element for element): ListePrenom and no
    Prenom in TIQ, where this older example has Prenom and no ListePrenom."""
    result = _result(insi.post_soap(official_request()))
    official = etree.parse(str(VECTORS / "insi_official_response.xml")).getroot().find(f".//{R}RESULTAT")
    assert result.find(f"{R}CR/{R}CodeCR").text == "00"
    ins = [e.text for e in official.iterfind(f".//{R}INDIVIDU/{R}INSACTIF/{R}IdIndividu/*")]
    assert ins == ["2070585756270", "97"]
    assert [e.text for e in result.iterfind(f".//{R}INDIVIDU/{R}INSACTIF/{R}IdIndividu/*")] == ins
    assert result.findtext(f".//{R}INSACTIF/{R}OID") == official.findtext(f".//{R}INSACTIF/{R}OID")
    assert result.findtext(f".//{R}TIQ/{R}ListePrenom") == "LAURENCE"
    assert result.find(f".//{R}TIQ/{R}Prenom") is None


@pytest.mark.parametrize(("traits", "code"), [
    ({"birth_name": "moreau", "first_names": ["Claire"], "sex": "F", "birth_date": "1985-04-12"}, "00"),
    ({"birth_name": "MARTIN", "first_names": ["MARIE"], "sex": "F", "birth_date": "1970-01-01"}, "02"),
    ({"birth_name": "BERNARD", "first_names": ["JEAN"], "sex": "M", "birth_date": "2016-03-14"}, "02"),
    ({"birth_name": "BERNARD", "first_names": ["LUC"], "sex": "M", "birth_date": "2016-03-14"}, "00"),
    ({"birth_name": "BERNARD", "first_names": ["JEAN", "MARC"], "sex": "M", "birth_date": "2016-03-14"}, "00"),
    ({"birth_name": "PERRIN", "first_names": ["SOPHIE", "ANNE", "MARIE"], "sex": "F",
      "birth_date": "1992-06-23"}, "01"),
    ({"birth_name": "PERRIN", "first_names": ["ANNE"], "sex": "F", "birth_date": "1992-06-23"}, "00"),
    ({"birth_name": "HAIDARI", "first_names": ["FARID"], "sex": "M", "birth_date": "1969-00-00"}, "00"),
    ({"birth_name": "HAIDARI", "first_names": ["FARID"], "sex": "M", "birth_date": "1969-01-01"}, "01"),
])
def test_trait_matching(insi: RunningSimulator, traits: dict, code: str) -> None:
    result = _result(insi.post_soap(official_request(**traits)))
    assert result.find(f"{R}CR/{R}CodeCR").text == code
    assert (result.find(f"{R}INDIVIDU") is not None) == (code == "00")


def test_accents_and_case_are_folded_and_reference_traits_returned(insi: RunningSimulator) -> None:
    from esante.simulators.dataset import load_dataset

    p006 = load_dataset().patient("P006")
    result = _result(insi.post_soap(official_request(birth_name=p006.birth_name.lower(),
                                                     first_names=p006.first_names, sex=p006.sex,
                                                     birth_date=p006.birth_date)))
    assert result.find(f"{R}CR/{R}CodeCR").text == "00"
    assert result.find(f".//{R}TIQ/{R}NomNaissance").text == "LEVEQUE"
    assert result.find(f".//{R}INSACTIF/{R}OID").text == "1.2.250.1.213.1.4.8"  # INS-NIR, as every live answer


def test_replaced_ins_is_listed_in_history(insi: RunningSimulator) -> None:
    result = _result(insi.post_soap(official_request(birth_name="LEMAIRE", first_names=["JULIEN"], sex="M",
                                                     birth_date="1974-02-28")))
    assert [e.text for e in result.iter(f"{R}NumIdentifiant")] == ["1740280021113", "1740380021113"]


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda root: root.find(".//{http://www.w3.org/2005/08/addressing}MessageID").getparent().remove(
        root.find(".//{http://www.w3.org/2005/08/addressing}MessageID")), "insi_110"),
    (lambda root: root.find(".//{urn:siram:lps:ctxlps}ContexteLPS").getparent().remove(
        root.find(".//{urn:siram:lps:ctxlps}ContexteLPS")), "insi_110"),
    (lambda root: root.find(".//{urn:siram:bam:ctxbam}Temps").__setattr__("text", "yesterday"), "insi_111"),
    (lambda root: root.find(".//{http://www.w3.org/2005/08/addressing}Action").__setattr__("text", "urn:x"),
     "insi_112"),
    (lambda root: root.find(".//{http://www.cnamts.fr/INSiRecSans}Sexe").getparent().remove(
        root.find(".//{http://www.cnamts.fr/INSiRecSans}Sexe")), "insi_120"),
    (lambda root: root.find(".//{http://www.cnamts.fr/INSiRecSans}NomNaissance").__setattr__("text", "R2D2"),
     "insi_120"),
    (lambda root: root.find(f".//{{{WSSE_NS}}}Security").getparent().remove(root.find(f".//{{{WSSE_NS}}}Security")),
     "desir_560"),  # no certificate and no CPS assertion
    (lambda root: root.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}Assertion").getparent().remove(
        root.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")), "insi_111"),  # Security.xsd: 1..n
    (lambda root: root.find(".//{urn:siram:lps:ctxlps}Nom").getparent().remove(
        root.find(".//{urn:siram:lps:ctxlps}Nom")), "insi_111"),
    (lambda root: root.find(".//{http://www.cnamts.fr/INSiRecSans}DateNaissance").__setattr__("text", "1985-4-12"),
     "insi_120"),
    (lambda root: root.find(".//{http://www.cnamts.fr/INSiRecSans}Sexe").__setattr__("text", "X"), "insi_120"),
])
def test_bad_requests_get_the_service_fault(insi: RunningSimulator, mutate, code: str) -> None:
    root = etree.fromstring(official_request())
    mutate(root)
    assert _fault_code(insi.post_soap(etree.tostring(root))) == code


def test_soap11_and_wrong_content_type_are_refused(insi: RunningSimulator) -> None:
    assert _fault_code(insi.post_soap(official_request(), content_type="text/xml")) == "insi_101"
    soap11 = official_request().replace(b"http://www.w3.org/2003/05/soap-envelope", SOAP11_NS.encode())
    assert _fault_code(insi.post_soap(soap11)) == "insi_101"


def test_revoked_software_is_refused(insi: RunningSimulator) -> None:
    assert _fault_code(insi.post_soap(official_request(idam="ESANTE-REVOKED-0099"))) == "desir_550"
