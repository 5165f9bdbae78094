"""The reference candidate behind the driver contract (:mod:`harness.driver`): a FastAPI app.

``create_reference_app(pki_dir=..., defects=[...])`` is what ``esante run --candidate reference`` serves. It is
one application made of :class:`~esante.harness.reference.parts.Part`\\ s, one per national service, registered
in the ``esante.reference`` entry-point group as simulators are. Actions go to the part that names them, the
browser's arrivals to the part owning the page's path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from starlette.responses import JSONResponse, Response

from esante.harness.driver import (
    API_PREFIX,
    ActionOutcome,
    ActionReport,
    ActionRequest,
    CallbackRequest,
    CandidateInfo,
    ResetRequest,
)
from esante.harness.reference.defects import Defects
from esante.harness.reference.parts import LOOPBACK, NotConfigured, Part, ReferenceContext

VENDOR = "esante-conformance"
#: The entry-point group of the reference candidate's parts (``insi = "...reference.insi:InsiPart"``).
PARTS_GROUP = "esante.reference"


@cache
def parts() -> tuple[type[Part], ...]:
    """Every registered part, in name order."""
    return tuple(ep.load() for ep in sorted(entry_points(group=PARTS_GROUP), key=lambda e: e.name))


def actions() -> tuple[str, ...]:
    return tuple(action for part in parts() for action in part.actions)


class ReferenceRuntime:
    """Everything one reference candidate holds: its defects and one instance of each part."""

    def __init__(self, context: ReferenceContext) -> None:
        self.context = context
        self.parts = [part(context) for part in parts()]
        self.by_action = {action: part for part in self.parts for action in part.actions}
        self.lock = threading.Lock()  # one action at a time: the parts hold plain in-memory state

    def part(self, kind: type[Part]) -> Part:
        return next(p for p in self.parts if isinstance(p, kind))

    def info(self) -> CandidateInfo:
        ctx = self.context
        version = f"{ctx.version}+defects:{ctx.defects.label()}" if ctx.defects else ctx.version
        return CandidateInfo(name=ctx.name, version=version, vendor=VENDOR, actions=list(actions()))

    def reset(self, endpoints: dict[str, str]) -> None:
        with self.lock:
            for part in self.parts:
                part.reset(endpoints)

    def act(self, action: str, params: dict[str, Any], own_url: str = LOOPBACK) -> ActionReport:
        part = self.by_action.get(action)
        if part is None:
            raise HTTPException(404, f"unknown action {action!r}; the reference candidate supports "
                                     f"{', '.join(actions())}")
        with self.lock:
            return part.act(action, params, own_url)

    def callback(self, url: str) -> ActionReport:
        path = urlsplit(url).path
        part = next((p for p in self.parts if p.callback_prefix and path.startswith(p.callback_prefix)), None)
        if part is None:  # the browser landed on a page the application does not have: its own error page
            return ActionReport(outcome=ActionOutcome.ERROR, message=f"the application has no page at {path}")
        with self.lock:
            return part.callback(url)

    def close(self) -> None:
        with self.lock:
            for part in self.parts:
                part.close()


def loopback_origin(request: Request) -> str:
    """The application's own origin for its redirect URIs: PSC registers loopback URIs (``127.0.0.1``, any
    port, RFC 8252 §7.3), so the port is the one the driver was called on, whatever host name it used."""
    port = request.base_url.port
    return f"{LOOPBACK}:{port}" if port else LOOPBACK


def create_reference_app(*, pki_dir: Path, defects: Iterable[str] = (), idam: str = "ESANTE-REF-0001",
                         name: str = "esante-reference-candidate", version: str = "1.0.0") -> FastAPI:
    """The reference candidate as a driver-contract app; ``defects`` switches on named defects (the kits'
    ``defects.yaml``)."""
    runtime = ReferenceRuntime(ReferenceContext(Path(pki_dir), Defects(defects), idam, name, version))
    # FastAPI's OpenTelemetry hooks off: unconfigured, they still cost each driver call a provider look-up
    app = FastAPI(title="esante reference candidate", version=version, docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    router = APIRouter(prefix=API_PREFIX)

    @router.get("/info", response_model=CandidateInfo)
    def info() -> CandidateInfo:
        return runtime.info()

    @router.post("/reset", status_code=204)
    def reset(body: ResetRequest) -> Response:
        runtime.reset(body.endpoints)
        return Response(status_code=204)

    # Each part answers its own report model (an ActionReport with its service's fields): sent as it is.
    @router.post("/actions/{action}")
    def act(action: str, body: ActionRequest, request: Request) -> JSONResponse:
        try:
            return _answer(runtime.act(action, body.params, loopback_origin(request)))
        except NotConfigured as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/callback")
    def callback(body: CallbackRequest) -> JSONResponse:
        try:
            return _answer(runtime.callback(body.url))
        except NotConfigured as exc:
            raise HTTPException(409, str(exc)) from None

    app.include_router(router)
    app.state.reference = runtime
    return app


def _answer(report: ActionReport) -> JSONResponse:
    return JSONResponse(report.model_dump(mode="json", exclude_none=True))
