"""What a simulated FHIR server notes about a refused call (extended by each service)."""

from __future__ import annotations

from pydantic import Field

from esante.simulators.core.notes import Notes


class FhirNotes(Notes):
    error: str | None = Field(default=None, description="why the call was refused: the service's coded reason, "
                                                        "else the OperationOutcome's issue code")
    issues: list[str] | None = Field(default=None, description="the OperationOutcome's diagnostics")
