"""The journal: every exchange a simulator sees is recorded as received and as answered.

:class:`JournalMiddleware` wraps a simulator's protocol app. For each HTTP call it

1. reads the body (bounded: past the limit the rest is not read, the prefix is kept and the service's
   own "too large" fault is answered),
2. appends an ``exchange.request`` record *before* anything else happens, so a request that crashes, hangs
   or kills the simulator is still evidence,
3. applies the fault rules that fire (latency, HTTP error, service fault, dropped connection),
4. runs the protocol handler, capturing its answer (a handler that crashes is answered the service's own
   internal fault, and journaled as such),
5. appends an ``exchange.response`` record (status, headers, body, timing, the handler's notes), and only
   then sends the answer: what the candidate received is always what the journal holds.

Two commits per exchange, although a commit is most of what journaling costs (``benchmarks/README.md``): one
commit for both would lose the request of a simulator killed while handling it, the very request a reviewer
most wants to see. A TCP session is journaled once, when it ends (its transcript is one record).

Admin calls (under :data:`ADMIN_PREFIX`) are harness control, not candidate traffic: they bypass this.

A protocol with listeners of its own (SMTP, IMAP) journals each connection as one :class:`Session`: opened with
the same fault draw (:func:`draw_faults`), closed into the same two records, read back as the same
:class:`Exchange`.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.responses import PlainTextResponse, Response

from esante.simulators.core.evidence import Entry, EvidenceStore, Record
from esante.simulators.core.faults import FaultKind, FaultRule
from esante.simulators.core.notes import NOTES_KEY, Notes
from esante.simulators.core.runtime import ADMIN_PREFIX, ServiceError, SimulatorRuntime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


#: Where the journal keeps the call's (run id, case id) in the ASGI scope's state.
CONTEXT_KEY = "esante_context"


class ConnectionDropped(Exception):
    """Raised inside the journal when a fault rule drops the connection."""


def behaviours_of(scope_or_request: Any) -> set[str]:
    """The named misbehaviours (``behaviour`` fault rules) that fired for this call; the handler applies them."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return scope.setdefault("state", {}).setdefault("esante_behaviours", set())


def context_of(scope_or_request: Any) -> tuple[str | None, str | None]:
    """The (run id, test case id) this call is filed under, for a protocol that answers per case (a replay)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return scope.setdefault("state", {}).get(CONTEXT_KEY, (None, None))


def draw_faults(runtime: SimulatorRuntime, path: str, notes: Notes) -> list[FaultRule]:
    """The fault rules that fire for one exchange or session at ``path``, recorded in its notes: the one draw
    HTTP calls and protocol sessions share."""
    fired = runtime.faults.draw(path)
    if fired:
        notes.injected_faults = [*notes.injected_faults, *(r.model_dump(exclude_none=True) for r in fired)]
    return fired


class _Capture:
    """Collects the inner app's response messages so they can be journaled before being sent."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class JournalMiddleware:
    """ASGI middleware recording every non-admin exchange of one simulator into the evidence store."""

    def __init__(self, app: Callable[..., Awaitable[None]], runtime: SimulatorRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        exchange_id = uuid.uuid4().hex
        started = time.perf_counter()
        body, truncated = await _read_body(receive, rt.settings.max_body_bytes)
        run_id, case_id = rt.context
        scope.setdefault("state", {})[CONTEXT_KEY] = (run_id, case_id)
        rt.store.append("exchange.request", _request_payload(scope, exchange_id, rt.name, truncated),
                        run_id=run_id, case_id=case_id, ref=exchange_id, blobs={"body": body})
        notes = scope["state"][NOTES_KEY] = rt.new_notes()
        capture, outcome = _Capture(), "answered"
        try:
            if truncated:
                notes.rejected = "body over the size limit"
                error = ServiceError("too_large", f"message exceeds the {rt.settings.max_body_bytes}-byte limit")
                await rt.error_response(error)(scope, receive, capture.send)
            else:
                await self._serve(scope, _replay(body, receive), capture, notes)
        except ConnectionDropped:
            outcome = "dropped"
        except Exception as exc:  # the handler crashed: still answer, still journal
            outcome = "error"
            notes.exception = f"{type(exc).__name__}: {exc}"
            capture = _Capture()
            await rt.error_response(ServiceError("internal", "internal simulator error"))(
                scope, receive, capture.send)
        finally:
            rt.store.append("exchange.response", {
                "exchange_id": exchange_id, "simulator": rt.name, "outcome": outcome,
                "status": capture.status, "headers": capture.headers,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3), "notes": notes.to_json(),
            }, run_id=run_id, case_id=case_id, ref=exchange_id, blobs={"body": bytes(capture.body)})
        if outcome == "dropped":
            return
        for message in capture.messages:
            await send(message)

    async def _serve(self, scope: Scope, receive: Receive, capture: _Capture, notes: Notes) -> None:
        for rule in draw_faults(self.runtime, scope["path"], notes):
            response = await self._apply(rule, scope)
            if response is not None:
                await response(scope, receive, capture.send)
                return
        await self.app(scope, receive, capture.send)

    async def _apply(self, rule: FaultRule, scope: Scope) -> Response | None:
        if rule.kind == FaultKind.LATENCY:
            await asyncio.sleep(rule.latency_ms / 1000)
            return None
        if rule.kind == FaultKind.HTTP_ERROR:
            return PlainTextResponse(f"HTTP {rule.status} (injected fault)", status_code=rule.status)
        if rule.kind == FaultKind.BEHAVIOUR:
            behaviours_of(scope).add(rule.fault_code or "")
            return None
        if rule.kind == FaultKind.SERVICE_FAULT:
            return self.runtime.error_response(ServiceError("injected", "injected service fault",
                                                            rule.fault_code))
        transport = scope.get("extensions", {}).get("esante.transport")
        if transport is not None:
            transport.abort()
            for _ in range(5):  # let the server see the connection lost (TLS adds a hop) before we return
                await asyncio.sleep(0)
        raise ConnectionDropped


