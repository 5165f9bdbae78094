"""The FHIR REST kit on its own: every error is a valid OperationOutcome (held to fhir.resources' model and to
HL7's R4 JSON Schema, read here with jsonschema's own Draft 6 validator, not the kit's), bodies are validated
against the official schema before anything reads them, the search semantics of R4 as a table
(``vectors/fhir/search_cases.yaml``), dates at their precision, hostile JSON refused before parsing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from fhir.resources.R4B.operationoutcome import OperationOutcome
from jsonschema import Draft6Validator

from esante.simulators.kits.fhir.bodies import MAX_JSON_DEPTH, parse_json
from esante.simulators.kits.fhir.errors import FhirError, Invalid, problem
from esante.simulators.kits.fhir.media import FHIR_JSON
from esante.simulators.kits.fhir.notes import FhirNotes
from esante.simulators.kits.fhir.search import COMMON, SearchParam, parse_search, searchset
from esante.simulators.kits.fhir.validation import r4_schema, validated
from esante.simulators.kits.fhir.values import date_range, date_test

SHARED_SCHEMA = Path(__file__).parents[1] / "../shared/research/schemas/fhir-r4/fhir.schema.json"
CASES = yaml.safe_load((Path(__file__).parent / "vectors/fhir/search_cases.yaml").read_text(encoding="utf-8"))
PARAMS = {**{name: SearchParam(name, spec["type"], tuple(spec["paths"])) for name, spec in CASES["params"].items()},
          **{param.name: param for param in COMMON}}
RESOURCES = CASES["resources"]


def r4_valid(resource: dict[str, Any]) -> None:
    """``resource`` holds to HL7's R4 JSON Schema (the plain validator: every oneOf alternative tried)."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in
              Draft6Validator(r4_schema()).iter_errors(resource)]
    assert not errors, errors[:5]


def test_the_shipped_schema_is_hl7s() -> None:
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"the shared research material is not beside the project ({SHARED_SCHEMA})")
    shipped = json.dumps(r4_schema(), sort_keys=True).encode()
    assert hashlib.sha256(shipped).digest() == hashlib.sha256(
        json.dumps(json.loads(SHARED_SCHEMA.read_bytes()), sort_keys=True).encode()).digest()


@pytest.mark.parametrize("error", [
    FhirError(404, "not-found", "Practitioner/x is not known"),
    FhirError(401, "security", "the pairing is revoked", details="PAIRING_REVOKED",
              details_system="https://example.org/errors", expression=["Authorization"]),
    Invalid([problem("required", "no subject", "Observation.subject"), problem("value", "too high", "x.value")]),
])
def test_every_error_is_a_valid_operation_outcome(error: FhirError) -> None:
    answer = error.response()
    assert answer.status_code == error.status and answer.media_type == FHIR_JSON
    body = json.loads(answer.body)
    OperationOutcome.model_validate(body)
    r4_valid(body)


def test_a_refusal_notes_its_coded_reason_and_every_issue() -> None:
    notes = FhirNotes()
    FhirError(403, "forbidden", "no scope", details="SCOPE").note(notes)
    assert (notes.error, notes.issues) == ("SCOPE", ["no scope"])
    Invalid([problem("required", "a", "x"), problem("value", "b", "y")]).note(notes)
    assert (notes.error, notes.issues) == ("invalid", ["a", "b"])


# -- validation: the R4 JSON Schema first, then fhir.resources ---------------------------------------------------
APPOINTMENT = {"resourceType": "Appointment", "status": "booked", "start": "2026-02-01T10:00:00+01:00",
               "end": "2026-02-01T10:30:00+01:00", "participant": [{"status": "accepted",
                                                                    "actor": {"reference": "Patient/p"}}]}


@pytest.mark.parametrize(("change", "where"), [
    ({"start": 12345}, "Appointment.start"),                             # a number for an instant
    ({"status": "x"}, "Appointment.status"),                             # a required binding
    ({"participant": [{"status": "x"}]}, "Appointment.participant[0].status"),
    ({"description": None}, "Appointment.description"),                  # JSON null
    ({"minutesDuration": "30"}, "Appointment.minutesDuration"),          # a string for a number
    ({"id": "a_b"}, "Appointment.id"),                                   # the R4 id pattern
    ({"colour": "blue"}, "Appointment"),                                 # an unknown element
    ({"participant": []}, "Appointment.participant"),                    # an empty array
])
def test_what_is_not_r4_is_refused_with_its_place(change: dict[str, Any], where: str) -> None:
    with pytest.raises(Invalid) as refused:
        validated({**APPOINTMENT, **change})
    assert refused.value.status == 400
    assert any(where in i["expression"][0] for i in refused.value.issues()), refused.value.issues()


