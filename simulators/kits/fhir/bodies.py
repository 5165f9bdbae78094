"""Reading a FHIR resource from an untrusted request: FHIR JSON only (415 otherwise), bounded by size (the
core's body limit) and by nesting depth, counted on the raw text, so that a ``[[[[...]]]]`` bomb never
reaches the parser's recursion. What it holds is validated by :mod:`.validation`."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.negotiation import check_content_type

#: The FHIR resources a simulator accepts are nowhere near as deep.
MAX_JSON_DEPTH = 32


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


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The body as JSON, or a FhirError naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FhirError(400, "structure", "the body is not UTF-8") from None
    if json_depth(text) > max_depth:
        raise FhirError(400, "too-costly", f"the JSON is nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except ValueError as exc:
        raise FhirError(400, "structure", f"the body is not JSON: {str(exc)[:200]}") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number (RFC 8259)")


def _finite(text: str) -> float:
    """A JSON number Python can hold: 1e400 would become infinity, which no JSON answer can carry back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


async def read_resource(request: Request, resource_type: str | None = None) -> dict[str, Any]:
    """The request's FHIR JSON resource (of ``resource_type`` when given), not yet validated."""
    check_content_type(request)
    body = parse_json(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(400, "structure", "the body is not a FHIR resource (no resourceType)")
    if resource_type and body["resourceType"] != resource_type:
        raise FhirError(400, "invalid", f"expected a {resource_type}, got a {body['resourceType']}",
                        expression=["resourceType"])
    return body
