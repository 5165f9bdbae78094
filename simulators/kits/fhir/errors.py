"""FHIR R4 errors: every refusal is an ``OperationOutcome`` (FHIR R4 §3.1.0.4 "RESTful API: errors").

The outcome is built as plain JSON rather than through fhir.resources' model: an error answer must never fail
itself (an empty or unencodable diagnostic would fail the model's validation); the kit's tests hold every
outcome to the model."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from esante.simulators.kits.fhir.media import fhir_response
from esante.simulators.kits.fhir.notes import FhirNotes

MAX_NOTED_ISSUES = 20


class FhirError(Exception):
    """An error answered as an ``OperationOutcome``: HTTP status, the issue's code (IssueType), what and
    where (``expression``), and a coded reason of the service's own (``details``, in ``details_system``)."""

    def __init__(self, status: int, code: str, diagnostics: str, *, expression: list[str] | None = None,
                 details: str | None = None, details_system: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics
        self.expression, self.details, self.headers = expression or [], details, headers or {}
        self.details_system = details_system

    def issues(self) -> list[dict[str, Any]]:
        issue: dict[str, Any] = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = self.expression
        if self.details:
            coding = {"system": self.details_system, "code": self.details} if self.details_system \
                else {"code": self.details}
            issue["details"] = {"coding": [coding]}
        return [issue]

    def outcome(self) -> dict[str, Any]:
        return outcome(self.issues())

    def response(self) -> JSONResponse:
        return fhir_response(self.outcome(), self.status, self.headers)

    def note(self, notes: FhirNotes) -> None:
        """What the journal keeps: the service's coded reason (else the issue code) and each issue's text."""
        notes.error = self.details or self.code
        notes.issues = [i["diagnostics"] for i in self.issues()][:MAX_NOTED_ISSUES]


class Invalid(FhirError):
    """A resource that breaks rules, with every issue found, not only the first: 422 for the service's rules
    (profiles, business rules), 400 for a resource that is not valid FHIR (R4 §3.1.0.4.3: "could not be parsed
    or failed basic FHIR validation rules")."""

    def __init__(self, issues: list[dict[str, Any]], status: int = 422) -> None:
        super().__init__(status, "invalid", "; ".join(i["diagnostics"] for i in issues))
        self._issues = issues

    def issues(self) -> list[dict[str, Any]]:
        return self._issues


def problem(code: str, diagnostics: str, expression: str) -> dict[str, Any]:
    """One issue of an :class:`Invalid` answer: its IssueType code, what is wrong, and where (FHIRPath)."""
    return {"severity": "error", "code": code, "diagnostics": diagnostics, "expression": [expression]}


def outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``OperationOutcome`` holding ``issues``, as JSON."""
    return {"resourceType": "OperationOutcome", "issue": issues}