def _request_payload(scope: Scope, exchange_id: str, simulator: str, truncated: bool) -> dict[str, Any]:
    tls = scope.get("extensions", {}).get("tls") or {}
    client = scope.get("client")
    return {
        "exchange_id": exchange_id, "simulator": simulator, "method": scope["method"],
        "path": scope["path"], "query": scope.get("query_string", b"").decode("latin-1"),
        "scheme": scope.get("scheme", "http"),
        "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])],
        "client": f"{client[0]}:{client[1]}" if client else None,
        "client_cert_subject": tls.get("client_cert_subject"), "truncated": truncated,
    }


@dataclass(slots=True)
class Session:
    """One session of a non-HTTP protocol (an SMTP or IMAP connection), journaled as one exchange when it ends:
    ``method`` is the protocol (``SMTP``), ``path`` its listener (``/smtp``), the request body what the client
    sent and the response body what the server answered (both bounded transcripts), the notes what the
    protocol observed (operations, messages, findings). Filed under the test context current when it began.

    :meth:`open` draws the session's faults once, as the journal draws an HTTP call's; :meth:`close` journals it
    (once, whatever path the connection ends by)."""

    runtime: SimulatorRuntime
    protocol: str
    client: str | None
    run_id: str | None
    case_id: str | None
    notes: Notes
    faults: list[FaultRule] = field(default_factory=list)
    client_cert_subject: str | None = None
    client_bytes: bytearray = field(default_factory=bytearray)
    server_bytes: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    status: int | None = None
    outcome: str = "answered"
    started: float = field(default_factory=time.perf_counter)
    limit: int = 256 * 1024
    journaled: bool = False

    @classmethod
    def open(cls, runtime: SimulatorRuntime, protocol: str, peer: Any) -> Session:
        """A new session of ``protocol`` from ``peer`` (a (host, port) pair), its faults drawn at ``/<protocol>``."""
        run_id, case_id = runtime.context
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None
        session = cls(runtime, protocol, client, run_id, case_id, runtime.new_notes())
        session.faults = draw_faults(runtime, f"/{protocol.lower()}", session.notes)
        return session

    @property
    def behaviours(self) -> set[str]:
        """The named misbehaviours drawn for this session."""
        return {r.fault_code or "" for r in self.faults if r.kind == FaultKind.BEHAVIOUR}

    def fired(self, kind: FaultKind, code: str | None = None) -> FaultRule | None:
        """The first drawn rule of this kind (and fault code, when given)."""
        return next((r for r in self.faults if r.kind == kind and (code is None or r.fault_code == code)), None)

    async def latency(self) -> None:
        """Wait as the drawn latency rules say."""
        for rule in self.faults:
            if rule.kind == FaultKind.LATENCY:
                await asyncio.sleep(rule.latency_ms / 1000)

    def heard(self, data: bytes) -> None:
        self.truncated |= _bounded_append(self.client_bytes, data, self.limit)

    def said(self, data: bytes) -> None:
        self.truncated |= _bounded_append(self.server_bytes, data, self.limit)

    def close(self, outcome: str = "answered") -> None:
        """Journal the session (the first call only); ``outcome`` applies unless one was already set."""
        if self.journaled:
            return
        self.journaled = True
        if self.outcome == "answered":
            self.outcome = outcome
        _journal_session(self)


