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

import ipaddress
import os
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_FILE = "ca.crt.pem"
CA_KEY_FILE = "ca.key.pem"
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

# Short names (OpenSSL's) for the attributes RFC 4514 leaves out, so subjects read ``SN=MARTIN`` not ``2.5.4.4=``.
_RFC4514_NAMES = {NameOID.SURNAME: "SN", NameOID.GIVEN_NAME: "GN", NameOID.TITLE: "title"}
_NAME_OIDS = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
              "CN": NameOID.COMMON_NAME, "SN": NameOID.SURNAME, "GN": NameOID.GIVEN_NAME, "T": NameOID.TITLE}


def default_pki_dir() -> Path:
    """Where the shared test PKI lives: ``$ESANTE_PKI_DIR`` when set, else ``~/.esante/pki``."""
    configured = os.environ.get("ESANTE_PKI_DIR")
    return Path(configured) if configured else Path.home() / ".esante" / "pki"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _temp_file(directory: Path, name: str, data: bytes, mode: int) -> Path:
    """A new file next to its final place (same filesystem, so it can be renamed or linked there)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    return Path(tmp)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` in one step: a reader sees the old content or the new, never a partial file."""
    os.replace(_temp_file(path.parent, path.name, data, mode), path)


def _publish_exclusive(tmp: Path, path: Path) -> bool:
    """Put ``tmp`` at ``path`` unless ``path`` exists (then False). A hard link never clobbers and never shows a
    partial file; where links are not supported, fall back to an exclusive create."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(tmp.read_bytes())
    return True


def _name(**parts: str | None) -> x509.Name:
    return x509.Name([x509.NameAttribute(_NAME_OIDS[k], v) for k, v in parts.items() if v])


def _rfc4514(name: x509.Name) -> str:
    return name.rfc4514_string(_RFC4514_NAMES)


@dataclass(frozen=True)
class IssuedCert:
    """An end-entity certificate and its private key, both PEM; ``subject`` is the RFC 4514 string."""

    cert_pem: bytes
    key_pem: bytes
    subject: str
    serial: int
    not_after: datetime

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt.pem`` and ``<stem>.key.pem`` (mode 0600) atomically; returns (cert, key) paths,
        usable as uvicorn's ``ssl_certfile`` / ``ssl_keyfile``."""
        cert_path, key_path = directory / f"{stem}.crt.pem", directory / f"{stem}.key.pem"
        _write_atomic(key_path, self.key_pem, 0o600)
        _write_atomic(cert_path, self.cert_pem, 0o644)
        return cert_path, key_path


CertSource = IssuedCert | tuple[Path, Path]
"""A certificate and key, in memory or as (certificate file, key file) paths."""


def _key_usage(*, end_entity: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=end_entity, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not end_entity,
                         crl_sign=not end_entity, encipher_only=False, decipher_only=False)


