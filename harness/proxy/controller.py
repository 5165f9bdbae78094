"""The controller of ``esante proxy``: the proxy's admin API, and the journal of what its mitmproxy addons saw.

The harness (or a person in operator mode) drives it as it drives a simulator, under ``/_admin`` with the admin
token: ``PUT /context`` files what comes next under a run and a test case, ``GET /health``, ``GET /journal``,
``GET /records`` (a harness elsewhere imports the proxy's evidence as a simulator's); ``POST /reset`` and
``PUT /dataset`` are accepted and recorded (a proxy holds no state and no data set), so the runner's case
preparation needs nothing special.

The addons (:mod:`.addons`) post each event under ``/_admin/capture``; the controller journals it in the same
``Exchange`` form as the simulators' journal (:mod:`esante.simulators.core.journal`): an ``exchange.request``
record before the request goes upstream, an ``exchange.response`` record before the answer reaches the candidate
(or the failure: ``dropped``, ``tls_failed``), hash-chained in the same store. The records are journaled under
``simulator: proxy``, with the ``service`` each exchange went to, the ``upstream`` and the proxy's ``mode``
beside the usual fields, and what the proxy learnt of the upstream (its address, TLS version, certificate, the
client certificate presented to it) under ``capture``: nothing the simulators note (``notes`` stays empty).
"""

from __future__ import annotations

import base64
import threading
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from esante.harness.proxy.recorder import Recorder
from esante.harness.proxy.settings import PROXY, ProxySettings
from esante.simulators.core.admin import Context, DatasetChoice, require_admin_token
from esante.simulators.core.evidence import EvidenceStore, Record
from esante.simulators.core.evidence.remote import MAX_PAGE_RECORDS, export_page
from esante.simulators.core.journal import load_exchanges
from esante.simulators.core.pki import subject_of_der
from esante.simulators.core.runtime import ADMIN_PREFIX

NOT_RECORDED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestEvent(_Event):
    listener: str
    host: str
    port: int
    upstream_scheme: str
    method: str
    path: str
    query: str = ""
    scheme: str
    headers: list[tuple[str, str]]
    client: str | None = None
    client_certificate: str | None = None
    body: str = ""
    decoded: str | None = None


class ResponseEvent(_Event):
    exchange_id: str
    outcome: str
    status: int | None = None
    headers: list[tuple[str, str]] = []
    body: str = ""
    decoded: str | None = None
    error: str | None = None
    duration_ms: float | None = None
    upstream: dict[str, Any] = {}


class FailureEvent(_Event):
    side: str
    error: str
    sni: str | None = None
    client: str | None = None
    listener: str = ""
    upstream: str | None = None


def _certificate(pem: str | None) -> dict[str, str] | None:
    """A certificate as the journal names it: its RFC 4514 subject (as the simulators write it) and SHA-256."""
    if not pem:
        return None
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return {"subject": subject_of_der(certificate.public_bytes(Encoding.DER)),
            "sha256": certificate.fingerprint(hashes.SHA256()).hex()}


def _blobs(body: str, decoded: str | None) -> dict[str, bytes]:
    blobs = {"body": base64.b64decode(body)}
    if decoded is not None:
        blobs["decoded_body"] = base64.b64decode(decoded)
    return blobs