def test_bundle_entries_are_validated_as_their_own_type() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": None, "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                       "valueQuantity": {"value": "72", "unit": None}}}]}
    with pytest.raises(Invalid) as refused:
        validated(bundle)
    places = {i["expression"][0] for i in refused.value.issues()}
    assert {"Bundle.entry[0].fullUrl", "Bundle.entry[0].resource.valueQuantity.value",
            "Bundle.entry[0].resource.valueQuantity.unit"} <= places
    with pytest.raises(Invalid, match="not a FHIR R4 resource type"):
        validated({**bundle, "entry": [{"resource": {"resourceType": "Nonsense"}}]})


def test_what_is_kept_is_the_models_json() -> None:
    kept = validated({**APPOINTMENT, "minutesDuration": 30})
    assert kept["minutesDuration"] == 30 and kept["participant"][0]["actor"] == {"reference": "Patient/p"}
    r4_valid(kept)


# -- search: the table ---------------------------------------------------------------------------------------------
def _ids(case: dict[str, Any]) -> list[str]:
    items = parse_qsl(case["query"], keep_blank_values=True)
    search = parse_search(items, PARAMS, lenient=case.get("lenient", False))
    return [r["id"] for r in search.run(RESOURCES)]


@pytest.mark.parametrize("case", CASES["cases"], ids=[f"{c['query'] or '(none)'}{'+lenient' * c.get('lenient', 0)}"
                                                      for c in CASES["cases"]])
def test_search_semantics(case: dict[str, Any]) -> None:
    if "status" in case:
        with pytest.raises(FhirError) as refused:
            _ids(case)
        assert refused.value.status == case["status"]
        OperationOutcome.model_validate(refused.value.outcome())
        return
    found = _ids(case)
    assert (found if case.get("ordered") else sorted(found)) == case["ids"]


def test_a_search_page_links_exactly_what_was_applied() -> None:
    items = [("code", "8867-4"), ("colour", "blue"), ("_count", "1"), ("_sort", "-date")]
    search = parse_search(items, PARAMS, lenient=True)
    bundle = searchset("https://fhir.test/Observation", search, search.run(RESOURCES))
    r4_valid(bundle)
    links = {link["relation"]: dict(parse_qsl(urlsplit(link["url"]).query)) for link in bundle["link"]}
    assert links["self"] == {"code": "8867-4", "_sort": "-date", "_count": "1", "_offset": "0"}
    assert links["next"]["_offset"] == "1" and "previous" not in links and bundle["total"] == 3
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["a"]
    assert bundle["entry"][0]["fullUrl"] == "https://fhir.test/Observation/a"


def test_count_zero_is_the_count_only_and_large_counts_are_capped() -> None:
    counted = parse_search([("_count", "0")], PARAMS)
    bundle = searchset("https://fhir.test/Observation", counted, counted.run(RESOURCES))
    assert bundle["total"] == 5 and "entry" not in bundle
    capped = parse_search([("_count", "1000")], PARAMS, max_page=2)
    page = searchset("https://fhir.test/Observation", capped, capped.run(RESOURCES))
    assert len(page["entry"]) == 2 and "_count=2" in page["link"][0]["url"]
    assert any(link["relation"] == "next" for link in page["link"])
    hidden = parse_search([("_total", "none")], PARAMS)
    assert "total" not in searchset("https://fhir.test/Observation", hidden, hidden.run(RESOURCES))


@pytest.mark.parametrize(("value", "low", "high"), [
    ("2024", "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ("2024-02", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
    ("2024-12-31", "2024-12-31T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    ("2024-01-15T10:00+01:00", "2024-01-15T09:00:00+00:00", "2024-01-15T09:01:00+00:00"),
    ("2024-01-15T10:00:00.5Z", "2024-01-15T10:00:00.500000+00:00", "2024-01-15T10:00:00.600000+00:00"),
])
def test_a_date_is_the_range_of_its_precision(value: str, low: str, high: str) -> None:
    found = date_range(value)
    assert (found.low.isoformat(), found.high.isoformat()) == (low, high)


def test_approximately_is_within_a_tenth_of_the_distance_to_now() -> None:
    now = datetime(2024, 1, 11, tzinfo=UTC)  # 10 days after the value: a margin of one day
    near = date_test("ap2024-01-01", now)
    assert near(date_range("2023-12-31T12:00:00Z")) and near(date_range("2024-01-02T12:00:00Z"))
    assert not near(date_range("2024-01-03T12:00:00Z"))


@pytest.mark.parametrize(("raw", "code"), [
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "too-costly"),
    (b"\xff", "structure"),
    (b"{", "structure"),
])
def test_hostile_json_is_refused_before_it_is_parsed(raw: bytes, code: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse_json(raw)
    assert (refused.value.status, refused.value.code) == (400, code)
