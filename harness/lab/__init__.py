"""A lab: several simulators started together from this process, wired to each other, for people and programs.

``esante lab psc mssante --state lab.json`` starts one for a person trying their software by hand; the test
suite, the benchmarks and the pytest plugin start the same thing from Python::

    with Lab(["psc", "mssante"], workdir=tmp_path) as lab:
        token = lab.psc_token("PS001")                       # a PSC access token, through the real code flow
        smtp, imap = lab.listener_ports("mssante")["smtp"], lab.listener_ports("mssante")["imap"]

Every simulator is told where the others are (MSSanté introspects tokens at PSC, Mon espace santé files
documents in the DMP), all journal into one evidence store, and HTTPS certificates come from one test PKI.
:meth:`Lab.state` is what a person or another program needs to reach them (URLs, extra ports, the CA file and
the admin token), written as JSON by ``--state``. The requests a client sends the SOAP services, built from their
official examples for tests that play the client themselves, are in :mod:`esante.harness.lab.insi`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from esante.harness.environment import LocalEnvironment
from esante.harness.lab.oauth import TokenSet
from esante.harness.lab.psc import psc_token
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import Exchange, load_exchanges
from esante.simulators.core.pki import CA_CERT_FILE, IssuedCert, TestCA, client_ssl_context
from esante.simulators.core.runtime import Simulator

__all__ = ["Lab", "LabSimulator", "LabState", "SimulatorState", "TokenSet", "psc_token", "xoauth2"]


class SimulatorState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    ports: dict[str, int] = {}


class LabState(BaseModel):
    """How to reach a running lab: what ``esante lab --state FILE`` writes and ``esante token`` reads."""

    model_config = ConfigDict(extra="forbid")

    simulators: dict[str, SimulatorState]
    admin_token: str
    ca_file: str | None
    pki_dir: str
    evidence: str
    dataset: str = "default"

    @classmethod
    def read(cls, path: Path) -> LabState:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def write(self, path: Path) -> Path:
        """Write the state as JSON, readable by its owner only (it holds the admin token)."""
        path = Path(path)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    def url(self, name: str) -> str:
        if name not in self.simulators:
            raise KeyError(f"the lab runs no {name} simulator (it runs {', '.join(self.simulators)})")
        return self.simulators[name].url

    def ca_pem(self) -> bytes | None:
        return Path(self.ca_file).read_bytes() if self.ca_file else None


class Lab(LocalEnvironment):
    """Simulators served from this process, their evidence in ``workdir/evidence.sqlite`` and their test PKI in
    ``pki_dir`` (default ``workdir/pki``)."""

    def __init__(self, names: Sequence[str], *, workdir: Path, tls: bool = True, dataset: str = "default",
                 host: str = "127.0.0.1", ports: Mapping[str, int] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, admin_token: str | None = None,
                 store: EvidenceStore | None = None, max_body_bytes: int | None = None,
                 pki_dir: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.dataset = dataset
        self._client: httpx.Client | None = None
        self._own_store = store is None  # closed with the lab, so its file is self-contained once the lab stops
        super().__init__(names, store=store or EvidenceStore(self.workdir / "evidence.sqlite"),
                         pki_dir=pki_dir or self.workdir / "pki", tls=tls, dataset=dataset, host=host, ports=ports,
                         options=options, admin_token=admin_token, max_body_bytes=max_body_bytes)

    @property
    def ca(self) -> TestCA:
        """The lab's test CA, to issue the certificates a client presents."""
        return TestCA.load_or_create(self.pki_dir)

    @property
    def ca_file(self) -> Path | None:
        return self.pki_dir / CA_CERT_FILE if self.ca_pem is not None else None

    def url(self, name: str) -> str:
        return self.endpoints[name]

    def __getitem__(self, name: str) -> LabSimulator:
        if name not in self.servers:
            raise KeyError(f"the lab runs no {name} simulator (it runs {', '.join(self.servers)})")
        return LabSimulator(self, name)

    @property
    def client(self) -> httpx.Client:
        """One HTTP client of the lab's own, trusting its CA, closed with the lab."""
        if self._client is None:
            self._client = self.http()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()
        if self._own_store:
            self.store.close()

    def tls_context(self, cert: IssuedCert | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the lab's CA (presenting ``cert`` when given)."""
        if self.ca_pem is None:
            raise RuntimeError("this lab serves plain HTTP: there is no test CA to trust")
        return client_ssl_context(self.ca_pem, cert)

    def http(self, cert: IssuedCert | None = None, *, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client for the lab's simulators (the caller closes it)."""
        verify: ssl.SSLContext | bool = self.tls_context(cert) if self.ca_pem is not None else True
        return httpx.Client(verify=verify, timeout=timeout)

    def admin(self, name: str, method: str, path: str, body: object = None) -> httpx.Response:
        """A call to a simulator's admin API (``/_admin`` + ``path``), for tests that set it up by hand."""
        return self.client.request(method, f"{self.url(name)}/_admin{path}", json=body,
                                   headers={"Authorization": f"Bearer {self.admin_token}"})

    def psc_token(self, professional: str, *, client_id: str = "esante-reference-mss") -> TokenSet:
        """A fresh PSC access token for ``professional`` (a data-set id such as PS001, or a national id),
        obtained through the authorisation code flow with PKCE, the lab playing the professional's browser."""
        return psc_token(self.url("psc"), self.ca_pem, professional, client_id=client_id, dataset=self.dataset)

    def state(self) -> LabState:
        return LabState(
            simulators={name: SimulatorState(url=url, ports=self.listener_ports(name))
                        for name, url in self.endpoints.items()},
            admin_token=self.admin_token, ca_file=str(self.ca_file) if self.ca_file else None,
            pki_dir=str(self.pki_dir), evidence=str(self.store.path), dataset=self.dataset)

    def __enter__(self) -> Lab:
        return self


def xoauth2(address: str, token: str) -> str:
    """The SASL XOAUTH2 initial response a mail client sends with a bearer token (as Thunderbird and Outlook do;
    OAUTHBEARER, RFC 7628, is the standard twin)."""
    return f"user={address}\x01auth=Bearer {token}\x01\x01"


def read_state(path: Path) -> LabState:
    """The state of a running lab (``esante lab --state FILE``); a missing or unreadable file is named."""
    try:
        return LabState.read(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no lab state at {path}: start one with `esante lab ... --state {path}`") from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a lab state file: {exc}") from None


@dataclass(frozen=True, slots=True)
class LabSimulator:
    """One simulator of a lab, as a test or a script handles it: ``lab["insi"].admin("POST", "/reset")``."""

    lab: Lab
    name: str

    @property
    def url(self) -> str:
        return self.lab.url(self.name)

    @property
    def http(self) -> httpx.Client:
        return self.lab.client

    @property
    def store(self) -> EvidenceStore:
        return self.lab.store

    @property
    def simulator(self) -> Simulator:
        return self.lab.simulator(self.name)

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.lab.admin(self.name, method, path, body)

    def exchanges(self, case_id: str | None = None) -> list[Exchange]:
        """What the simulator journaled (under ``case_id`` when given)."""
        return load_exchanges(self.store, case_id=case_id, simulator=self.name)