class ProxyControl:
    """The running proxy's state: its settings, its evidence store, the current test context, the recorder."""

    def __init__(self, settings: ProxySettings, store: EvidenceStore) -> None:
        self.settings, self.store = settings, store
        self.recorder = Recorder(settings.record_dir, mask=settings.mask_secrets) if settings.record_dir else None
        self.ready = threading.Event()
        self.mitmproxy_version: str | None = None
        self._context: tuple[str | None, str | None] = (None, None)
        self._lock = threading.Lock()

    @property
    def context(self) -> tuple[str | None, str | None]:
        with self._lock:
            return self._context

    def set_context(self, run_id: str | None, case_id: str | None) -> None:
        with self._lock:
            self._context = (run_id, case_id)

    def record_admin(self, action: str, detail: dict[str, Any]) -> None:
        run_id, case_id = self.context
        self.store.append("admin", {"simulator": PROXY, "action": action, **detail}, run_id=run_id, case_id=case_id)

    # -- the journal ---------------------------------------------------------------------------------------------
    def journal_request(self, event: RequestEvent) -> str:
        exchange_id = uuid.uuid4().hex
        upstream = self.settings.upstream_at(event.host, event.port)
        certificate = _certificate(event.client_certificate)
        run_id, case_id = self.context
        self.store.append("exchange.request", {
            "exchange_id": exchange_id, "simulator": PROXY, "method": event.method, "path": event.path,
            "query": event.query, "scheme": event.scheme, "headers": event.headers, "client": event.client,
            "client_cert_subject": certificate["subject"] if certificate else None, "truncated": False,
            "service": upstream.service if upstream else None,
            "upstream": upstream.url if upstream else f"{event.upstream_scheme}://{event.host}:{event.port}",
            "mode": self.settings.mode, "capture": {"client_certificate": certificate, "listener": event.listener}},
            run_id=run_id, case_id=case_id, ref=exchange_id, blobs=_blobs(event.body, event.decoded))
        return exchange_id

    def journal_response(self, event: ResponseEvent) -> None:
        request = next(iter(self.store.records(kind="exchange.request", ref=event.exchange_id)), None)
        if request is None or request.payload.get("simulator") != PROXY:
            raise HTTPException(404, f"no request {event.exchange_id} was journaled by the proxy")
        upstream = dict(event.upstream)
        upstream["certificate"] = _certificate(upstream.get("certificate"))
        blobs = _blobs(event.body, event.decoded)
        self.store.append("exchange.response", {
            "exchange_id": event.exchange_id, "simulator": PROXY, "outcome": event.outcome, "status": event.status,
            "headers": event.headers, "duration_ms": event.duration_ms, "notes": {},
            "capture": {"upstream": upstream, "error": event.error}},
            run_id=request.run_id, case_id=request.case_id, ref=event.exchange_id, blobs=blobs)
        if self.recorder is not None and event.outcome == "answered" and event.status is not None:
            self._record(request, event, blobs)

    def _record(self, request: Record, event: ResponseEvent, blobs: dict[str, bytes]) -> None:
        """Recordings hold bodies decoded (readable, editable), so they drop the encoding and framing headers."""
        p = request.payload
        sent = self.store.blob(p.get("decoded_body_sha256") or p["body_sha256"]) or b""
        headers = [(k, v) for k, v in event.headers if k.lower() not in NOT_RECORDED]
        assert self.recorder is not None
        self.recorder.keep(request, sent, event.status or 0, headers, blobs.get("decoded_body", blobs["body"]))

    def journal_failure(self, event: FailureEvent) -> str:
        """A TLS handshake with the candidate that failed: an exchange with no request line and no answer."""
        exchange_id = uuid.uuid4().hex
        run_id, case_id = self.context
        host, _, port = (event.upstream or "").rpartition(":")
        upstream = self.settings.upstream_at(host, int(port)) if port.isdigit() else None
        self.store.append("exchange.request", {
            "exchange_id": exchange_id, "simulator": PROXY, "method": "TLS", "path": "", "query": "",
            "scheme": "https", "headers": [], "client": event.client, "client_cert_subject": None,
            "truncated": False, "service": upstream.service if upstream else None, "upstream": event.upstream,
            "mode": self.settings.mode, "capture": {"listener": event.listener, "sni": event.sni}},
            run_id=run_id, case_id=case_id, ref=exchange_id, blobs={"body": b""})
        self.store.append("exchange.response", {
            "exchange_id": exchange_id, "simulator": PROXY, "outcome": "tls_failed", "status": None, "headers": [],
            "duration_ms": None, "notes": {}, "capture": {"error": f"{event.side}: {event.error}"}},
            run_id=run_id, case_id=case_id, ref=exchange_id, blobs={"body": b""})
        return exchange_id


def control_app(control: ProxyControl) -> FastAPI:
    """The controller's ASGI app: the admin API and the addons' capture routes, all under ``/_admin``."""
    api = FastAPI(title="esante proxy", docs_url=None, redoc_url=None, openapi_url=None)
    public = APIRouter(prefix=ADMIN_PREFIX)
    router = APIRouter(dependencies=[Depends(require_admin_token(control))])  # type: ignore[arg-type]

    @public.get("/health")
    def health() -> dict[str, Any]:
        return {"simulator": PROXY, "status": "ok" if control.ready.is_set() else "starting",
                "mode": control.settings.mode, "mitmproxy": control.mitmproxy_version,
                "upstreams": {u.service: u.url for u in control.settings.upstreams}}

    @router.post("/reset")
    def reset() -> dict[str, str]:
        control.record_admin("reset", {})
        return {"status": "reset"}

    @router.put("/context")
    def set_context(context: Context) -> Context:
        control.set_context(context.run_id, context.case_id)
        return context

    @router.put("/dataset")
    def set_dataset(choice: DatasetChoice) -> dict[str, Any]:
        return {"dataset": choice.name, "note": "a proxy holds no data set: the upstream has its own"}

    @router.get("/journal")
    def journal(run_id: str | None = None, case_id: str | None = None,
                since: int = Query(0, ge=0)) -> dict[str, Any]:
        exchanges = load_exchanges(control.store, run_id=run_id, case_id=case_id, simulator=PROXY, since=since)
        return {"simulator": PROXY, "exchanges": [e.to_json() for e in exchanges]}

    @router.get("/records")
    def records(since: int = Query(0, ge=0),
                limit: int = Query(MAX_PAGE_RECORDS, ge=0, le=MAX_PAGE_RECORDS)) -> dict[str, Any]:
        return export_page(control.store, PROXY, since, limit)

    _capture_routes(router, control)
    public.include_router(router)
    api.include_router(public)
    return api


def _capture_routes(router: APIRouter, control: ProxyControl) -> None:
    @router.post("/capture/ready")
    def ready(event: dict[str, Any]) -> dict[str, str]:
        control.mitmproxy_version = str(event.get("mitmproxy"))
        control.ready.set()
        return {"status": "ready"}

    @router.post("/capture/request")
    def request(event: RequestEvent) -> dict[str, str]:
        return {"exchange_id": control.journal_request(event)}

    @router.post("/capture/response")
    def response(event: ResponseEvent) -> dict[str, str]:
        control.journal_response(event)
        return {"status": "journaled"}

    @router.post("/capture/failure")
    def failure(event: FailureEvent) -> dict[str, str]:
        return {"exchange_id": control.journal_failure(event)}
