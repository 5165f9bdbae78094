"""The test PKI: the CA, the certificates it issues, and mutual TLS with them on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esante.simulators.core.pki import (
    IssuedCert,
    TestCA,
    client_ssl_context,
    common_name_of_der,
    default_pki_dir,
    server_ssl_context,
    subject_of_der,
)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create()


def _cert(issued: IssuedCert, ca: TestCA) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    cert.verify_directly_issued_by(ca.cert)  # signature checked with the CA public key
    assert cert.serial_number == issued.serial and cert.not_valid_after_utc == issued.not_after
    assert subject_of_der(cert.public_bytes(Encoding.DER)) == issued.subject
    return cert


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return str(cert.subject.get_attributes_for_oid(oid)[0].value)


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_ca_certificate_is_a_pathlen_0_root(ca: TestCA) -> None:
    cert = ca.cert
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert _attr(cert, NameOID.COMMON_NAME) == "ESANTE TEST AC RACINE" and cert.issuer == cert.subject
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > timedelta(days=3600)


def test_save_then_load_gives_the_same_ca(ca: TestCA, tmp_path: Path) -> None:
    ca.save(tmp_path)
    loaded = TestCA.load(tmp_path)
    assert loaded.ca_pem == ca.ca_pem
    assert loaded.key.private_numbers() == ca.key.private_numbers()
    assert _mode(tmp_path / "ca.key.pem") == 0o600


def test_load_refuses_a_key_from_another_ca(ca: TestCA, tmp_path: Path) -> None:
    ca.save(tmp_path)
    TestCA.create().save(tmp_path / "other")
    (tmp_path / "ca.key.pem").write_bytes((tmp_path / "other" / "ca.key.pem").read_bytes())
    with pytest.raises(ValueError, match="not the key"):
        TestCA.load(tmp_path)
    with pytest.raises(TimeoutError):
        TestCA.load_or_create(tmp_path, timeout=0.05)


def test_load_or_create_is_idempotent(tmp_path: Path) -> None:
    first = TestCA.load_or_create(tmp_path / "pki")
    second = TestCA.load_or_create(tmp_path / "pki")
    assert first.ca_pem == second.ca_pem
    assert _mode(tmp_path / "pki" / "ca.key.pem") == 0o600


def test_racing_load_or_create_all_get_the_same_ca(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    with ThreadPoolExecutor(max_workers=8) as pool:
        pems = set(pool.map(lambda _: TestCA.load_or_create(directory).ca_pem, range(16)))
    assert len(pems) == 1
    assert sorted(p.name for p in directory.iterdir()) == ["ca.crt.pem", "ca.key.pem"]  # no temp file left
    assert TestCA.load(directory).ca_pem in pems


def test_default_pki_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESANTE_PKI_DIR", str(tmp_path))
    assert default_pki_dir() == tmp_path
    monkeypatch.delenv("ESANTE_PKI_DIR")
    assert default_pki_dir() == Path.home() / ".esante" / "pki"


def test_server_certificate_names_every_host(ca: TestCA) -> None:
    cert = _cert(ca.issue_server(), ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert _attr(cert, NameOID.COMMON_NAME) == "localhost"
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    custom = _cert(ca.issue_server(["insi.test", "10.0.0.7"], days=30), ca)
    assert _attr(custom, NameOID.COMMON_NAME) == "insi.test"
    assert custom.not_valid_after_utc - custom.not_valid_before_utc == timedelta(days=30)
    with pytest.raises(ValueError):
        ca.issue_server([])


def test_professional_certificate_is_cps_like(ca: TestCA) -> None:
    issued = ca.issue_professional("10999900011", "MARTIN", "ALICE", "Médecin")
    cert = _cert(issued, ca)
    assert _attr(cert, NameOID.COMMON_NAME) == "810999900011"
    assert len(_attr(cert, NameOID.COMMON_NAME)) == 12
    assert _attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == "RPPS"
    assert _attr(cert, NameOID.COUNTRY_NAME) == "FR" and _attr(cert, NameOID.ORGANIZATION_NAME) == "ESANTE TEST"
    assert _attr(cert, NameOID.SURNAME) == "MARTIN" and _attr(cert, NameOID.GIVEN_NAME) == "ALICE"
    assert _attr(cert, NameOID.TITLE) == "Médecin"
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert "CN=810999900011" in issued.subject and "SN=MARTIN" in issued.subject
    assert subject_of_der(cert.public_bytes(Encoding.DER)) == issued.subject


def test_structure_certificate_carries_the_finess(ca: TestCA) -> None:
    cert = _cert(ca.issue_structure("750000001", "CHU FICTIF"), ca)
    assert _attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == "750000001"
    assert _attr(cert, NameOID.COMMON_NAME) == "750000001"
    assert _attr(cert, NameOID.ORGANIZATION_NAME) == "CHU FICTIF"
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    named = _cert(ca.issue_structure("750000001", "CHU FICTIF", cn="LPS CHU FICTIF"), ca)
    assert _attr(named, NameOID.COMMON_NAME) == "LPS CHU FICTIF"


def test_insi_client_certificate_and_an_expired_one(ca: TestCA) -> None:
    issued = ca.issue_client("INSI-AUTO", ou="750000001")
    cert = _cert(issued, ca)
    assert common_name_of_der(cert.public_bytes(Encoding.DER)) == "INSI-AUTO"
    assert issued.subject == "CN=INSI-AUTO,OU=750000001,O=ESANTE TEST,C=FR"
    expired = ca.issue_client("INSI-MANU", not_before=datetime.now(UTC) - timedelta(days=10), days=1)
    assert expired.not_after < datetime.now(UTC)
    _cert(expired, ca)


def test_write_gives_uvicorn_ready_files(ca: TestCA, tmp_path: Path) -> None:
    issued = ca.issue_server()
    cert_path, key_path = issued.write(tmp_path / "out", "server")
    assert (cert_path.name, key_path.name) == ("server.crt.pem", "server.key.pem")
    assert cert_path.read_bytes() == issued.cert_pem and key_path.read_bytes() == issued.key_pem
    assert _mode(key_path) == 0o600
    server_ssl_context((cert_path, key_path), ca.ca_pem)  # loads from paths too


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[object, bytes | None]:
    """One TLS connection on 127.0.0.1: (the server's view: peer DER or the exception, what the client read)."""
    seen: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen.append(tls.getpeercert(binary_form=True))
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                seen.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        received: bytes | None
        try:
            with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                received = tls.recv(2)  # with TLS 1.3 a refused client certificate shows up here
        except (ssl.SSLError, OSError):
            received = None
        thread.join(5)
    return seen[0], received


@pytest.fixture(scope="module")
def mtls_server(ca: TestCA) -> ssl.SSLContext:
    return server_ssl_context(ca.issue_server(), ca.ca_pem, require_client_cert=True)


def test_mtls_handshake_reveals_the_client_certificate(ca: TestCA, mtls_server: ssl.SSLContext) -> None:
    peer, received = _handshake(mtls_server, client_ssl_context(ca.ca_pem, ca.issue_client("INSI-AUTO")))
    assert received == b"ok"
    assert isinstance(peer, bytes) and common_name_of_der(peer) == "INSI-AUTO"
    assert subject_of_der(peer).startswith("CN=INSI-AUTO,")


def test_mtls_refuses_a_client_without_certificate(ca: TestCA, mtls_server: ssl.SSLContext) -> None:
    peer, received = _handshake(mtls_server, client_ssl_context(ca.ca_pem))
    assert isinstance(peer, ssl.SSLError) and received in (None, b"")


def test_mtls_refuses_a_certificate_from_another_ca(ca: TestCA, mtls_server: ssl.SSLContext) -> None:
    foreign = TestCA.create().issue_client("INSI-AUTO")
    peer, received = _handshake(mtls_server, client_ssl_context(ca.ca_pem, foreign))
    assert isinstance(peer, ssl.SSLError) and received in (None, b"")


def test_optional_client_certificate(ca: TestCA) -> None:
    server = server_ssl_context(ca.issue_server(), ca.ca_pem, require_client_cert=False)
    anonymous, received = _handshake(server, client_ssl_context(ca.ca_pem))
    assert anonymous is None and received == b"ok"
    peer, _ = _handshake(server, client_ssl_context(ca.ca_pem, ca.issue_client("INSI-MANU")))
    assert isinstance(peer, bytes) and common_name_of_der(peer) == "INSI-MANU"


def test_client_refuses_a_server_from_another_ca(ca: TestCA) -> None:
    other = TestCA.create()
    server = server_ssl_context(other.issue_server(), other.ca_pem)
    peer, received = _handshake(server, client_ssl_context(ca.ca_pem))
    assert isinstance(peer, ssl.SSLError) and received is None
