"""Where the simulators of a run live, and how the harness talks to them.

:class:`SimulatorClient` speaks a simulator's admin API (reset, data set, faults, context, journal): the
same calls whether the simulator is a thread of this process or a container elsewhere.
:class:`LocalEnvironment` is the embedded default: every simulator of the campaign served from this
process (HTTPS with the test PKI, client certificate optional), all journaling into the run's evidence
store.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from esante.simulators.core.app import build_simulator, create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultRule
from esante.simulators.core.journal import Exchange
from esante.simulators.core.pki import TestCA, client_ssl_context
from esante.simulators.core.runtime import Peer, SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle


class SimulatorClient:
    """The admin API of one simulator."""

    def __init__(self, name: str, url: str, admin_token: str, *, ca_pem: bytes | None = None) -> None:
        self.name = name
        self.url = url.rstrip("/")
        verify = client_ssl_context(ca_pem) if ca_pem is not None else True
        self._http = httpx.Client(base_url=f"{self.url}/_admin", verify=verify, timeout=30,
                                  headers={"Authorization": f"Bearer {admin_token}"})

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{self.name} admin {method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def set_context(self, run_id: str | None, case_id: str | None) -> None:
        self._call("PUT", "/context", {"run_id": run_id, "case_id": case_id})

    def set_dataset(self, name: str) -> None:
        self._call("PUT", "/dataset", {"name": name})

    def set_faults(self, rules: list[FaultRule]) -> None:
        self._call("PUT", "/faults", [r.model_dump(exclude_none=True, exclude={"remaining", "passed"}) for r in rules])

    def set_peers(self, peers: dict[str, Peer]) -> None:
        self._call("PUT", "/peers", {name: {"url": p.url, "admin_token": p.admin_token, "ca_pem": p.ca_pem}
                                     for name, p in peers.items()})

    def journal(self, run_id: str, case_id: str) -> list[Exchange]:
        data = self._call("GET", f"/journal?run_id={run_id}&case_id={case_id}")
        return [Exchange.from_json(e) for e in data["exchanges"]]

    def close(self) -> None:
        self._http.close()


class LocalEnvironment:
    """The campaign's simulators served from this process; ready in well under a second."""

    def __init__(self, names: list[str], *, store: EvidenceStore, pki_dir: Path, tls: bool = True,
                 dataset: str = "default") -> None:
        self.store = store
        self.pki_dir = pki_dir
        self.ca_pem = TestCA.load_or_create(pki_dir).ca_pem if tls else None
        token = secrets.token_urlsafe(24)
        self.servers: dict[str, ServerHandle] = {}
        self.clients: dict[str, SimulatorClient] = {}
        for name in names:
            settings = SimulatorSettings(admin_token=token, evidence_path=store.path, dataset=dataset,
                                         pki_dir=pki_dir)
            app = create_app(build_simulator(name, settings), settings, store)
            server = ServerHandle(app, tls=TlsSettings(pki_dir=pki_dir) if tls else None).start()
            self.servers[name] = server
            self.clients[name] = SimulatorClient(name, server.url, token, ca_pem=self.ca_pem)
        introduce(self.clients, {name: server.url for name, server in self.servers.items()}, token, self.ca_pem)

    @property
    def endpoints(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> LocalEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def introduce(clients: dict[str, SimulatorClient], urls: dict[str, str], admin_token: str,
              ca_pem: bytes | None) -> None:
    """Tell every simulator where the others are (``urls``: as the simulators reach each other)."""
    ca = ca_pem.decode() if ca_pem else None
    peers = {name: Peer(name, url, admin_token, ca) for name, url in urls.items()}
    for name, client in clients.items():
        client.set_peers({other: peer for other, peer in peers.items() if other != name})
