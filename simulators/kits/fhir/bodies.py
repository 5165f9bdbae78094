"""Reading a FHIR resource from an untrusted request: bounded by size (the core's body limit) and by nesting
depth, counted on the raw text, so that a ``[[[[...]]]]`` bomb never reaches the parser's recursion; then its
structure checked with fhir.resources' models."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from esante.simulators.kits.fhir.errors import FhirError, problem
from esante.simulators.kits.fhir.media import FHIR_JSON

#: The FHIR resources a simulator accepts are nowhere near as deep.
MAX_JSON_DEPTH = 32
MAX_STRUCTURE_PROBLEMS = 20


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


def structure_problems(model: Any, resource: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """What the fhir.resources ``model`` finds wrong with the resource's structure (types, cardinalities,
    unknown fields), each located under ``where``."""
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [problem("structure", f"{e['msg']}", f"{where}.{'.'.join(str(p) for p in e['loc'])}")
                for e in exc.errors()[:MAX_STRUCTURE_PROBLEMS]]
    except (ValueError, TypeError) as exc:
        return [problem("structure", str(exc)[:300], where)]
    return []