def _san(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    """DNS names, and IP addresses for whatever parses as one."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


class TestCA:
    """A test root certificate authority; it signs end-entity certificates directly (pathlen 0)."""

    __test__ = False  # not a pytest test class

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, common_name: str = "ESANTE TEST AC RACINE",
               organisation: str = "ESANTE-CONFORMANCE TEST") -> TestCA:
        """A new CA (EC P-256, self-signed, valid 10 years)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(C="FR", O=organisation, CN=common_name)
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_key_usage(end_entity=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM (what clients and servers trust)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def save(self, directory: Path) -> None:
        """Write ``ca.key.pem`` (mode 0600) and ``ca.crt.pem``, replacing any present."""
        _write_atomic(directory / CA_KEY_FILE, _key_pem(self.key), 0o600)
        _write_atomic(directory / CA_CERT_FILE, self.ca_pem, 0o644)

    @classmethod
    def load(cls, directory: Path) -> TestCA:
        """The CA saved in ``directory``; ValueError when the files do not parse or do not belong together."""
        cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_key(cert, key):
            raise ValueError(f"{directory}: {CA_KEY_FILE} is not the key of {CA_CERT_FILE}")
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path, timeout: float = 10.0) -> TestCA:
        """The CA kept in ``directory``, created on first use. Safe when processes race: the key is published
        without clobbering (the first process to publish wins), then its certificate; the others load the
        winner's CA once both files are complete."""
        if not (directory / CA_KEY_FILE).exists():
            cls.create()._publish(directory)
        return cls._load_when_complete(directory, timeout)

    def _publish(self, directory: Path) -> bool:
        """Publish this CA unless another one's key is already there; True when this one was published."""
        tmp_key = _temp_file(directory, CA_KEY_FILE, _key_pem(self.key), 0o600)
        try:
            if not _publish_exclusive(tmp_key, directory / CA_KEY_FILE):
                return False
        finally:
            tmp_key.unlink(missing_ok=True)
        _write_atomic(directory / CA_CERT_FILE, self.ca_pem, 0o644)
        return True

    @classmethod
    def _load_when_complete(cls, directory: Path, timeout: float) -> TestCA:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return cls.load(directory)
            except (FileNotFoundError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no complete test CA in {directory} after {timeout} s "
                                       f"(remove the folder to start afresh): {exc}") from exc
                time.sleep(0.02)

    def _issue(self, subject: x509.Name, *, usage: x509.ObjectIdentifier, days: int,
               not_before: datetime | None = None, san: list[x509.GeneralName] | None = None) -> IssuedCert:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.now(UTC) - timedelta(minutes=5)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(end_entity=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), _rfc4514(subject),
                          cert.serial_number, cert.not_valid_after_utc)

    def issue_server(self, hostnames: Sequence[str] = DEFAULT_HOSTNAMES, days: int = 825) -> IssuedCert:
        """A TLS server certificate: CN = first hostname, SAN with every DNS name and IP address."""
        if not hostnames:
            raise ValueError("a server certificate needs at least one hostname")
        return self._issue(_name(C="FR", O="ESANTE TEST", CN=hostnames[0]),
                           usage=ExtendedKeyUsageOID.SERVER_AUTH, days=days, san=_san(hostnames))

    def issue_professional(self, rpps: str, family_name: str, given_name: str, profession: str,
                           organisation: str = "ESANTE TEST", days: int = 365) -> IssuedCert:
        """A CPS-like certificate: OU=RPPS, CN = ``8`` + RPPS (12 characters for an 11-digit RPPS), surname,
        given name and title = profession."""
        subject = _name(C="FR", O=organisation, OU="RPPS", CN=f"8{rpps}", SN=family_name, GN=given_name,
                        T=profession)
        return self._issue(subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH, days=days)

    def issue_structure(self, finess: str, name: str, cn: str | None = None, days: int = 365) -> IssuedCert:
        """An organisation certificate: O = structure name, OU = FINESS, CN = ``cn`` or the FINESS."""
        return self._issue(_name(C="FR", O=name, OU=finess, CN=cn or finess),
                           usage=ExtendedKeyUsageOID.CLIENT_AUTH, days=days)

    def issue_client(self, common_name: str, organisation: str = "ESANTE TEST", ou: str | None = None,
                     days: int = 365, not_before: datetime | None = None) -> IssuedCert:
        """Any client certificate (INSi: CN ``INSI-AUTO`` / ``INSI-MANU``). Valid from ``not_before`` (default
        now) for ``days``: a past ``not_before`` and few days give an already expired certificate."""
        return self._issue(_name(C="FR", O=organisation, OU=ou, CN=common_name),
                           usage=ExtendedKeyUsageOID.CLIENT_AUTH, days=days, not_before=not_before)


def subject_of_der(der: bytes) -> str:
    """The RFC 4514 subject of a DER certificate (e.g. ``getpeercert(binary_form=True)``)."""
    return _rfc4514(x509.load_der_x509_certificate(der).subject)


def common_name_of_der(der: bytes) -> str | None:
    """The subject CN of a DER certificate, None when it has none."""
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def common_name_of_subject(subject: str | None) -> str | None:
    """The CN of an RFC 4514 subject string (as journaled), None when absent."""
    if not subject:
        return None
    try:
        names = x509.Name.from_rfc4514_string(subject).get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return str(names[0].value) if names else None


def _load_chain(context: ssl.SSLContext, source: CertSource) -> None:
    if isinstance(source, tuple):
        context.load_cert_chain(*source)
        return
    with tempfile.TemporaryDirectory(prefix="esante-pki-") as tmp:  # private (0700), removed on exit
        context.load_cert_chain(*source.write(Path(tmp), "chain"))


def server_ssl_context(cert: CertSource, ca_pem: bytes, require_client_cert: bool = False) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``cert``. Client certificates issued by the CA are required with
    ``require_client_cert``, else asked for and verified when offered (so the server can read them)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert)
    context.load_verify_locations(cadata=ca_pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(ca_pem: bytes, client: CertSource | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting the test CA (hostname checked), presenting ``client`` when given.
    httpx takes it as ``verify=``."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        _load_chain(context, client)
    return context
