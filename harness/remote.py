"""Simulators that run elsewhere: in containers, or already running at URLs given in a config file.

:class:`RemoteEnvironment` is the counterpart of :class:`harness.environment.LocalEnvironment` for simulators
this process does not serve. They journal into their own evidence stores; each :class:`RemoteSimulatorClient`
imports its simulator's records into the run's store (checked, with their provenance: see
:mod:`simulators.core.remote_evidence`) before the runner reads a journal, and once more on close, so the run's
store and its signed bundle hold everything observed, as in local mode.

The config file (YAML) names one URL per simulator::

    simulators:
      insi: https://127.0.0.1:8001
      psc: {url: https://127.0.0.1:8002, candidate_url: https://psc:8002}  # as the candidate must call it
    admin_token_env: ESANTE_ADMIN_TOKEN   # the variable holding the admin token (never the token itself)
    ca: pki/ca.crt.pem                    # the CA of the simulators' HTTPS certificates (default: the run's PKI)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from esante.harness.environment import SimulatorClient, introduce
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.evidence.remote import (
    MAX_PAGE_RECORDS,
    PROVENANCE,
    Cursor,
    attach,
    import_record,
    page_problems,
)
from esante.simulators.core.journal import Exchange, load_exchanges

MAX_PAGE_ANSWER = 64 * 1024 * 1024  # a page holds at most ~16 MiB of bodies, base64: anything far larger is refused
MAX_CONFIG_BYTES = 64 * 1024


class RemoteEvidenceError(ValueError):
    """A remote simulator's evidence could not be imported intact: the run cannot vouch for what it saw."""


class SimulatorEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    candidate_url: HttpUrl | None = None  # what the candidate is told, when it reaches the simulator otherwise


class RemoteConfig(BaseModel):
    """A ``--simulators FILE``: where each simulator already runs, and how to reach its admin API."""

    model_config = ConfigDict(extra="forbid")
    simulators: dict[str, SimulatorEndpoint] = Field(min_length=1)
    admin_token_env: str = "ESANTE_ADMIN_TOKEN"
    ca: Path | None = None

    @classmethod
    def load(cls, path: Path) -> RemoteConfig:
        text = path.read_bytes()[:MAX_CONFIG_BYTES + 1]
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a simulators file")
        raw = yaml.safe_load(text) or {}
        if isinstance(raw, dict) and isinstance(raw.get("simulators"), dict):
            raw["simulators"] = {k: {"url": v} if isinstance(v, str) else v for k, v in raw["simulators"].items()}
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if config.ca is not None and not config.ca.is_absolute():
            config.ca = path.parent / config.ca.expanduser()
        return config

    def admin_token(self) -> str:
        token = os.environ.get(self.admin_token_env)
        if not token:
            raise ValueError(f"set {self.admin_token_env} to the simulators' admin token")
        return token


