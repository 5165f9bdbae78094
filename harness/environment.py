"""Where the simulators of a run live, and how the harness talks to them.

:class:`SimulatorClient` speaks a simulator's admin API (reset, data set, faults, context, journal): the
same calls whether the simulator is a thread of this process or a container elsewhere.
:class:`LocalEnvironment` is the embedded default: every simulator of the campaign served from this
process (HTTPS with the test PKI, client certificate optional), all journaling into the run's evidence
store.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from esante.simulators.core.app import build_simulator, create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultRule
from esante.simulators.core.journal import Exchange
from esante.simulators.core.pki import TestCA, client_ssl_context
from esante.simulators.core.runtime import Peer, Simulator, SimulatorSettings, TlsSettings
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
    """The campaign's simulators served from this process, wired to each other (peers); ready in well under a
    second. ``options`` gives a simulator its options (``{"psc": {"auto_login": "PS001"}}``), ``ports`` fixed
    HTTP ports (default: free loopback ports)."""

    def __init__(self, names: Sequence[str], *, store: EvidenceStore, pki_dir: Path, tls: bool = True,
                 dataset: str = "default", host: str = "127.0.0.1", ports: Mapping[str, int] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, admin_token: str | None = None,
                 max_body_bytes: int | None = None) -> None:
        self.store = store
        self.pki_dir = pki_dir
        self.ca_pem = TestCA.load_or_create(pki_dir).ca_pem if tls else None
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.servers: dict[str, ServerHandle] = {}
        self.clients: dict[str, SimulatorClient] = {}
        try:
            for name in names:
                self._serve(name, dataset, host, (ports or {}).get(name, 0), dict((options or {}).get(name, {})),
                            max_body_bytes)
        except BaseException:
            self.close()
            raise
        introduce(self.clients, self.endpoints, self.admin_token, self.ca_pem)

    def _serve(self, name: str, dataset: str, host: str, port: int, options: dict[str, Any],
               max_body_bytes: int | None) -> None:
        settings = SimulatorSettings(admin_token=self.admin_token, evidence_path=self.store.path, dataset=dataset,
                                     pki_dir=self.pki_dir, options=options,
                                     **({"max_body_bytes": max_body_bytes} if max_body_bytes else {}))
        app = create_app(build_simulator(name, settings), settings, self.store)
        tls = TlsSettings(pki_dir=self.pki_dir) if self.ca_pem is not None else None
        server = ServerHandle(app, host=host, port=port, tls=tls).start()
        self.servers[name] = server
        self.clients[name] = SimulatorClient(name, server.url, self.admin_token, ca_pem=self.ca_pem)

    @property
    def endpoints(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def simulator(self, name: str) -> Simulator:
        """The running simulator ``name`` (its protocol object, for tests that look inside)."""
        runtime = self.servers[name].runtime
        assert runtime is not None
        return runtime.simulator

    def listener_ports(self, name: str) -> dict[str, int]:
        """The simulator's own listeners besides HTTP (MSSanté's SMTP and IMAP), once started."""
        return self.simulator(name).listener_ports()

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
    """Tell every simulator where the others are (``urls``: as the simulators reach each other); a simulator
    alone has no one to be told about."""
    if len(urls) < 2:
        return
    ca = ca_pem.decode() if ca_pem else None
    peers = {name: Peer(name, url, admin_token, ca) for name, url in urls.items()}
    for name, client in clients.items():
        client.set_peers({other: peer for other, peer in peers.items() if other != name})
