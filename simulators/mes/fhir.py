"""FHIR R4 plumbing of the simulator: ``OperationOutcome`` for every error, bounded JSON reading, search
bundles with paging.

Untrusted JSON is bounded twice before it is parsed: by size (the core's body limit) and by nesting depth
(counted on the raw text, so a ``[[[[...]]]]`` bomb never reaches the parser's recursion).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import JSONResponse

from esante.simulators.mes.protocol import FHIR_JSON, MAX_JSON_DEPTH


class FhirError(Exception):
    """An error answered as an ``OperationOutcome``: HTTP status, FHIR issue code, what and where."""

    def __init__(self, status: int, code: str, diagnostics: str, *, expression: list[str] | None = None,
                 details: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics
        self.expression, self.details, self.headers = expression or [], details, headers or {}

    def issue(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = self.expression
        if self.details:
            issue["details"] = {"coding": [{"system": "https://esante-conformance.example.org/mes/errors",
                                            "code": self.details}]}
        return issue

    def response(self) -> JSONResponse:
        return fhir_response(outcome([self.issue()]), self.status, self.headers)


class Invalid(FhirError):
    """A resource that breaks a rule: 422 with every issue found (``issues``), not only the first."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(422, "invalid", "; ".join(i["diagnostics"] for i in issues))
        self.issues = issues

    def response(self) -> JSONResponse:
        return fhir_response(outcome(self.issues), 422)


def problem(code: str, diagnostics: str, expression: str) -> dict[str, Any]:
    """One issue of an :class:`Invalid` answer."""
    return {"severity": "error", "code": code, "diagnostics": diagnostics, "expression": [expression]}


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in ``text`` (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or a FhirError naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FhirError(400, "structure", "the body is not UTF-8") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise FhirError(400, "too-costly", f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FhirError(400, "structure", f"the body is not JSON: {exc}") from None


async def read_resource(request: Request, resource_type: str | None = None) -> dict[str, Any]:
    """The request's FHIR JSON resource (of ``resource_type`` when given)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (FHIR_JSON, "application/json"):
        raise FhirError(415, "not-supported", f"the body must be {FHIR_JSON}, not {content_type or 'untyped'}")
    body = parse_json(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(400, "structure", "the body is not a FHIR resource (no resourceType)")
    if resource_type and body["resourceType"] != resource_type:
        raise FhirError(400, "invalid", f"expected a {resource_type}, got a {body['resourceType']}",
                        expression=["resourceType"])
    return body


def search_bundle(base: str, path: str, params: dict[str, str], matches: list[dict[str, Any]], offset: int,
                  count: int) -> dict[str, Any]:
    """A ``searchset`` page of ``matches`` (already sorted) with self and next links (offset paging)."""
    page = matches[offset:offset + count]

    def link(at: int) -> str:
        return f"{base}{path}?{urlencode({**params, '_count': count, '_offset': at})}"

    links = [{"relation": "self", "url": link(offset)}]
    if offset + count < len(matches):
        links.append({"relation": "next", "url": link(offset + count)})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links,
            "entry": [{"fullUrl": f"{base}{path}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in page]}
