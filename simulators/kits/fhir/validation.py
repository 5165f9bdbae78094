"""Validation of a FHIR R4 resource from an untrusted client, in the order a parser meets its problems:

1. the official HL7 R4 JSON Schema (shipped in ``schema/``, with its provenance): JSON types (a decimal is a
   number, not ``"72"``; a dateTime a string, not ``12345``), no ``null`` anywhere, the primitive types'
   patterns (ids, dates, codes), the required bindings' codes (``Appointment.status``), unknown elements;
   then what R4's JSON forbids and the schema lets through: empty arrays and objects;
2. fhir.resources' model of the resource type: cardinalities and choice types the schema cannot express;
3. what is kept is the model's JSON, so that what a simulator stores and serves is what was validated.

The schema is read with ``jsonschema``; its one costly construct, ``ResourceList`` (a ``oneOf`` of every
resource type, for ``Bundle.entry.resource`` and ``contained``), is decided by ``resourceType`` as the
schema's own ``discriminator`` mapping says, instead of trying the 146 alternatives. Problems are counted
lazily, at most :data:`MAX_PROBLEMS`, so hostile input costs no more than valid input."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft6Validator, ValidationError, validators
from pydantic import ValidationError as ModelError

from esante.simulators.kits.fhir.errors import Invalid, problem

MAX_PROBLEMS = 20
SCHEMA = "schema/fhir.schema.json"


@cache
def r4_schema() -> dict[str, Any]:
    """The HL7 FHIR R4 JSON Schema the kit ships."""
    return json.loads(files("esante.simulators.kits.fhir").joinpath(SCHEMA).read_text(encoding="utf-8"))


@cache
def _validator() -> Any:
    schema = r4_schema()
    mapping: dict[str, str] = schema["discriminator"]["mapping"]
    plain_one_of = Draft6Validator.VALIDATORS["oneOf"]
    resource_refs = set(mapping.values())

    def one_of(validator: Any, subschemas: list[dict[str, Any]], instance: Any, where: dict[str, Any]
               ) -> Iterator[ValidationError]:
        if not (isinstance(instance, dict) and subschemas and subschemas[0].get("$ref") in resource_refs):
            yield from plain_one_of(validator, subschemas, instance, where)
            return
        kind = instance.get("resourceType")
        if not isinstance(kind, str) or kind not in mapping:
            yield ValidationError(f"resourceType {kind!r} is not a FHIR R4 resource type")
            return
        yield from validator.descend(instance, {"$ref": mapping[kind]})

    return validators.extend(Draft6Validator, {"oneOf": one_of})(schema)


def expression(root: str, path: Any) -> str:
    """A FHIRPath-like location (``Bundle.entry[0].resource.status``) of a JSON path."""
    return root + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


def schema_problems(resource: Any, where: str) -> list[dict[str, Any]]:
    """What the R4 JSON Schema finds wrong with ``resource`` (at most :data:`MAX_PROBLEMS`)."""
    errors = itertools.islice(_validator().iter_errors(resource), MAX_PROBLEMS)
    return [problem("structure", error.message[:300], expression(where, error.absolute_path)) for error in errors]


def empty_problems(node: Any, where: str) -> list[dict[str, Any]]:
    """Empty arrays and objects, which R4's JSON forbids (§2.6.2: "no empty values") and its schema allows."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[Any, str]] = [(node, where)]
    while stack and len(found) < MAX_PROBLEMS:
        current, at = stack.pop()
        if isinstance(current, dict | list) and not current:
            found.append(problem("structure", "an empty array or object is not allowed in FHIR JSON", at))
        elif isinstance(current, dict):
            stack.extend((value, f"{at}.{key}") for key, value in current.items())
        elif isinstance(current, list):
            stack.extend((value, f"{at}[{index}]") for index, value in enumerate(current))
    return found


def model_problems(model: Any, resource: dict[str, Any], where: str) -> tuple[Any, list[dict[str, Any]]]:
    """The fhir.resources ``model`` instance of ``resource``, or what it finds wrong (types, cardinalities)."""
    try:
        return model.model_validate(resource), []
    except ModelError as exc:
        return None, [problem("structure", str(e["msg"])[:300], expression(where, e["loc"]))
                      for e in exc.errors()[:MAX_PROBLEMS]]
    except (ValueError, TypeError) as exc:
        return None, [problem("structure", str(exc)[:300], where)]


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` as valid R4 (the model's JSON), or :class:`Invalid` (400) listing what is wrong."""
    where = str(resource.get("resourceType"))
    problems = schema_problems(resource, where) or empty_problems(resource, where)
    if problems:
        raise Invalid(problems, status=400)
    instance, problems = model_problems(get_fhir_model_class(where), resource, where)
    if problems:
        raise Invalid(problems, status=400)
    return json.loads(instance.model_dump_json(exclude_none=True))
