"""Shared fixtures: simulators of a lab (esante.harness.lab) as the tests handle them, and official INSi vectors;
the hypothesis profiles of the fuzzing properties (tests/fuzz.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from joserfc.jwk import RSAKey
from lxml import etree

from esante.harness.lab import Lab, LabSimulator
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import IssuedCert, TestCA
from esante.simulators.dataset import load_dataset
from esante.simulators.insi.protocol import NS_CTXLPS, NS_RECSANS
from esante.simulators.psc import PscSimulator

VECTORS = Path(__file__).parent / "vectors"

# Hypothesis profiles. "ci" (the default, what .ci/run plays): few examples, the same ones each run (derandomised:
# a red build is the change's, not the draw's), a few minutes for every property of the suite. "release": many
# random examples, for release checks (an hour or so): pytest tests/test_fuzz_*.py --hypothesis-profile=release
# (or ESANTE_HYPOTHESIS_PROFILE=release). Tests that set their own max_examples keep them in both.
_SLOW_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=_SLOW_FIXTURES)
settings.register_profile("release", max_examples=3000, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_FIXTURES)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None):  # --hypothesis-profile=NAME wins
        settings.load_profile(os.environ.get("ESANTE_HYPOTHESIS_PROFILE", "ci"))
SOAP12 = "application/soap+xml; charset=utf-8"
REF_IDAM = "ESANTE-REF-0001"


class RunningSimulator(LabSimulator):
    """A simulator of a one-simulator lab, with the INSi tests' own way of posting a SOAP message."""

    def post_soap(self, body: bytes, content_type: str = SOAP12) -> httpx.Response:
        return self.http.post(f"{self.url}/lps", content=body, headers={"Content-Type": content_type})


@pytest.fixture
def insi(tmp_path: Path) -> Iterator[RunningSimulator]:
    """The INSi simulator over plain HTTP (CPS-assertion mode), journaling into a fresh store."""
    with Lab(["insi"], workdir=tmp_path, tls=False, max_body_bytes=256 * 1024) as lab:
        yield RunningSimulator(lab, "insi")


PSC_JWT_CLIENT = "esante-jwt-rp"  # a relying party authenticating with private_key_jwt, added for the tests


@dataclass(frozen=True)
class RunningPsc:
    """The PSC simulator over HTTPS (client certificates optional), with the certificates tests present."""

    lab: Lab
    ca: TestCA
    rp_cert: IssuedCert  # CN=ESANTE-REFERENCE-RP, OU=FINESS of structure S001: tls_client_auth and token exchange
    jwt_client_key: RSAKey  # private key of PSC_JWT_CLIENT
    mtls: httpx.Client  # presents rp_cert

    @property
    def url(self) -> str:
        return self.lab.url("psc")

    @property
    def http(self) -> httpx.Client:  # trusts the test CA, presents no certificate
        return self.lab.client

    @property
    def store(self) -> EvidenceStore:
        return self.lab.store

    @property
    def simulator(self) -> PscSimulator:
        return self.lab.simulator("psc")  # type: ignore[return-value]

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.lab.admin("psc", method, path, body)

    def client(self, cert: IssuedCert | None = None) -> httpx.Client:
        """Another HTTP client, presenting ``cert`` (the caller closes it)."""
        return self.lab.http(cert)


@pytest.fixture(scope="module")
def psc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPsc]:
    """The PSC simulator over HTTPS with the test PKI, one per test module (tests reset it themselves); its data
    set adds a relying party authenticating with private_key_jwt."""
    key = RSAKey.generate_key(2048, private=True)
    data = load_dataset().model_dump(mode="json")
    data["oidc_clients"].append({
        "client_id": PSC_JWT_CLIENT, "name": "JWT-AUTHENTICATED SERVICE (FICTIVE)", "auth_methods": ["private_key_jwt"],
        "public_key_pem": key.as_pem(private=False).decode(), "redirect_uris": ["http://127.0.0.1/psc/callback"]})
    with Lab(["psc"], workdir=tmp_path_factory.mktemp("psc"), max_body_bytes=64 * 1024) as lab:
        assert lab.admin("psc", "PUT", "/dataset", {"data": data}).status_code == 200
        rp_cert = lab.ca.issue_structure("750990012", "CENTRE HOSPITALIER UNIVERSITAIRE FICTIF DE PARIS-EST",
                                         cn="ESANTE-REFERENCE-RP")
        with lab.http(rp_cert) as mtls:
            yield RunningPsc(lab, lab.ca, rp_cert, key, mtls)


def official_request(*, idam: str = REF_IDAM, birth_name: str | None = None, first_names: list[str] | None = None,
                     sex: str | None = None, birth_date: str | None = None) -> bytes:
    """The official INSi example request, with the IDAM and traits replaced as asked."""
    root = etree.fromstring((VECTORS / "insi_official_request.xml").read_bytes())
    root.find(f".//{{{NS_CTXLPS}}}IDAM").text = idam
    body = root.find(f".//{{{NS_RECSANS}}}RECSANSVITALE")
    replacements = {"NomNaissance": birth_name, "Sexe": sex, "DateNaissance": birth_date}
    for name, value in replacements.items():
        if value is not None:
            body.find(f"{{{NS_RECSANS}}}{name}").text = value
    if first_names is not None:
        body.find(f"{{{NS_RECSANS}}}Prenom").text = " ".join(first_names)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
