"""A second independent SOAP client: node-soap (npm ``soap``, what Node INSi clients in production are built
on), driven by the official WSDL alone through ``tests/node/insi_client.mjs``, against the INSi simulator: both
operations, CPS mode over HTTP and HTTPS, mutual TLS with INSI-AUTO, INSI-MANU and a wrong CN.

Needs Node.js and the package installed beside the script: ``npm ci --prefix tests/node`` (the versions are
pinned in ``tests/node/package-lock.json``). Skips, saying which is missing, otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from esante.harness.lab import Lab
from tests.conftest import REF_IDAM, VECTORS
from tests.insi_official import WSA_LOCAL, WSA_URL, WSDL, require_official

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "insi_client.mjs"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the node-soap client cannot run")
    if not (NODE_DIR / "node_modules" / "soap" / "package.json").is_file():
        pytest.skip("node-soap is not installed: run `npm ci --prefix tests/node`")
    return node


@pytest.fixture(scope="module")
def node() -> str:
    require_official()
    return _require_node()


@pytest.fixture(scope="module")
def http_lab(tmp_path_factory: pytest.TempPathFactory, node: str) -> Iterator[Lab]:
    with Lab(["insi"], workdir=tmp_path_factory.mktemp("http"), tls=False) as lab:
        yield lab


@pytest.fixture(scope="module")
def https_lab(tmp_path_factory: pytest.TempPathFactory, node: str) -> Iterator[Lab]:
    with Lab(["insi"], workdir=tmp_path_factory.mktemp("https")) as lab:
        yield lab


def cps_assertion() -> str:
    """The DMP package's CPS assertion, as text (the simulator does not check its signature)."""
    request = etree.parse(str(VECTORS / "insi_official_request.xml")).getroot()
    return etree.tostring(request.find(f".//{{{SAML}}}Assertion"), encoding="unicode")


def run(node: str, lab: Lab, operation: str, args: dict[str, Any], *, cn: str | None = None, cps: bool = False,
        idam: str = REF_IDAM, beneficiary: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call by the node-soap client; its JSON outcome."""
    job: dict[str, Any] = {"wsdl": str(WSDL), "wsaUrl": WSA_URL, "wsaLocal": str(WSA_LOCAL),
                           "endpoint": f"{lab.url('insi')}/lps", "idam": idam, "operation": operation,
                           "args": args, "beneficiary": beneficiary}
    if lab.ca_file is not None:
        job["ca"] = str(lab.ca_file)
    if cn is not None:
        cert, key = lab.ca.issue_client(cn).write(lab.workdir, f"node-{cn}")
        job |= {"cert": str(cert), "key": str(key)}
    if cps:
        job["assertion"] = cps_assertion()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run([node, str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=60,
                          cwd=NODE_DIR, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


TRAITS = {"NomNaissance": "LEMAIRE", "Prenom": "JULIEN", "Sexe": "M", "DateNaissance": "1974-02-28"}


def _assert_lemaire(outcome: dict[str, Any]) -> None:
    """LEMAIRE JULIEN as node-soap parses it: OID 4.8, no dates on INSACTIF, ListePrenom only, one INSHISTO."""
    assert outcome["ok"], outcome
    result = outcome["result"]
    assert result["CR"] == {"CodeCR": "00", "LibelleCR": "OK"}
    individu = result["INDIVIDU"]
    assert individu["INSACTIF"] == {"IdIndividu": {"NumIdentifiant": "1740280021113", "Cle": "49"},
                                    "OID": "1.2.250.1.213.1.4.8"}
    histo = individu["INSHISTO"]
    assert histo["IdIndividu"]["NumIdentifiant"] == "1740380021113" and histo["OID"] == "1.2.250.1.213.1.4.8"
    assert "Prenom" not in individu["TIQ"] and individu["TIQ"]["ListePrenom"] == "JULIEN"


@pytest.mark.parametrize("lab_name", ["http_lab", "https_lab"])
def test_cps_mode_over_http_and_https(request: pytest.FixtureRequest, node: str, lab_name: str) -> None:
    outcome = run(node, request.getfixturevalue(lab_name), "traits", TRAITS, cps=True)
    _assert_lemaire(outcome)
    assert "Security" in outcome["request"] and "Assertion" in outcome["request"]


@pytest.mark.parametrize("cn", ["INSI-AUTO", "INSI-MANU"])
def test_mtls_both_operations_without_security(https_lab: Lab, node: str, cn: str) -> None:
    outcome = run(node, https_lab, "traits", TRAITS, cn=cn)
    _assert_lemaire(outcome)
    assert "Security" not in outcome["request"]
    vitale = run(node, https_lab, "vitale", {"MatriculeIndividu": {"NumIdentifiant": "1830869387046", "Cle": "49"},
                                              "DateNaissance": "2016-03-14", "RangNaissance": "2"},
                 cn=cn, beneficiary={"DateNai": "2016-03-14", "Rang": 2})
    assert vitale["ok"], vitale
    assert vitale["result"]["INDIVIDU"]["INSACTIF"]["IdIndividu"]["NumIdentifiant"] == "1160369387152"
    assert vitale["result"]["INDIVIDU"]["TIQ"]["ListePrenom"] == "JEAN MARC"


def test_mtls_with_a_wrong_cn_is_desir_560_with_the_message_id(https_lab: Lab, node: str) -> None:
    outcome = run(node, https_lab, "traits", TRAITS, cn="750000001")
    assert not outcome["ok"] and outcome["status"] == 500
    sent = etree.fromstring(outcome["request"].encode()).findtext(".//{http://www.w3.org/2005/08/addressing}MessageID")
    assert outcome["erreur"]["code"] == "desir_560" and outcome["erreur"]["messageID"] == sent


def test_an_unknown_idam_is_desir_550(https_lab: Lab, node: str) -> None:
    outcome = run(node, https_lab, "traits", TRAITS, cn="INSI-AUTO", idam="NumAutorisation")
    assert outcome["erreur"]["code"] == "desir_550"
    assert outcome["erreur"]["text"] == "Numéro d'autorisation du logiciel inconnu."


def test_several_identities_is_a_bare_cr(https_lab: Lab, node: str) -> None:
    outcome = run(node, https_lab, "traits", {**TRAITS, "NomNaissance": "BERNARD", "Prenom": "JEAN",
                                              "DateNaissance": "2016-03-14"}, cn="INSI-AUTO")
    assert outcome["result"] == {"CR": {"CodeCR": "02", "LibelleCR": "Plusieurs identites trouvees"}}
