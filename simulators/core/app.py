"""The composition root: a simulator (its protocol, :mod:`~esante.simulators.core.runtime`) plus the shared
machinery, as one ASGI app.

``create_app(simulator, settings)`` serves the simulator's routes behind the journal and fault injection, with
the admin API under ``/_admin`` and the peer routes under ``/_peer``. Nothing imports this module but what
starts simulators (the harness, the CLI, tests).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from fastapi import Depends, FastAPI

from esante.simulators.core.admin import admin_router, require_admin_token
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import JournalMiddleware
from esante.simulators.core.pki import TestCA
from esante.simulators.core.runtime import PEER_PREFIX, Simulator, SimulatorRuntime, SimulatorSettings
from esante.simulators.dataset import load_dataset

#: FastAPI's own OpenTelemetry instrumentation, off: with no provider configured it still looks the providers up
#: (environment reads included) on every call, a tenth of a cheap exchange's time (``benchmarks/README.md``).
NO_TELEMETRY: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}

#: The entry-point group simulators are registered in (``name = "package.module:SimulatorClass"``).
SIMULATORS_GROUP = "esante.simulators"


def create_app(simulator: Simulator, settings: SimulatorSettings, store: EvidenceStore | None = None) -> Any:
    """Build the ASGI app of one simulator (protocol routes + admin API, behind the journal)."""
    if settings.pki_dir is not None:
        simulator.ca_pem = TestCA.load_or_create(settings.pki_dir).ca_pem
    runtime = SimulatorRuntime(simulator, settings, store or EvidenceStore(settings.evidence_path))
    api = FastAPI(title=f"esante {simulator.title} simulator", docs_url=None, redoc_url=None,
                  openapi_url="/_admin/openapi.json", telemetry=NO_TELEMETRY)
    api.include_router(simulator.router())
    api.include_router(admin_router(runtime))
    peer = simulator.peer_router()
    if peer is not None:
        api.include_router(peer, prefix=PEER_PREFIX, dependencies=[Depends(require_admin_token(runtime))],
                           include_in_schema=False)
    return JournalMiddleware(api, runtime)


def simulator_names() -> list[str]:
    """The registered simulators' names."""
    return sorted(ep.name for ep in entry_points(group=SIMULATORS_GROUP))


def simulator_class(name: str) -> type[Simulator]:
    """The registered simulator ``name``; a KeyError names the known ones."""
    for ep in entry_points(group=SIMULATORS_GROUP):
        if ep.name == name:
            return ep.load()
    raise KeyError(f"unknown simulator {name!r}; known: {', '.join(simulator_names())}")


def build_simulator(name: str, settings: SimulatorSettings) -> Simulator:
    """Instantiate a registered simulator on its data set, with its options."""
    return simulator_class(name)(load_dataset(settings.dataset), **settings.options)
