"""What a simulated FHIR server notes about each call (extended by each service): the interaction, what it
wrote or found, and why a call was refused."""

from __future__ import annotations

from pydantic import BaseModel, Field

from esante.simulators.core.notes import Notes


class Page(BaseModel):
    """A search page answered: where it starts, its size, how many matched, and whether a next page is linked."""

    offset: int
    count: int
    total: int
    has_next: bool


class FhirNotes(Notes):
    interaction: str | None = Field(default=None, description="the FHIR interaction: read, vread, search-type, "
                                                              "create, update, transaction, capabilities...")
    resource_type: str | None = None
    created: bool | None = Field(default=None, description="the write filed something new (not a retry's twin)")
    page: Page | None = None
    error: str | None = Field(default=None, description="why the call was refused: the service's coded reason, "
                                                        "else the OperationOutcome's issue code")
    issues: list[str] | None = Field(default=None, description="the OperationOutcome's diagnostics")
