"""The test PKI shared by every simulator: a test certificate authority in the spirit of IGC-Santé's test
hierarchy (our own names, clearly marked TEST) that issues

* server certificates for the simulators (HTTPS),
* CPS-like client certificates for test professionals (CN ``8`` + RPPS, the national id of a professional),
* organisation certificates for test structures (FINESS in OU),
* any other client certificate (the INSi teleservice wants CN ``INSI-AUTO`` or ``INSI-MANU``), including
  already expired ones for negative tests.

EC P-256 keys keep issuance fast. Nothing here is fit for anything but tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def default_pki_dir() -> Path:
    return Path(os.environ.get("ESANTE_PKI_DIR", Path.home() / ".esante" / "pki"))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (another process may be reading the same folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: bytes
    key_pem: bytes
    subject: str
    serial: int
    not_after: datetime

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.crt.pem", directory / f"{stem}.key.pem"
        _write_private(key_path, self.key_pem)
        _write_private(cert_path, self.cert_pem)
        return cert_path, key_path


def _name(**parts: str | None) -> x509.Name:
    oids = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "CN": NameOID.COMMON_NAME, "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME, "T": NameOID.TITLE}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts.items() if v])


class TestCA:
    """A test certificate authority (root, signs end-entity certificates directly)."""

    __test__ = False  # not a pytest test class

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, common_name: str = "ESANTE TEST AC RACINE",
               organisation: str = "ESANTE-CONFORMANCE TEST") -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(C="FR", O=organisation, CN=common_name)
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @property
    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def save(self, directory: Path) -> None:
        _write_private(directory / "ca.key.pem", _key_pem(self.key))
        _write_private(directory / "ca.crt.pem", self.ca_pem)

    @classmethod
    def load(cls, directory: Path) -> TestCA:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key.pem").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path) -> TestCA:
        """The CA kept in ``directory``, created on first use. Safe when processes race: the key and
        certificate are written together under a lock file, and whoever comes second loads the first's."""
        directory.mkdir(parents=True, exist_ok=True)
        lock = directory / ".ca.lock"
        for _ in range(200):
            if (directory / "ca.crt.pem").exists() and (directory / "ca.key.pem").exists():
                return cls.load(directory)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                import time

                time.sleep(0.05)
                continue
            try:
                ca = cls.create()
                ca.save(directory)
                return ca
            finally:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
        raise TimeoutError(f"could not create or load the test CA in {directory}")

    def _issue(self, subject: x509.Name, *, usages: list[x509.ObjectIdentifier], days: int,
               not_before: datetime | None = None, san: list[x509.GeneralName] | None = None) -> IssuedCert:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.now(UTC) - timedelta(minutes=5)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), subject.rfc4514_string(),
                          cert.serial_number, cert.not_valid_after_utc)

    def issue_server(self, hostnames: list[str] | None = None, days: int = 825) -> IssuedCert:
        hostnames = hostnames or ["localhost", "127.0.0.1", "::1"]
        san: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                san.append(x509.DNSName(host))
        return self._issue(_name(C="FR", O="ESANTE TEST", CN=hostnames[0]),
                           usages=[ExtendedKeyUsageOID.SERVER_AUTH], days=days, san=san)

    def issue_professional(self, rpps: str, family_name: str, given_name: str, profession: str,
                           organisation: str = "ESANTE TEST", days: int = 365) -> IssuedCert:
        subject = _name(C="FR", O=organisation, OU="RPPS", CN=f"8{rpps}", SN=family_name, GN=given_name,
                        T=profession)
        return self._issue(subject, usages=[ExtendedKeyUsageOID.CLIENT_AUTH], days=days)

    def issue_structure(self, finess: str, name: str, cn: str | None = None, days: int = 365) -> IssuedCert:
        return self._issue(_name(C="FR", O=name, OU=finess, CN=cn or finess),
                           usages=[ExtendedKeyUsageOID.CLIENT_AUTH], days=days)

    def issue_client(self, common_name: str, organisation: str = "ESANTE TEST", ou: str | None = None,
                     days: int = 365, not_before: datetime | None = None) -> IssuedCert:
        return self._issue(_name(C="FR", O=organisation, OU=ou, CN=common_name),
                           usages=[ExtendedKeyUsageOID.CLIENT_AUTH], days=days, not_before=not_before)


def subject_of_der(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def common_name_of_der(der: bytes) -> str | None:
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def client_ssl_context(ca_pem: bytes, client: IssuedCert | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA, presenting ``client`` when given."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if client is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = client.write(Path(tmp), "client")
            context.load_cert_chain(cert_path, key_path)
    return context
