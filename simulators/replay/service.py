"""The replay simulator: a national service played back from recordings of its real answers (WireMock's
playback, for the services this project simulates).

``esante sim replay DIR`` serves the recordings ``esante proxy --record DIR`` kept (one folder per service, one
YAML file per exchange: :mod:`.recordings`). It is a simulator like the others: admin API, journal, faults,
evidence, the test PKI's TLS; it journals under the name of the service it replays (``insi``), so a campaign
plays against it unchanged. Each request is answered by the recording whose ``match`` equals the request's keys
(``rules.yaml``); a request no recording matches gets the service's own error form (its simulator's, for a SOAP
service a fault) and is listed in the evidence (notes ``unmatched``, with its keys).

Options: ``recordings`` (the folder; none: every request is unmatched), ``service`` (which service of the folder,
when it holds several). The service's named faults are accepted (injected by the core, as for its simulator);
its misbehaviours cannot be replayed and are noted as ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import Scope

from esante.simulators.core.app import simulator_class, simulator_names
from esante.simulators.core.journal import behaviours_of, context_of
from esante.simulators.core.notes import Notes
from esante.simulators.core.runtime import ADMIN_PREFIX, PEER_PREFIX, ServiceError, Simulator
from esante.simulators.replay.notes import ReplayNotes
from esante.simulators.replay.recordings import Library

#: Hop-by-hop and framing headers: the server sets its own when it sends a recorded answer again.
NOT_REPLAYED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"})
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class _AnyPathButTheCores(APIRoute):
    """Every path is the service's, except the admin and peer routes the core serves beside it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("path", "").startswith((ADMIN_PREFIX, PEER_PREFIX)):
            return Match.NONE, {}
        return super().matches(scope)


class ReplaySimulator(Simulator):
    """Answers requests with recorded answers of one service."""

    name: ClassVar[str] = "replay"
    title: ClassVar[str] = "Replay of recorded answers"
    notes_model: ClassVar[type[Notes]] = ReplayNotes

    def __init__(self, dataset: Any, *, recordings: str | Path | None = None, service: str | None = None) -> None:
        super().__init__(dataset)
        folder = Path(recordings) if recordings else None
        self.service = service or _only_service(folder)
        self.library = Library.load(folder, self.service)
        self.real: Simulator | None = None
        if self.service in simulator_names() and self.service != ReplaySimulator.name:
            kind = simulator_class(self.service)
            self.real = kind(dataset)  # for its error form only
            self.fault_catalogue = kind.fault_catalogue  # type: ignore[misc]
            self.name = self.service  # type: ignore[misc]  # journaled as the service it stands for
            self.title = f"{kind.title} (replay)"  # type: ignore[misc]

    def router(self) -> APIRouter:
        router = APIRouter(route_class=_AnyPathButTheCores)
        router.add_api_route("/{path:path}", self.handle, methods=METHODS, include_in_schema=False)
        return router

    def reset(self) -> None:
        self.library.rewind()

    def error_response(self, error: ServiceError) -> Response:
        if self.real is not None:
            return self.real.error_response(error)
        return PlainTextResponse(f"{error.kind}: {error.message}", status_code=500)

    async def handle(self, request: Request) -> Response:
        notes = ReplayNotes.of(request)
        notes.ignored_behaviours = sorted(behaviours_of(request))
        body = await request.body()
        notes.match = keys = self.library.keys(request.method, request.url.path, request.url.query,
                                               request.headers.get("content-type", ""), body)
        notes.operation = keys.get("operation")
        found = self.library.answer(keys, context_of(request)[1])
        if found is None:
            notes.unmatched = True
            return self.error_response(ServiceError("unrecorded", "no recorded answer matches this request"))
        notes.recording, recording = found
        response = Response(recording.response.content(), status_code=recording.response.status)
        for name, value in recording.response.headers:
            if name.lower() not in NOT_REPLAYED:
                response.headers.append(name, value)
        return response


def _only_service(folder: Path | None) -> str:
    """The service a recordings folder holds, when it holds one (else the option must say)."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder is not None and folder.is_dir() else []
    if len(found) > 1:
        raise ValueError(f"{folder} holds recordings of {', '.join(found)}: choose one (--option service=NAME)")
    return found[0] if found else ReplaySimulator.name
