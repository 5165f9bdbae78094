"""The test PKI and the simulators over HTTPS and mutual TLS."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import TestCA, client_ssl_context, common_name_of_der, subject_of_der
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.insi import InsiSimulator
from tests.conftest import SOAP12, official_request


def test_ca_is_created_once_and_reloaded(tmp_path: Path) -> None:
    first = TestCA.load_or_create(tmp_path)
    second = TestCA.load_or_create(tmp_path)
    assert first.ca_pem == second.ca_pem
    assert oct((tmp_path / "ca.key.pem").stat().st_mode & 0o777) == "0o600"


def test_issued_certificates_carry_the_national_identifiers(tmp_path: Path) -> None:
    ca = TestCA.load_or_create(tmp_path)
    professional = x509.load_pem_x509_certificate(ca.issue_professional("10999900011", "MARTIN", "ALICE",
                                                                        "Médecin").cert_pem)
    structure = x509.load_pem_x509_certificate(ca.issue_structure("750000001", "CHU FICTIF").cert_pem)
    insi = x509.load_pem_x509_certificate(ca.issue_client("INSI-AUTO").cert_pem)
    der = professional.public_bytes(Encoding.DER)
    assert common_name_of_der(der) == "810999900011"
    assert "OU=750000001" in structure.subject.rfc4514_string()
    assert common_name_of_der(insi.public_bytes(Encoding.DER)) == "INSI-AUTO"
    for cert in (professional, structure, insi):
        cert.verify_directly_issued_by(ca.cert)
    expired = ca.issue_client("INSI-AUTO", not_before=datetime.now(UTC) - timedelta(days=10), days=1)
    assert expired.not_after < datetime.now(UTC)


@pytest.fixture
def tls_insi(tmp_path: Path, request: pytest.FixtureRequest):
    require = getattr(request, "param", False)
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite")
    store = EvidenceStore(settings.evidence_path)
    app = create_app(InsiSimulator(load_dataset(), require_mtls=require), settings, store)
    with ServerHandle(app, tls=TlsSettings(pki_dir=tmp_path / "pki", require_client_cert=require)) as server:
        yield server, TestCA.load_or_create(tmp_path / "pki"), store


def _post(server, context: ssl.SSLContext, body: bytes) -> httpx.Response:
    with httpx.Client(verify=context, timeout=10) as client:
        return client.post(f"{server.url}/lps", content=body, headers={"Content-Type": SOAP12})


def test_client_certificate_subject_is_journaled_and_checked(tls_insi) -> None:
    server, ca, store = tls_insi
    ok = _post(server, client_ssl_context(ca.ca_pem, ca.issue_client("INSI-AUTO")), official_request())
    assert ok.status_code == 200
    wrong = _post(server, client_ssl_context(ca.ca_pem, ca.issue_client("SOMEONE-ELSE")), official_request())
    assert wrong.status_code == 500 and b'code="desir_560"' in wrong.content
    subjects = [r.payload["client_cert_subject"] for r in store.records(kind="exchange.request")]
    assert "CN=INSI-AUTO" in subjects[0] and "CN=SOMEONE-ELSE" in subjects[1]


@pytest.mark.parametrize("tls_insi", [True], indirect=True)
def test_mtls_endpoint_refuses_a_client_without_certificate(tls_insi) -> None:
    server, ca, _ = tls_insi
    with pytest.raises(httpx.TransportError):
        _post(server, client_ssl_context(ca.ca_pem), official_request())
    other = TestCA.create()
    foreign = client_ssl_context(ca.ca_pem, other.issue_client("INSI-AUTO"))
    with pytest.raises(httpx.TransportError):
        _post(server, foreign, official_request())
    assert _post(server, client_ssl_context(ca.ca_pem, ca.issue_client("INSI-MANU")),
                 official_request()).status_code == 200


def test_subject_of_der_reads_rfc4514(tmp_path: Path) -> None:
    ca = TestCA.load_or_create(tmp_path)
    cert = x509.load_pem_x509_certificate(ca.issue_client("INSI-AUTO", ou="TEST").cert_pem)
    assert subject_of_der(cert.public_bytes(Encoding.DER)).startswith("CN=INSI-AUTO")
