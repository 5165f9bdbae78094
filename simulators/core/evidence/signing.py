"""Ed25519 keys that sign evidence bundles.

A bundle's manifest is signed so that a reviewer can tell *who* produced it as well as *that* nothing in it
changed. The key lives in one PEM file (PKCS#8, mode 0600), created on first use; a reviewer pins the
public half (``esante verify --trusted-key``) and compares fingerprints out of band.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENV_KEY_PATH = "ESANTE_SIGNING_KEY"


def default_key_path() -> Path:
    """``$ESANTE_SIGNING_KEY`` if set, else ``~/.esante/keys/ed25519.pem``."""
    configured = os.environ.get(ENV_KEY_PATH)
    return Path(configured).expanduser() if configured else Path.home() / ".esante" / "keys" / "ed25519.pem"


def load_or_create_key(path: Path | None = None) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path`` (default :func:`default_key_path`), creating it (mode 0600, parent
    folders 0700) if it does not exist.

    Creation writes a private temporary file and hard-links it into place, so two processes racing to
    create the key both end up using the same one and nobody ever reads a half-written file.
    """
    path = Path(path).expanduser() if path is not None else default_key_path()
    if not path.exists():
        _create_key(path)
    return _load_private(path.read_bytes(), path)


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_private(pem: bytes, path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (public or private), DER SubjectPublicKeyInfo, or 32 raw bytes."""
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    if b"PRIVATE KEY" in data:
        return _load_private(data, Path("<key>")).public_key()
    key = serialization.load_pem_public_key(data) if b"-----BEGIN" in data \
        else serialization.load_der_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_pem: bytes) -> str:
    """SHA-256 of the raw 32-byte public key, first 16 hex digits in groups of four (``ab12:cd34:…``)."""
    digest = hashlib.sha256(raw_public_bytes(load_public_key(public_pem))).hexdigest()[:16]
    return ":".join(digest[i:i + 4] for i in range(0, 16, 4))
