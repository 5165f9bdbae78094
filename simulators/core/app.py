"""The app factory: a simulator is a :class:`Simulator` (its protocol) plus this shared machinery.

``create_app(simulator, settings)`` returns an ASGI app serving the simulator's routes behind the journal
and fault injection, with the admin API under ``/_admin``. A simulator package adds only its protocol:
its routes, its state, its own error form and its named service faults.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultInjector
from esante.simulators.core.journal import JournalMiddleware, ServiceError
from esante.simulators.dataset import Dataset, load_dataset

if TYPE_CHECKING:
    from esante.simulators.core.server import TlsSettings


@dataclass(frozen=True, slots=True)
class Peer:
    """Another simulator of the same lab, for the calls national services make to each other (a messaging
    server introspecting a Pro Santé Connect token, Mon espace santé filing a document in the DMP).

    ``url`` is where this simulator reaches it; ``admin_token`` opens its private routes; ``ca_pem`` is the CA
    of its HTTPS certificate.
    """

    name: str
    url: str
    admin_token: str | None = None
    ca_pem: str | None = None

    def client(self, *, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client to the peer (the caller closes it), trusting its CA, with the admin token if any."""
        from esante.simulators.core.pki import client_ssl_context

        verify = client_ssl_context(self.ca_pem.encode()) if self.ca_pem else True
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        return httpx.Client(base_url=self.url.rstrip("/"), verify=verify, timeout=timeout, headers=headers)


PEER_PREFIX = "/_peer"


@dataclass(frozen=True, slots=True)
class ListenerContext:
    """What a simulator's own non-HTTP listeners (the mail servers of MSSanté...) need from the server running it:
    the host to bind, the TLS settings of the HTTPS side (same test PKI) and the runtime (evidence, faults,
    current test context) to journal their sessions into."""

    host: str
    runtime: SimulatorRuntime
    tls: TlsSettings | None = None


class Simulator:
    """Base class of every simulator: subclass it and fill in the protocol hooks."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: Named faults of the service itself, usable in fault rules (``fault_code``) and campaigns.
    service_faults: ClassVar[dict[str, str]] = {}
    #: Named misbehaviours (``behaviour`` fault rules): the service answers, but wrongly on purpose
    #: (a tampered redirect, an ID token signed with an unknown key...), to test a candidate's defences.
    behaviours: ClassVar[dict[str, str]] = {}

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.peers: dict[str, Peer] = {}  # set by the environment through the admin API (PUT /_admin/peers)
        #: The lab's test CA (PEM), for a protocol that checks signatures itself (the DMP's VIHF); set by
        #: :func:`create_app` from ``settings.pki_dir``.
        self.ca_pem: bytes | None = None

    def peer(self, name: str) -> Peer | None:
        """The lab's ``name`` simulator as this one reaches it, if the environment said where it is."""
        return self.peers.get(name)

    def router(self) -> APIRouter:
        """The protocol's routes."""
        raise NotImplementedError

    def peer_router(self) -> APIRouter | None:
        """Routes other simulators of the lab call (``/_peer/...``, behind the admin token), if any: a
        national service's private link to another (Mon espace santé filing a document in the DMP)."""
        return None


    def start_listeners(self, context: ListenerContext) -> None:
        """Start the service's own listeners besides HTTP, if it has any; called before HTTP serving starts."""

    def stop_listeners(self) -> None:
        """Stop what :meth:`start_listeners` started; called after HTTP serving stopped."""

    def reset(self) -> None:
        """Forget every state a test case may have left (stored documents, sessions...)."""

    def load_dataset(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.reset()

    def error_response(self, error: ServiceError) -> Response:
        """The service's own answer to a core-level failure (too large, injected fault, crash)."""
        raise NotImplementedError


@dataclass(slots=True)
class SimulatorSettings:
    """How one simulator instance runs. Every field can come from ``ESANTE_*`` environment variables."""

    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    evidence_path: Path = Path("evidence.sqlite")
    dataset: str = "default"
    max_body_bytes: int = 2 * 1024 * 1024
    fault_seed: int | None = None
    pki_dir: Path | None = None  # the lab's test PKI, for signatures checked by the protocol itself
    options: dict[str, Any] = field(default_factory=dict)  # protocol-specific switches

    @classmethod
    def from_env(cls, **overrides: Any) -> SimulatorSettings:
        env = os.environ
        values: dict[str, Any] = {}
        if "ESANTE_ADMIN_TOKEN" in env:
            values["admin_token"] = env["ESANTE_ADMIN_TOKEN"]
        if "ESANTE_EVIDENCE" in env:
            values["evidence_path"] = Path(env["ESANTE_EVIDENCE"])
        if "ESANTE_DATASET" in env:
            values["dataset"] = env["ESANTE_DATASET"]
        if "ESANTE_PKI_DIR" in env:
            values["pki_dir"] = Path(env["ESANTE_PKI_DIR"])
        if "ESANTE_MAX_BODY_BYTES" in env:
            values["max_body_bytes"] = int(env["ESANTE_MAX_BODY_BYTES"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class SimulatorRuntime:
    """Everything one running simulator holds: protocol, evidence, faults, and the current test context."""

    def __init__(self, simulator: Simulator, settings: SimulatorSettings, store: EvidenceStore) -> None:
        self.simulator = simulator
        self.settings = settings
        self.store = store
        self.faults = FaultInjector(settings.fault_seed)
        self._context: tuple[str | None, str | None] = (None, None)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.simulator.name

    @property
    def context(self) -> tuple[str | None, str | None]:
        """(run id, test case id) that new exchanges are filed under."""
        with self._lock:
            return self._context

    def set_context(self, run_id: str | None, case_id: str | None) -> None:
        with self._lock:
            self._context = (run_id, case_id)

    def error_response(self, error: ServiceError) -> Response:
        return self.simulator.error_response(error)

    def record_admin(self, action: str, detail: dict[str, Any]) -> None:
        """Preconditions set by the harness (reset, data set, faults) are evidence too."""
        run_id, case_id = self.context
        self.store.append("admin", {"simulator": self.name, "action": action, **detail},
                          run_id=run_id, case_id=case_id)


def create_app(simulator: Simulator, settings: SimulatorSettings, store: EvidenceStore | None = None) -> Any:
    """Build the ASGI app of one simulator (protocol routes + admin API, behind the journal)."""
    from fastapi import Depends

    from esante.simulators.core.admin import admin_router, require_admin_token

    if settings.pki_dir is not None:
        from esante.simulators.core.pki import TestCA

        simulator.ca_pem = TestCA.load_or_create(settings.pki_dir).ca_pem
    runtime = SimulatorRuntime(simulator, settings, store or EvidenceStore(settings.evidence_path))
    api = FastAPI(title=f"esante {simulator.title} simulator", docs_url=None, redoc_url=None,
                  openapi_url="/_admin/openapi.json")
    api.include_router(simulator.router())
    api.include_router(admin_router(runtime))
    peer = simulator.peer_router()
    if peer is not None:
        api.include_router(peer, prefix=PEER_PREFIX, dependencies=[Depends(require_admin_token(runtime))],
                           include_in_schema=False)
    return JournalMiddleware(api, runtime)


def build_simulator(name: str, settings: SimulatorSettings) -> Simulator:
    """Instantiate a registered simulator (entry point group ``esante.simulators``) on its data set."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="esante.simulators"):
        if ep.name == name:
            return ep.load()(load_dataset(settings.dataset), **settings.options)
    known = sorted(ep.name for ep in entry_points(group="esante.simulators"))
    raise KeyError(f"unknown simulator {name!r}; known: {', '.join(known)}")
