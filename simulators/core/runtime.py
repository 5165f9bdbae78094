"""The simulator contract: what a simulator package implements, and what one running simulator holds.

A simulator is a :class:`Simulator` subclass (its protocol): its routes, its own error form, its typed notes
for the judge, and its ``faults.yaml`` beside it (read here, by the base class). :class:`SimulatorRuntime` is
one running instance: the protocol, its settings, its evidence store, its active faults and the current test
context. The composition root that serves it is :mod:`esante.simulators.core.app`; the admin API, the journal
and the server depend on this module, never on the app.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import httpx
from fastapi import APIRouter
from starlette.responses import Response

from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultCatalogue, FaultInjector, ServiceFault
from esante.simulators.core.notes import Notes
from esante.simulators.core.pki import client_ssl_context
from esante.simulators.dataset import Dataset

#: Admin routes (``/_admin``): harness control, never journaled as candidate traffic.
ADMIN_PREFIX = "/_admin"
#: Routes other simulators of the lab call (``/_peer``), behind the admin token.
PEER_PREFIX = "/_peer"


@dataclass(slots=True)
class ServiceError:
    """A failure the core detects before the protocol handler runs; the simulator turns it into the
    service's own error form (a SOAP fault, an OAuth error, an OperationOutcome...)."""

    kind: str  # "too_large" | "injected" | "internal"
    message: str
    code: str | None = None


@dataclass(slots=True)
class TlsSettings:
    """HTTPS with a server certificate issued by the test CA; ``require_client_cert`` turns on mTLS."""

    pki_dir: Path
    require_client_cert: bool = False
    hostnames: tuple[str, ...] = ("localhost", "127.0.0.1")


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
        verify = client_ssl_context(self.ca_pem.encode()) if self.ca_pem else True
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        return httpx.Client(base_url=self.url.rstrip("/"), verify=verify, timeout=timeout, headers=headers)


@dataclass(frozen=True, slots=True)
class ListenerContext:
    """What a simulator's own non-HTTP listeners (the mail servers of MSSanté...) need from the server running it:
    the host to bind, the TLS settings of the HTTPS side (same test PKI) and the runtime (evidence, faults,
    current test context) to journal their sessions into."""

    host: str
    runtime: SimulatorRuntime
    tls: TlsSettings | None = None


class Simulator:
    """Base class of every simulator: subclass it and fill in the protocol hooks.

    A subclass whose package holds a ``faults.yaml`` gets its :attr:`fault_catalogue` read from it (one schema:
    :class:`~esante.simulators.core.faults.FaultCatalogue`): the names usable in fault rules.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    #: The typed notes this simulator's handlers fill for the judge (see :mod:`esante.simulators.core.notes`).
    notes_model: ClassVar[type[Notes]] = Notes
    #: The service's named faults and misbehaviours, from the package's ``faults.yaml``.
    fault_catalogue: ClassVar[FaultCatalogue] = FaultCatalogue()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        package = cls.__module__.rpartition(".")[0]
        source = files(package).joinpath("faults.yaml") if package else None
        if source is not None and source.is_file() and "fault_catalogue" not in cls.__dict__:
            cls.fault_catalogue = FaultCatalogue.read(source.read_text(encoding="utf-8"),
                                                      origin=f"{package}/faults.yaml")

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.peers: dict[str, Peer] = {}  # set by the environment through the admin API (PUT /_admin/peers)
        #: The lab's test CA (PEM), for a protocol that checks signatures itself (the DMP's VIHF); set by
        #: :func:`~esante.simulators.core.app.create_app` from ``settings.pki_dir``.
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

    def listener_ports(self) -> dict[str, int]:
        """The ports of the service's own listeners once started (``{"smtp": 8587, "imap": 8143}``), for the
        people and programs that connect to them."""
        return {}

    def reset(self) -> None:
        """Forget every state a test case may have left (stored documents, sessions...)."""

    def load_dataset(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.reset()

    def error_response(self, error: ServiceError) -> Response:
        """The service's own answer to a core-level failure (too large, injected fault, crash)."""
        raise NotImplementedError

    def injected_fault(self, error: ServiceError) -> ServiceFault | None:
        """The catalogue entry of ``error`` when it is an injected service fault this service names."""
        if error.kind != "injected" or not error.code:
            return None
        return self.fault_catalogue.service_faults.get(error.code)


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

    def new_notes(self) -> Notes:
        """Fresh notes of the simulator's own model, for one exchange or session."""
        return self.simulator.notes_model()

    def error_response(self, error: ServiceError) -> Response:
        return self.simulator.error_response(error)

    def record_admin(self, action: str, detail: dict[str, Any]) -> None:
        """Preconditions set by the harness (reset, data set, faults) are evidence too."""
        run_id, case_id = self.context
        self.store.append("admin", {"simulator": self.name, "action": action, **detail},
                          run_id=run_id, case_id=case_id)
