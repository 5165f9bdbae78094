"""The FHIR R4 RESTful API (http://hl7.org/fhir/R4/http.html), written once for the simulated FHIR servers: one
handler for every path under the base, which resolves the interaction itself so that everything under the
base answers as FHIR does, refusals included (an ``OperationOutcome``: 404 for what does not exist, 405 with
``Allow`` for a method the path does not take, 406/415 from :mod:`.negotiation`).

What it does for every server, from the :class:`~.capability.ResourceType` table that also writes the
CapabilityStatement (``GET [base]/metadata``):

* read, vread and history-instance with ``ETag: W/"n"`` and ``Last-Modified``; conditional read
  (``If-None-Match``, ``If-Modified-Since``: 304);
* create (201, absolute ``Location`` to the version, ``If-None-Exist``: 200 with the match, 412 when several
  match), update by id (``If-Match``: 412 on a stale version; no update-as-create: 405) and conditional update
  (``PUT [type]?criteria``: create, replace or 412); ``Prefer: return=minimal|representation|OperationOutcome``;
* search (GET, and POST ``[type]/_search`` with a form) per :mod:`.search`, ``Prefer: handling``;
* every body validated (:mod:`.validation`) before the service's own rules see it.

The service says who may do what and adds its rules through a :class:`Backend`; it stores in a
:class:`~.store.ResourceStore` the backend hands over per call (one per citizen at Mon espace santé)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from esante.simulators.kits.fhir.bodies import read_resource
from esante.simulators.kits.fhir.capability import (
    ResourceType,
    ServerDescription,
    capability_statement,
)
from esante.simulators.kits.fhir.errors import FhirError, outcome
from esante.simulators.kits.fhir.media import FHIR_JSON, fhir_response
from esante.simulators.kits.fhir.negotiation import negotiate
from esante.simulators.kits.fhir.notes import FhirNotes
from esante.simulators.kits.fhir.search import Search, parse_criteria, parse_search, searchset
from esante.simulators.kits.fhir.store import ResourceStore, etag
from esante.simulators.kits.fhir.validation import validated
from esante.simulators.kits.fhir.values import date_range

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SMART_CONFIGURATION = ".well-known/smart-configuration"
FORM = "application/x-www-form-urlencoded"


@dataclass(slots=True)
class Write:
    """A create or update the service is asked to accept: the validated resource, the id it updates, and the
    criteria of a conditional create (``If-None-Exist``, or the service's own implicit key) or update."""

    interaction: str
    resource_type: str
    resource: dict[str, Any]
    resource_id: str | None = None
    criteria: str | None = None


class Backend:
    """What a service adds to the REST layer: who may call (``open``), its rules on writes, what it does once
    a write is stored, the transactions it takes."""

    def open(self, request: Request, interaction: str, resource_type: str | None) -> Any:
        """Authorise the call; the context the other hooks get, with the ``store`` the call acts on."""
        raise NotImplementedError

    def check_search(self, request: Request, context: Any, resource_type: str, search: Search) -> None:
        """The service's rules on a search (who it may name)."""

    def check(self, request: Request, context: Any, write: Write) -> None:
        """The service's rules on a validated write (raise :class:`~.errors.Invalid`); may set its criteria."""

    async def written(self, request: Request, context: Any, write: Write, stored: dict[str, Any],
                      created: bool) -> None:
        """After the write is stored (the service's own side effects)."""

    async def transaction(self, request: Request, context: Any, bundle: dict[str, Any]) -> Response:
        raise FhirError(405, "not-supported", "this server takes no transaction")


def prefer(request: Request) -> dict[str, str]:
    """The ``Prefer`` header's preferences (RFC 7240): ``return``, ``handling``..."""
    found = {}
    for header in request.headers.getlist("prefer"):
        for item in header.replace(";", ",").split(","):
            name, _, value = item.strip().partition("=")
            found[name.strip().lower()] = value.strip().strip('"')
    return found


def http_date(instant_text: str) -> str:
    return format_datetime(date_range(instant_text).low.replace(microsecond=0), usegmt=True)


def version_headers(resource: dict[str, Any]) -> dict[str, str]:
    return {"ETag": etag(resource), "Last-Modified": http_date(resource["meta"]["lastUpdated"])}


class FhirServer:
    """The FHIR API under ``base`` for the resource ``types`` (a handler for ``base`` and ``base/{path}``)."""

    def __init__(self, base: str, types: Sequence[ResourceType], backend: Backend, description: ServerDescription,
                 *, page_size: int = 20, max_page: int = 100) -> None:
        self.base, self.backend, self.description = base, backend, description
        self.types = {t.name: t for t in types}
        self.page_size, self.max_page = page_size, max_page

    # -- what is served ----------------------------------------------------------------------------------------
    def origin(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def url(self, request: Request, *parts: str) -> str:
        return "/".join((self.origin(request) + self.base, *parts))

    def capability(self, request: Request) -> dict[str, Any]:
        return capability_statement(self.description, list(self.types.values()), self.origin(request), self.base)

    def smart_configuration(self, request: Request) -> Response:
        FhirNotes.of(request).interaction = "smart-configuration"
        if self.description.smart is None:
            raise FhirError(404, "not-found", "this server is not protected by SMART on FHIR")
        return JSONResponse(self.description.smart.configuration(self.origin(request)))

    # -- dispatch ----------------------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        """Everything under the base."""
        return await self._answered(request, self._dispatch)

    async def handle_smart_configuration(self, request: Request) -> Response:
        """``/.well-known/smart-configuration`` at the server's root too (where some clients look)."""
        return await self._answered(request, self.smart_configuration)

    async def _answered(self, request: Request, work: Callable[[Request], Any]) -> Response:
        """``work``'s answer, or the OperationOutcome of the FhirError it raised (noted)."""
        try:
            answer = work(request)
            return await answer if inspect.isawaitable(answer) else answer
        except FhirError as error:
            error.note(FhirNotes.of(request))
            return error.response()

    async def _dispatch(self, request: Request) -> Response:
        notes = FhirNotes.of(request)
        path = request.url.path[len(self.base):].strip("/")
        segments = path.split("/") if path else []
        method = "GET" if request.method == "HEAD" else request.method
        interaction, kind, parts = self._resolve(method, segments)
        notes.interaction, notes.resource_type = interaction, kind
        if interaction == "smart-configuration":
            return self.smart_configuration(request)
        negotiate(request)
        if interaction == "capabilities":
            return fhir_response(self.capability(request))
        if interaction == "transaction":
            context = self.backend.open(request, interaction, None)
            bundle = validated(await read_resource(request, "Bundle"))
            return await self.backend.transaction(request, context, bundle)
        handler = {"read": self._read, "vread": self._read, "history-instance": self._history,
                   "search-type": self._search, "create": self._create, "update": self._update}[interaction]
        return await handler(request, self.types[kind], interaction, parts)

    def _resolve(self, method: str, segments: list[str]) -> tuple[str, str | None, list[str]]:
        """(interaction, resource type, the path's ids) of a call, or the 404 / 405 it deserves."""
        if not segments:
            return self._allowed(method, {"POST": "transaction"} if "transaction" in
                                 self.description.system_interactions else {}, "the server's base"), None, []
        if segments == ["metadata"]:
            return self._allowed(method, {"GET": "capabilities"}, "metadata"), None, []
        if "/".join(segments) == SMART_CONFIGURATION:
            return self._allowed(method, {"GET": "smart-configuration"}, SMART_CONFIGURATION), None, []
        kind, rest = segments[0], segments[1:]
        if kind.startswith("_"):
            raise self._not_allowed(method, {}, f"{kind} (whole-system {kind[1:]})")
        if kind not in self.types:
            raise FhirError(404, "not-supported", f"resource type {kind[:64]!r} is not served here (see the "
                                                  "CapabilityStatement at metadata)")
        offered = set(self.types[kind].interactions)
        shapes: list[tuple[bool, dict[str, str]]] = [
            (not rest, {"GET": "search-type", "POST": "create", "PUT": "update"}),
            (rest == ["_search"], {"POST": "search-type"}),
            (rest == ["_history"], {}),
            (len(rest) == 1 and rest[0] != "_history", {"GET": "read", "PUT": "update"}),
            (len(rest) == 2 and rest[1] == "_history", {"GET": "history-instance"}),
            (len(rest) == 3 and rest[1] == "_history", {"GET": "vread"}),
        ]
        for matches, methods in shapes:
            if matches:
                served = {m: i for m, i in methods.items() if i in offered and self._shape_serves(kind, i, rest)}
                return self._allowed(method, served, f"{kind}/{'/'.join(rest)}".rstrip("/")), kind, rest
        raise FhirError(404, "not-found", f"no FHIR endpoint at {kind}/{'/'.join(rest)[:100]}")

    def _shape_serves(self, kind: str, interaction: str, rest: list[str]) -> bool:
        """``PUT [type]`` is the conditional update, served only when the type declares it."""
        return not (interaction == "update" and not rest and not self.types[kind].conditional_update)

    def _allowed(self, method: str, served: dict[str, str], what: str) -> str:
        if method not in served:
            raise self._not_allowed(method, served, what)
        return served[method]

    def _not_allowed(self, method: str, served: dict[str, str], what: str) -> FhirError:
        allow = ", ".join(sorted({*served, *(["HEAD"] if "GET" in served else [])}))
        offered = "; ".join(f"{m} is {i}" for m, i in sorted(served.items())) or "nothing is served there"
        return FhirError(405, "not-supported", f"{method} on {what[:120]} is not supported here ({offered}; see the "
                                               "CapabilityStatement at metadata)", headers={"Allow": allow})

    # -- reads -------------------------------------------------------------------------------------------------
    async def _read(self, request: Request, kind: ResourceType, interaction: str, parts: list[str]) -> Response:
        store = self.backend.open(request, interaction, kind.name).store
        if interaction == "vread":
            return self._answer_read(request, store.vread(kind.name, parts[0], parts[2]))
        return self._answer_read(request, store.read(kind.name, parts[0]))

    def _answer_read(self, request: Request, resource: dict[str, Any]) -> Response:
        headers = version_headers(resource)
        if _not_modified(request, resource):
            return Response(status_code=304, headers=headers)
        return fhir_response(resource, headers=headers)

    async def _history(self, request: Request, kind: ResourceType, interaction: str, parts: list[str]) -> Response:
        store = self.backend.open(request, interaction, kind.name).store
        versions = store.history(kind.name, parts[0])
        entries = [{"fullUrl": self.url(request, kind.name, parts[0]), "resource": version,
                    "request": {"method": "POST", "url": kind.name} if version["meta"]["versionId"] == "1" else
                    {"method": "PUT", "url": f"{kind.name}/{parts[0]}"},
                    "response": self._entry_status(version, "201 Created" if version["meta"]["versionId"] == "1"
                                                   else "200 OK")}
                   for version in versions]
        return fhir_response({"resourceType": "Bundle", "type": "history", "total": len(entries),
                              "link": [{"relation": "self", "url": str(request.url)}], "entry": entries})

    async def _search(self, request: Request, kind: ResourceType, interaction: str, parts: list[str]) -> Response:
        context = self.backend.open(request, interaction, kind.name)
        items = list(request.query_params.multi_items())
        if request.method == "POST":
            items += await _form(request)
        search = parse_search(items, kind.params, lenient=prefer(request).get("handling") == "lenient",
                              page_size=self.page_size, max_page=self.max_page, default_sort=kind.default_sort)
        self.backend.check_search(request, context, kind.name, search)
        matches = search.run(context.store.current(kind.name))
        FhirNotes.of(request).page = search.page(len(matches))
        return fhir_response(searchset(self.url(request, kind.name), search, matches))

    # -- writes ------------------------------------------------------------------------------------------------
    async def _create(self, request: Request, kind: ResourceType, interaction: str, parts: list[str]) -> Response:
        context = self.backend.open(request, interaction, kind.name)
        resource = _without_server_fields(validated(await read_resource(request, kind.name)))
        write = Write("create", kind.name, resource, criteria=request.headers.get("if-none-exist"))
        store = context.store
        with store.lock:
            self.backend.check(request, context, write)
            stored, created = self.create(store, kind, write)
        return await self._written(request, context, write, stored, created)

    def create(self, store: ResourceStore, kind: ResourceType, write: Write) -> tuple[dict[str, Any], bool]:
        """Store a create, conditional on its criteria (one match: that one, not created; several: 412)."""
        with store.lock:
            match = self.match(store, kind, write.criteria, "If-None-Exist") if write.criteria else None
            return (match, False) if match is not None else (store.create(write.resource), True)

    def match(self, store: ResourceStore, kind: ResourceType, criteria: str, what: str) -> dict[str, Any] | None:
        """The one resource the criteria find (None when none does), or 412 when several do."""
        matches = parse_criteria(criteria, kind.params, what).run(store.current(kind.name))
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"{what} {criteria[:200]!r} matches {len(matches)} "
                                                     f"{kind.name} resources: it must name one")
        return matches[0] if matches else None

    async def _update(self, request: Request, kind: ResourceType, interaction: str, parts: list[str]) -> Response:
        context = self.backend.open(request, interaction, kind.name)
        resource = validated(await read_resource(request, kind.name))
        criteria = None if parts else _criteria(request)
        store = context.store
        with store.lock:
            target = self.match(store, kind, criteria, "the conditional update") if criteria else \
                store.get(kind.name, parts[0])
            resource_id = _target_id(resource, parts, target)
            if target is not None:
                _check_if_match(request, target)
            write = Write("update", kind.name, resource, resource_id, criteria)
            self.backend.check(request, context, write)
            if target is None:
                stored, created = store.create(_without_server_fields(write.resource)), True
            else:
                stored, created = store.update(write.resource, target["id"]), False
        return await self._written(request, context, write, stored, created)

    async def _written(self, request: Request, context: Any, write: Write, stored: dict[str, Any],
                       created: bool) -> Response:
        FhirNotes.of(request).created = created
        await self.backend.written(request, context, write, stored, created)
        return self.answer_write(request, stored, 201 if created else 200)

    def location(self, request: Request, resource: dict[str, Any]) -> str:
        return self.url(request, resource["resourceType"], resource["id"], "_history", resource["meta"]["versionId"])

    def answer_write(self, request: Request, stored: dict[str, Any], status: int) -> Response:
        """201/200 with ``Location``, ``ETag`` and ``Last-Modified``, and the body ``Prefer: return`` asks for."""
        headers = {"Location": self.location(request, stored), **version_headers(stored)}
        wanted = prefer(request).get("return", "representation")
        if wanted == "minimal":
            return Response(status_code=status, headers=headers, media_type=FHIR_JSON)
        if wanted == "OperationOutcome":
            done = "created" if status == 201 else "kept (it already existed) or updated"
            return fhir_response(outcome([{"severity": "information", "code": "informational",
                                           "diagnostics": f"{stored['resourceType']}/{stored['id']} {done}"}]),
                                 status, headers)
        return fhir_response(stored, status, headers)

    def _entry_status(self, stored: dict[str, Any], status: str) -> dict[str, str]:
        return {"status": status, "etag": etag(stored), "lastModified": stored["meta"]["lastUpdated"]}

    def entry_response(self, request: Request, stored: dict[str, Any], created: bool) -> dict[str, Any]:
        """A transaction-response entry (R4 §3.1.0.11.2), with the resource when ``Prefer: return`` asks."""
        entry: dict[str, Any] = {"response": {**self._entry_status(stored, "201 Created" if created else "200 OK"),
                                              "location": self.location(request, stored)}}
        if prefer(request).get("return") == "representation":
            entry["resource"] = stored
        return entry


def _without_server_fields(resource: dict[str, Any]) -> dict[str, Any]:
    """A created resource's id and version are the server's (R4 §3.1.0.8: an id sent is ignored)."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    kept = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {**kept, "meta": meta} if meta else kept


def _criteria(request: Request) -> str:
    criteria = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "_format"])
    if not criteria:
        raise FhirError(400, "invalid", "PUT on the type's endpoint is a conditional update: give the search "
                                        "criteria (PUT [type]?identifier=system|value), or PUT [type]/[id]")
    return criteria


def _target_id(resource: dict[str, Any], parts: list[str], target: dict[str, Any] | None) -> str | None:
    """The id an update writes to; R4 §3.1.0.4: the body's id SHALL be the URL's (400 otherwise)."""
    sent = resource.get("id")
    if parts:
        if sent != parts[0]:
            raise FhirError(400, "invalid", f"the resource's id ({sent!r}) must be the URL's ({parts[0]!r})",
                            expression=[f"{resource['resourceType']}.id"])
        if target is None:
            raise FhirError(405, "not-supported", f"{resource['resourceType']}/{parts[0]} does not exist and this "
                                                  "server does not create resources by a client's id (create "
                                                  "with POST)")
        return parts[0]
    if target is not None and sent not in (None, target["id"]):
        raise FhirError(400, "invalid", f"the resource's id ({sent!r}) is not the id of the resource the criteria "
                                        f"found ({target['id']})", expression=[f"{resource['resourceType']}.id"])
    if target is None and sent is not None:
        raise FhirError(405, "not-supported", "nothing matches and this server does not create resources by a "
                                              "client's id: send the resource without an id")
    return target["id"] if target else None


def _check_if_match(request: Request, current: dict[str, Any]) -> None:
    wanted = request.headers.get("if-match")
    if wanted is None:
        return
    version = wanted.strip().removeprefix("W/").strip('"')
    if version != current["meta"]["versionId"]:
        raise FhirError(412, "conflict", f"If-Match {wanted[:40]!r}: the current version is "
                                         f"{etag(current)}; read it again before updating")


def _not_modified(request: Request, resource: dict[str, Any]) -> bool:
    none_match = request.headers.get("if-none-match")
    if none_match is not None:  # W/"2", "2", or the bare 2 some clients send
        wanted = {tag.strip().removeprefix("W/").strip('"') for tag in none_match.split(",")}
        return bool(wanted & {resource["meta"]["versionId"], "*"})
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return date_range(resource["meta"]["lastUpdated"]).low.replace(microsecond=0) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


async def _form(request: Request) -> list[tuple[str, str]]:
    """The parameters of ``POST [type]/_search`` (R4 §3.1.1.1: a form)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return []
    if kind != FORM:
        raise FhirError(415, "not-supported", f"POST _search takes {FORM}, not {kind or 'untyped'}")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise FhirError(400, "structure", "the form is not UTF-8") from None
