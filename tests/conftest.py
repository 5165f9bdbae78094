"""Shared fixtures: a simulator served from a thread, its admin client, and official INSi vectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import RSAKey
from lxml import etree

from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import IssuedCert, TestCA, client_ssl_context
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import dataset_from_mapping, load_dataset
from esante.simulators.insi import InsiSimulator
from esante.simulators.insi.protocol import NS_CTXLPS, NS_RECSANS
from esante.simulators.psc import PscSimulator

VECTORS = Path(__file__).parent / "vectors"
SOAP12 = "application/soap+xml; charset=utf-8"
REF_IDAM = "ESANTE-REF-0001"


@dataclass
class RunningSimulator:
    url: str
    token: str
    store: EvidenceStore
    http: httpx.Client

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.http.request(method, f"{self.url}/_admin{path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def post_soap(self, body: bytes, content_type: str = SOAP12) -> httpx.Response:
        return self.http.post(f"{self.url}/lps", content=body, headers={"Content-Type": content_type})


@pytest.fixture
def insi(tmp_path: Path) -> Iterator[RunningSimulator]:
    """The INSi simulator over plain HTTP (CPS-assertion mode), journaling into a fresh store."""
    settings = SimulatorSettings(evidence_path=tmp_path / "evidence.sqlite", max_body_bytes=256 * 1024)
    store = EvidenceStore(settings.evidence_path)
    app = create_app(InsiSimulator(load_dataset()), settings, store)
    with ServerHandle(app) as server, httpx.Client(timeout=10) as http:
        yield RunningSimulator(server.url, settings.admin_token, store, http)


PSC_JWT_CLIENT = "esante-jwt-rp"  # a relying party authenticating with private_key_jwt, added for the tests


@dataclass
class RunningPsc:
    """The PSC simulator over HTTPS (client certificates optional), with the certificates tests present."""

    url: str
    token: str
    store: EvidenceStore
    simulator: PscSimulator
    ca: TestCA
    rp_cert: IssuedCert  # CN=ESANTE-REFERENCE-RP, OU=FINESS of structure S001: tls_client_auth and token exchange
    jwt_client_key: RSAKey  # private key of PSC_JWT_CLIENT
    http: httpx.Client  # trusts the test CA, presents no certificate
    mtls: httpx.Client  # presents rp_cert

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.http.request(method, f"{self.url}/_admin{path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def client(self, cert: IssuedCert | None = None) -> httpx.Client:
        """Another HTTP client, presenting ``cert`` (the caller closes it)."""
        return httpx.Client(verify=client_ssl_context(self.ca.ca_pem, cert), timeout=10)


@pytest.fixture(scope="module")
def psc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPsc]:
    """The PSC simulator over HTTPS with the test PKI, one per test module (tests reset it themselves)."""
    tmp = tmp_path_factory.mktemp("psc")
    key = RSAKey.generate_key(2048, private=True)
    data = load_dataset().model_dump(mode="json")
    data["oidc_clients"].append({
        "client_id": PSC_JWT_CLIENT, "name": "JWT-AUTHENTICATED SERVICE (FICTIVE)", "auth_methods": ["private_key_jwt"],
        "public_key_pem": key.as_pem(private=False).decode(), "redirect_uris": ["http://127.0.0.1/psc/callback"]})
    settings = SimulatorSettings(evidence_path=tmp / "evidence.sqlite", max_body_bytes=64 * 1024)
    store = EvidenceStore(settings.evidence_path)
    simulator = PscSimulator(dataset_from_mapping(data))
    ca = TestCA.load_or_create(tmp / "pki")
    rp_cert = ca.issue_structure("750990012", "CENTRE HOSPITALIER UNIVERSITAIRE FICTIF DE PARIS-EST",
                                 cn="ESANTE-REFERENCE-RP")
    tls = TlsSettings(pki_dir=tmp / "pki")
    with ServerHandle(create_app(simulator, settings, store), tls=tls) as server, \
            httpx.Client(verify=client_ssl_context(ca.ca_pem), timeout=10) as http, \
            httpx.Client(verify=client_ssl_context(ca.ca_pem, rp_cert), timeout=10) as mtls:
        yield RunningPsc(server.url, settings.admin_token, store, simulator, ca, rp_cert, key, http, mtls)


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
