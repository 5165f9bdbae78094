"""An independent SOAP client, zeep, driven by the official WSDL DESIR_ICIR_EXP_1.5.0 alone, against the INSi
simulator: both operations, over plain HTTP and HTTPS with a CPS assertion in ``wsse:Security`` (the CPS
endpoint), and over mutual TLS with INSI-AUTO, INSI-MANU and a wrong CN and no Security block (the certificate
endpoint, as real clients call it). zeep builds every request from the WSDL's types (the header parts, the
SAML assertion, the bodies; wsa:Action from the WSDL's ``wsaw:Action``) and parses every answer and fault with
them: what a generated client would see.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from esante.harness.lab import Lab
from tests.conftest import REF_IDAM
from tests.insi_official import WSA_LOCAL, WSA_URL, WSDL, require_official

zeep = pytest.importorskip("zeep", reason="zeep is a test dependency (pip install -e '.[test]')")
requests = pytest.importorskip("requests")
from zeep.exceptions import Fault  # noqa: E402
from zeep.transports import Transport  # noqa: E402
from zeep.wsa import WsAddressingPlugin  # noqa: E402

BINDING = "{http://www.cnamts.fr/webservice}ICIRServiceBinding"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SIRAM = "urn:siram"
X509_SUBJECT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"


class OfflineTransport(Transport):
    """zeep's transport, reading the WS-Addressing schema the WSDL imports by URL from the local copy and refusing
    any other network fetch; its session ignores the environment's CA bundle and proxies."""

    def load(self, url: str) -> bytes:
        if url == WSA_URL:
            return WSA_LOCAL.read_bytes()
        if url.startswith(("http:", "https:")):
            raise AssertionError(f"the WSDL made zeep fetch {url}")
        return super().load(url)


class InsiZeep:
    """One zeep client of the official WSDL, bound to the simulator's /lps, with the contexts it sends."""

    def __init__(self, endpoint: str, session: Any, *, idam: str = REF_IDAM, cps: bool = False) -> None:
        session.trust_env = False
        client = zeep.Client(str(WSDL), transport=OfflineTransport(session=session),
                             settings=zeep.Settings(strict=True), plugins=[WsAddressingPlugin()])
        self.client, self.idam, self.cps = client, idam, cps
        self.service = client.create_service(BINDING, endpoint)

    def headers(self, beneficiary: dict[str, Any] | None = None) -> dict[str, Any]:
        """The header parts of the WSDL's binding: ContexteBAM, ContexteLPS and, in CPS mode, Security."""
        now = datetime.now(UTC)
        headers: dict[str, Any] = {
            "NO1_ContexteBAM": {"Id": str(uuid.uuid4()), "Temps": now, "Emetteur": "zeep", "Version": "01_02",
                                "COUVERTURE": {"BENEFICIAIRE": beneficiary} if beneficiary else {}},
            "NO1_ContexteLPS": {"Id": str(uuid.uuid4()), "Temps": now, "Emetteur": "zeep", "Version": "01_00",
                                "Nature": "CTXLPS", "LPS": {"IDAM": {"_value_1": self.idam, "R": "4"},
                                                           "Version": "1.0.0", "Instance": str(uuid.uuid4()),
                                                           "Nom": "zeep-insi"}}}
        if self.cps:
            headers["NO1_Security"] = {"Assertion": [self.assertion()]}
        return headers

    def assertion(self) -> Any:
        """A CPS "assertion PS", built from the WSDL's SAML types (the simulator does not check its signature)."""
        assertion = self.client.get_element(f"{{{SAML}}}Assertion")
        return assertion(
            Issuer={"_value_1": "CN=899900063480", "Format": X509_SUBJECT},
            Subject={"NameID": {"_value_1": "899900063480", "NameQualifier": "CPS"}},
            ID=f"_{uuid.uuid4()}", IssueInstant=datetime.now(UTC), Version="2.0")

    def traits(self, birth_name: str, first_names: list[str], sex: str, birth_date: str) -> Any:
        return self.service.rechercherInsAvecTraitsIdentite(
            NomNaissance=birth_name, Prenom=first_names, Sexe=sex, DateNaissance=birth_date,
            _soapheaders=self.headers())

    def vitale(self, nir: str, key: str, birth_date: str, rank: int) -> Any:
        return self.service.rechercherInsAvecCarteVitale(
            MatriculeIndividu={"NumIdentifiant": nir, "Cle": key}, DateNaissance=birth_date, RangNaissance=str(rank),
            _soapheaders=self.headers({"DateNai": birth_date, "Rang": rank}))

    def erreur(self, fault: Fault) -> Any:
        """The fault's ``siram:Erreur``, parsed with the WSDL's type."""
        detail = fault.detail.find(f"{{{SIRAM}}}Erreur")
        return self.client.get_element(f"{{{SIRAM}}}Erreur").parse(detail, self.client.wsdl.types)


@pytest.fixture(scope="module")
def http_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_official()
    with Lab(["insi"], workdir=tmp_path_factory.mktemp("http"), tls=False) as lab:
        yield lab


@pytest.fixture(scope="module")
def https_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_official()
    with Lab(["insi"], workdir=tmp_path_factory.mktemp("https")) as lab:
        yield lab


