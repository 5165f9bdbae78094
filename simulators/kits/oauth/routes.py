"""The routes of a simulated service whose errors know their own answer (:class:`OAuthError`, a FHIR
``OperationOutcome``...): each route names its operation in the notes, and an error raised anywhere in the
handler is noted and answered in the service's own form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from fastapi import APIRouter, Request
from starlette.responses import Response

from esante.simulators.core.notes import Notes
from esante.simulators.kits.oauth.errors import OAuthError

Handler = Callable[[Request], Awaitable[Response]]
#: (path, methods, operation noted, handler)
Route = tuple[str, list[str], str, Handler]


class KnowsItsAnswer(Protocol):
    """An error that says what the journal keeps of it and how the service answers it."""

    def note(self, notes: Notes) -> None: ...
    def response(self) -> Response: ...


def answered(operation: str, handler: Handler, notes_model: type[Notes],
             errors: tuple[type[Exception], ...] = (OAuthError,)) -> Handler:
    """``handler`` with ``operation`` in its notes, and ``errors`` answered as they say."""

    async def wrapped(request: Request) -> Response:
        notes = notes_model.of(request)
        notes.operation = operation
        try:
            return await handler(request)
        except errors as error:
            known: KnowsItsAnswer = error  # type: ignore[assignment]  # each of ``errors`` knows its answer
            known.note(notes)
            return known.response()

    return wrapped


def router_of(routes: Sequence[Route], notes_model: type[Notes],
              errors: tuple[type[Exception], ...] = (OAuthError,)) -> APIRouter:
    """The service's routes, each :func:`answered`, out of the OpenAPI schema (they are the protocol's)."""
    router = APIRouter()
    for path, methods, operation, handler in routes:
        router.add_api_route(path, answered(operation, handler, notes_model, errors), methods=methods,
                             include_in_schema=False)
    return router
