"""How one ``esante proxy`` runs: its mode, the upstream services, its TLS on both sides, and where it records."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from esante.simulators.core.pki import default_pki_dir

REVERSE, EXPLICIT = "reverse", "explicit"
#: The name the proxy journals its exchanges under (the service each one went to is beside it).
PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service behind the proxy: its name (the campaign's, ``insi``) and where it really is."""

    service: str
    url: str

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """``insi=https://host:port``; ValueError when it is not NAME=URL with an http(s) URL."""
        service, sep, url = text.partition("=")
        if not sep or not service or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"{text!r} is not SERVICE=URL (insi=https://host:port)")
        return cls(service, url.rstrip("/"))


@dataclass(slots=True)
class ProxySettings:
    """``mode``: ``reverse`` (the candidate is pointed at the proxy, one port per upstream) or ``explicit`` (the
    candidate keeps the services' URLs and uses the proxy as its HTTP proxy, on ``port``). Towards the candidate,
    TLS with certificates made by the test PKI's CA (``pki_dir``); towards the upstream, its certificate must
    chain to ``upstream_ca`` (None: the public CAs mitmproxy trusts), and the proxy presents the candidate's own
    client certificate when its key is in ``client_certs``, else ``client_cert``."""

    upstreams: list[Upstream]
    mode: str = REVERSE
    host: str = "127.0.0.1"
    port: int = 0
    ports: dict[str, int] = field(default_factory=dict)  # reverse mode: the port of each service (default free)
    admin_port: int = 0
    evidence_path: Path = Path("evidence.sqlite")
    pki_dir: Path = field(default_factory=default_pki_dir)
    upstream_ca: Path | None = None
    client_certs: Path | None = None
    client_cert: Path | None = None
    record_dir: Path | None = None
    mask_secrets: bool = False
    admin_token: str = field(default_factory=lambda: os.environ.get("ESANTE_ADMIN_TOKEN") or secrets.token_urlsafe(24))
    mitmdump: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.mode not in (REVERSE, EXPLICIT):
            raise ValueError(f"mode {self.mode!r}: reverse or explicit")
        if not self.upstreams:
            raise ValueError("the proxy needs at least one upstream (SERVICE=URL)")
        names = [u.service for u in self.upstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"an upstream named twice: {', '.join(names)}")

    def upstream_at(self, host: str, port: int) -> Upstream | None:
        """The upstream a request to ``host:port`` goes to (None: a host the proxy was not told about)."""
        return next((u for u in self.upstreams if u.address == (host, port)), None)