def _session(lab: Lab, cn: str | None = None) -> Any:
    session = requests.Session()
    if lab.ca_file is not None:
        session.verify = str(lab.ca_file)
    if cn is not None:
        cert, key = lab.ca.issue_client(cn).write(lab.workdir, f"client-{cn}")
        session.cert = (str(cert), str(key))
    return session


def _client(lab: Lab, cn: str | None = None, **kwargs: Any) -> InsiZeep:
    return InsiZeep(f"{lab.url('insi')}/lps", _session(lab, cn), **kwargs)


def _assert_found(result: Any, nir: str, key: str, first_names: str) -> None:
    """A CR 00 as zeep parses it: the live service's shapes (OID 4.8, no dates on INSACTIF, ListePrenom only)."""
    assert (result.CR.CodeCR, result.CR.LibelleCR) == ("00", "OK")
    active = result.INDIVIDU.INSACTIF
    assert (active.IdIndividu.NumIdentifiant, active.IdIndividu.Cle, active.OID) == (nir, key, "1.2.250.1.213.1.4.8")
    assert active.DateDeb is None and active.DateFin is None
    assert result.INDIVIDU.TIQ.ListePrenom == first_names and result.INDIVIDU.TIQ.Prenom is None


# -- the CPS endpoint: an assertion in wsse:Security ----------------------------------------------------------
@pytest.mark.parametrize("lab_name", ["http_lab", "https_lab"])
def test_cps_mode_over_http_and_https(request: pytest.FixtureRequest, lab_name: str) -> None:
    client = _client(request.getfixturevalue(lab_name), cps=True)
    _assert_found(client.traits("NOËL", ["FRANÇOIS"], "M", "1971-12-25"), "1711244109063", "96", "FRANCOIS GABRIEL")
    _assert_found(client.vitale("2850469383214", "80", "1985-04-12", 1), "2850469383214", "80", "CLAIRE")


def test_cps_mode_without_an_assertion_is_refused(https_lab: Lab) -> None:
    client = _client(https_lab)
    with pytest.raises(Fault) as fault:
        client.traits("MOREAU", ["CLAIRE"], "F", "1985-04-12")
    assert client.erreur(fault.value).code == "desir_560"


# -- the certificate endpoint: mutual TLS, no Security block --------------------------------------------------
@pytest.mark.parametrize("cn", ["INSI-AUTO", "INSI-MANU"])
def test_mtls_with_the_insi_certificates_and_no_security(https_lab: Lab, cn: str) -> None:
    client = _client(https_lab, cn)
    result = client.traits("LEMAIRE", ["JULIEN"], "M", "1974-02-28")
    _assert_found(result, "1740280021113", "49", "JULIEN")
    (old,) = result.INDIVIDU.INSHISTO
    assert (old.IdIndividu.NumIdentifiant, old.OID) == ("1740380021113", "1.2.250.1.213.1.4.8")
    assert (old.DateDeb.isoformat(), old.DateFin.isoformat()) == ("1995-03-01", "2019-11-30")
    child = client.vitale("1830869387046", "49", "2016-03-14", 2)  # a twin on the parent's card
    _assert_found(child, "1160369387152", "42", "JEAN MARC")


def test_mtls_with_a_wrong_cn_gets_desir_560_with_the_message_id(https_lab: Lab) -> None:
    client = _client(https_lab, "750000001")
    history = zeep.plugins.HistoryPlugin()
    client.client.plugins.append(history)
    with pytest.raises(Fault) as fault:
        client.traits("MOREAU", ["CLAIRE"], "F", "1985-04-12")
    erreur = client.erreur(fault.value)
    sent = history.last_sent["envelope"].findtext(".//{http://www.w3.org/2005/08/addressing}MessageID")
    assert (erreur.code, erreur.severite, erreur.messageID) == ("desir_560", "erreur", sent)
    assert fault.value.code.endswith("Sender") and "droits suffisants" in fault.value.message


def test_several_and_none_parse_as_a_bare_cr(https_lab: Lab) -> None:
    client = _client(https_lab, "INSI-AUTO")
    several = client.traits("BERNARD", ["JEAN"], "M", "2016-03-14")
    none = client.traits("HOUILLES", ["PIERRE"], "M", "1993-01-27")
    assert (several.CR.CodeCR, several.CR.LibelleCR, several.INDIVIDU) == ("02", "Plusieurs identites trouvees", None)
    assert (none.CR.CodeCR, none.CR.LibelleCR, none.INDIVIDU) == ("01", "Aucune identite trouvee", None)


def test_an_unknown_idam_is_the_wsdls_fault(https_lab: Lab) -> None:
    client = _client(https_lab, "INSI-AUTO", idam="NumAutorisation")
    with pytest.raises(Fault) as fault:
        client.traits("MOREAU", ["CLAIRE"], "F", "1985-04-12")
    erreur = client.erreur(fault.value)
    assert (erreur.code, erreur._value_1) == ("desir_550", "Numéro d'autorisation du logiciel inconnu.")
    assert etree.QName(fault.value.detail[0]).namespace == SIRAM