def _bounded_append(buffer: bytearray, data: bytes, limit: int) -> bool:
    room = limit - len(buffer)
    buffer += data[:max(room, 0)]
    return len(data) > room


def _journal_session(session: Session) -> str:
    """Append a finished session to the evidence store as an exchange (request and response records)."""
    exchange_id = uuid.uuid4().hex
    rt, protocol = session.runtime, session.protocol
    rt.store.append_many([
        Entry("exchange.request", {
            "exchange_id": exchange_id, "simulator": rt.name, "method": protocol.upper(),
            "path": f"/{protocol.lower()}", "query": "", "scheme": protocol.lower(), "headers": [],
            "client": session.client, "client_cert_subject": session.client_cert_subject,
            "truncated": session.truncated}, session.run_id, session.case_id, exchange_id,
            {"body": bytes(session.client_bytes)}),
        Entry("exchange.response", {
            "exchange_id": exchange_id, "simulator": rt.name, "outcome": session.outcome, "status": session.status,
            "headers": [], "duration_ms": round((time.perf_counter() - session.started) * 1000, 3),
            "notes": session.notes.to_json()}, session.run_id, session.case_id, exchange_id,
            {"body": bytes(session.server_bytes)})])
    return exchange_id


@dataclass(slots=True)
class Exchange:
    """One request and its answer, as journaled; what checks judge and reports show."""

    id: str
    simulator: str
    run_id: str | None
    case_id: str | None
    received_at: str
    method: str
    path: str
    query: str
    scheme: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    request_truncated: bool
    client: str | None
    client_cert_subject: str | None
    request_digest: str
    request_seq: int = 0
    outcome: str = "incomplete"  # answered | dropped | error | incomplete (no answer journaled)
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    duration_ms: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    response_digest: str | None = None
    response_seq: int | None = None

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.request_headers if k.lower() == name), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["request_body"] = base64.b64encode(self.request_body).decode()
        data["response_body"] = base64.b64encode(self.response_body).decode()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Exchange:
        data = dict(data)
        data["request_body"] = base64.b64decode(data["request_body"])
        data["response_body"] = base64.b64decode(data["response_body"])
        data["request_headers"] = [tuple(h) for h in data["request_headers"]]
        data["response_headers"] = [tuple(h) for h in data["response_headers"]]
        return cls(**data)


def load_exchanges(store: EvidenceStore, *, run_id: str | None = None, case_id: str | None = None,
                   simulator: str | None = None, since: int = 0) -> list[Exchange]:
    """Join the journal's request and response records into exchanges, in arrival order."""
    requests = store.records(kind="exchange.request", run_id=run_id, case_id=case_id, since=since)
    responses = {r.ref: r for r in store.records(kind="exchange.response", run_id=run_id,
                                                  case_id=case_id, since=since)}
    result = []
    for req in requests:
        if simulator and req.payload["simulator"] != simulator:
            continue
        result.append(_join(store, req, responses.get(req.ref)))
    return result


def _join(store: EvidenceStore, req: Record, resp: Record | None) -> Exchange:
    p = req.payload
    exchange = Exchange(
        id=p["exchange_id"], simulator=p["simulator"], run_id=req.run_id, case_id=req.case_id,
        received_at=req.recorded_at, method=p["method"], path=p["path"], query=p["query"],
        scheme=p["scheme"], request_headers=[tuple(h) for h in p["headers"]],
        request_body=store.blob(p["body_sha256"]) or b"", request_truncated=p["truncated"],
        client=p["client"], client_cert_subject=p["client_cert_subject"], request_digest=req.digest,
        request_seq=req.seq)
    if resp is not None:
        r = resp.payload
        exchange.outcome, exchange.status = r["outcome"], r["status"]
        exchange.response_headers = [tuple(h) for h in r["headers"]]
        exchange.response_body = store.blob(r["body_sha256"]) or b""
        exchange.duration_ms, exchange.notes = r["duration_ms"], r["notes"]
        exchange.response_digest, exchange.response_seq = resp.digest, resp.seq
    return exchange


__all__ = ["ConnectionDropped", "Exchange", "JournalMiddleware", "Session", "behaviours_of", "context_of",
           "draw_faults", "load_exchanges"]
