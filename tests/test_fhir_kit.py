"""The FHIR REST kit on its own: every error is a valid OperationOutcome (held to fhir.resources' model), a
refusal keeps its reason in the notes, search pages link to the next, hostile JSON is refused before parsing."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from esante.simulators.kits.fhir.bodies import MAX_JSON_DEPTH, parse_json, structure_problems
from esante.simulators.kits.fhir.errors import FhirError, Invalid, problem
from esante.simulators.kits.fhir.media import FHIR_JSON
from esante.simulators.kits.fhir.notes import FhirNotes
from esante.simulators.kits.fhir.search import searchset


@pytest.mark.parametrize("error", [
    FhirError(404, "not-found", "Practitioner/x is not known"),
    FhirError(401, "security", "the pairing is revoked", details="PAIRING_REVOKED",
              details_system="https://example.org/errors", expression=["Authorization"]),
    Invalid([problem("required", "no subject", "Observation.subject"), problem("value", "too high", "x.value")]),
])
def test_every_error_is_a_valid_operation_outcome(error: FhirError) -> None:
    answer = error.response()
    assert answer.status_code == error.status and answer.media_type == FHIR_JSON
    OperationOutcome.model_validate(json.loads(answer.body))


def test_a_refusal_notes_its_coded_reason_and_every_issue() -> None:
    notes = FhirNotes()
    FhirError(403, "forbidden", "no scope", details="SCOPE").note(notes)
    assert (notes.error, notes.issues) == ("SCOPE", ["no scope"])
    Invalid([problem("required", "a", "x"), problem("value", "b", "y")]).note(notes)
    assert (notes.error, notes.issues) == ("invalid", ["a", "b"])


def test_a_search_page_links_itself_and_the_next_page_with_the_query() -> None:
    matches = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(5)]
    bundle = searchset("https://fhir.test/Patient", matches, 2, 2, [("name", "a b")])
    Bundle.model_validate(bundle)
    assert bundle["total"] == 5 and [e["resource"]["id"] for e in bundle["entry"]] == ["p2", "p3"]
    assert [link["url"] for link in bundle["link"]] == ["https://fhir.test/Patient?name=a+b&_count=2&_offset=2",
                                                        "https://fhir.test/Patient?name=a+b&_count=2&_offset=4"]
    last = searchset("https://fhir.test/Patient", matches, 4, 2, [])
    assert [link["relation"] for link in last["link"]] == ["self"]


@pytest.mark.parametrize(("raw", "code"), [
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "too-costly"),
    (b"\xff", "structure"),
    (b"{", "structure"),
])
def test_hostile_json_is_refused_before_it_is_parsed(raw: bytes, code: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse_json(raw)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_structure_problems_are_located() -> None:
    problems = structure_problems(Patient, {"resourceType": "Patient", "gender": 3}, "Patient")
    assert problems and all(p["expression"][0].startswith("Patient.") for p in problems)