class RemoteSimulatorClient(SimulatorClient):
    """The admin API of a simulator with its own evidence store, whose records are imported into ``store``."""

    def __init__(self, name: str, url: str, admin_token: str, *, store: EvidenceStore,
                 ca_pem: bytes | None = None) -> None:
        super().__init__(name, url, admin_token, ca_pem=ca_pem)
        self.store = store
        self.cursor: Cursor | None = None

    def _page(self, since: int, limit: int) -> Any:
        with self._http.stream("GET", "/records", params={"since": since, "limit": limit}) as response:
            if response.status_code >= 400:
                raise RemoteEvidenceError(f"{self.name}: GET /_admin/records answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_PAGE_ANSWER:
                    raise RemoteEvidenceError(f"{self.name}: evidence page over {MAX_PAGE_ANSWER} bytes")
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteEvidenceError(f"{self.name}: evidence page is not JSON") from None

    def attach(self) -> None:
        """Start importing from the remote store's current end (what came before belongs to earlier runs)."""
        page = self._page(0, 0)
        if not isinstance(page, dict) or type(page.get("head")) is not int or not isinstance(page.get("head_chain"),
                                                                                              str):
            raise RemoteEvidenceError(f"{self.name}: not an evidence page")
        self.cursor = attach(self.store, self.url, self.name, page["head"], page["head_chain"])

    def sync(self) -> int:
        """Import every record the simulator stored since the last sync; returns how many."""
        if self.cursor is None:
            self.attach()
        assert self.cursor is not None
        imported = 0
        while True:
            start = self.cursor.seq + len(self.cursor.pending)  # every record up to here is checked
            page = self._page(start, MAX_PAGE_RECORDS)
            records, blobs, problems = page_problems(page, self.name, self.cursor)
            reached = self.cursor.seq + len(self.cursor.pending)
            next_since, head = (page.get("next_since"), page.get("head")) if isinstance(page, dict) else (None, None)
            if not problems and not _moves_forward(start, reached, next_since, head):
                problems = [f"page after {start} does not account for its records (next_since {next_since}, "
                            f"records and skipped up to {reached}, head {head})"]
            if problems:
                self._reject(start, problems)
            for record in records:
                import_record(self.store, record, blobs, self.url)
            imported += len(records)
            if reached >= head:
                return imported

    def _reject(self, since: int, problems: list[str]) -> None:
        self.store.append("remote.rejected", {"source": self.url, "simulator": self.name, "since": since,
                                              "problems": problems[:100]})
        raise RemoteEvidenceError(f"{self.name} at {self.url}: evidence refused: {'; '.join(problems[:5])}")

    def journal(self, run_id: str, case_id: str) -> list[Exchange]:
        """The case's exchanges, read from the run's store once the remote records are imported."""
        self.sync()
        exchanges = load_exchanges(self.store, run_id=run_id, case_id=case_id, simulator=self.name)
        # received_at is when the simulator received the call, not when the harness imported the record
        received = {r.ref: r.payload[PROVENANCE]["recorded_at"]
                    for r in self.store.records(kind="exchange.request", run_id=run_id, case_id=case_id)
                    if PROVENANCE in r.payload}
        for exchange in exchanges:
            exchange.received_at = received.get(exchange.id, exchange.received_at)
        return exchanges

    def close(self) -> None:
        """Import what is left; if the simulator is gone, say so in the evidence rather than lose it silently."""
        try:
            if self.cursor is not None:
                self.sync()
        except httpx.HTTPError as exc:
            self.store.append("remote.unreachable", {"source": self.url, "simulator": self.name,
                                                     "since": self.cursor.seq if self.cursor else None,
                                                     "error": f"{type(exc).__name__}: {exc}"})
        finally:
            super().close()


def _moves_forward(start: int, reached: int, next_since: Any, head: Any) -> bool:
    """A page must account for every record it covers (sent, or skipped by digest) and move on unless the
    store has nothing more."""
    if type(next_since) is not int or type(head) is not int:
        return False
    return next_since == reached and (reached > start or head <= start)


class RemoteEnvironment:
    """The campaign's simulators, already running elsewhere; their evidence imported into ``store``."""

    def __init__(self, names: list[str], *, store: EvidenceStore, urls: dict[str, str], admin_token: str,
                 ca_pem: bytes | None = None, candidate_urls: dict[str, str] | None = None) -> None:
        missing = sorted(set(names) - set(urls))
        if missing:
            raise ValueError(f"the campaign needs simulators with no URL configured: {', '.join(missing)}")
        self.store = store
        self.ca_pem = ca_pem
        self._endpoints = {name: (candidate_urls or {}).get(name) or urls[name] for name in names}
        self.clients: dict[str, SimulatorClient] = {}
        try:
            for name in names:
                self.clients[name] = self._connect(name, urls[name], admin_token)
            # simulators reach each other where the candidate does (inside the lab's network), else at ``urls``
            introduce(self.clients, {name: self._endpoints[name] for name in names}, admin_token, ca_pem)
        except BaseException:
            self.close()
            raise

    def _connect(self, name: str, url: str, admin_token: str) -> RemoteSimulatorClient:
        client = RemoteSimulatorClient(name, url, admin_token, store=self.store, ca_pem=self.ca_pem)
        try:
            health = client.health()
            if health.get("simulator") != name:
                raise ValueError(f"{url} serves {health.get('simulator')!r}, not the {name} simulator")
            client.attach()
        except (httpx.HTTPError, RuntimeError, RemoteEvidenceError) as exc:
            client.close()
            raise ValueError(f"{name} simulator at {url} does not answer its admin API: {exc}") from None
        except BaseException:
            client.close()
            raise
        return client

    @classmethod
    def from_config(cls, names: list[str], config: RemoteConfig, *, store: EvidenceStore,
                    default_ca: Path | None) -> RemoteEnvironment:
        ca = config.ca or default_ca
        https = any(e.url.scheme == "https" for e in config.simulators.values())
        ca_pem = ca.read_bytes() if https and ca is not None else None
        urls = {name: str(e.url).rstrip("/") for name, e in config.simulators.items()}
        candidate = {name: str(e.candidate_url).rstrip("/") for name, e in config.simulators.items() if e.candidate_url}
        return cls(names, store=store, urls=urls, admin_token=config.admin_token(), ca_pem=ca_pem,
                   candidate_urls=candidate)

    @property
    def endpoints(self) -> dict[str, str]:
        """The simulators' URLs as the candidate reaches them."""
        return dict(self._endpoints)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def __enter__(self) -> RemoteEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
