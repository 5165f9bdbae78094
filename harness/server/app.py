"""The lab's web application: the HTML pages (:mod:`.web`) and the JSON API (:mod:`.api`) over the same
operations (:mod:`.ops`), signed session cookies (Starlette's, itsdangerous) for people, bearer tokens for CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from starlette.middleware.sessions import SessionMiddleware

from esante.harness import __version__
from esante.harness.server import api, ops, web
from esante.harness.server.context import Lab
from esante.harness.server.db import Database
from esante.harness.server.models import Role, User
from esante.harness.server.ops import OpError
from esante.harness.server.security import Throttled
from esante.harness.server.worker import Dispatcher, LabSettings

HERE = Path(__file__).parent
SESSION_HOURS = 8


def lab_secret(data_dir: Path) -> str:
    """The key signing session cookies: ``$ESANTE_LAB_SECRET``, else a file of the data folder (created once)."""
    configured = os.environ.get("ESANTE_LAB_SECRET")
    if configured:
        return configured
    path = data_dir / "cookie-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def build_lab(data_dir: Path, database: Database, *, signing_key: Path | None = None, pki_dir: Path | None = None,
              campaigns_dir: Path | None = None, workers: int = 2, dispatcher: Dispatcher | None = None,
              secure_cookies: bool = False) -> Lab:
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database.migrate()
    settings = LabSettings(data_dir=data_dir, signing_key=signing_key or data_dir / "keys" / "ed25519.pem",
                           pki_dir=pki_dir)
    return Lab(database, settings, dispatcher, campaigns_dir, workers, secure_cookies, lab_secret(data_dir))


def ensure_admin(lab: Lab, email: str, password: str | None) -> str | None:
    """On a lab without accounts, create the first administrator; return the password if it was generated."""
    with lab.db.session() as s:
        if s.scalar(select(func.count()).select_from(User)):
            return None
        generated = None if password else secrets.token_urlsafe(12)
        ops.create_user(s, None, email, "Administrator", password or generated or "", Role.ADMIN)
    return generated


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    return web.error_page(request, status, message, headers)


def create_app(lab: Lab) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        lab.start()
        yield
        lab.stop()

    app = FastAPI(title="esante-conformance reviewers' lab", version=__version__, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/docs", redoc_url=None,
                  description="The lab's operations as JSON: candidates, sandbox, rehearsal and official sessions, "
                              "runs, reviews. Authenticate with `Authorization: Bearer <token>` (POST /api/v1/tokens).")
    app.state.lab = lab
    app.add_middleware(SessionMiddleware, secret_key=lab.secret, session_cookie="esante_lab",
                       max_age=SESSION_HOURS * 3600, same_site="lax", https_only=lab.secure_cookies)

    @app.middleware("http")
    async def headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    @app.exception_handler(OpError)
    async def refused(request: Request, exc: OpError) -> Response:
        return _error(request, exc.status, str(exc))

    @app.exception_handler(Throttled)
    async def throttled(request: Request, exc: Throttled) -> Response:
        return _error(request, 429, str(exc), {"Retry-After": str(exc.retry_after)})

    app.include_router(api.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
