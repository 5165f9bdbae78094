"""What the Mon espace santé simulator notes about each call, for the MES test kit: the operation, the partner
app and the token presented (:class:`~esante.simulators.kits.oauth.notes.OAuthNotes`), the OperationOutcome of
a refusal (:class:`~esante.simulators.kits.fhir.notes.FhirNotes`), and what MES did about the call."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from esante.simulators.kits.fhir.notes import FhirNotes
from esante.simulators.kits.oauth.notes import OAuthNotes


class DmpFiling(BaseModel):
    """The document filed in the citizen's DMP too: what the DMP answered, or why it was not filed."""

    status: int | None = None
    answer: Any = None
    error: str | None = None
    skipped: str | None = None


class MesNotes(OAuthNotes, FhirNotes):
    """One call to Mon espace santé."""

    consent: str | None = Field(default=None, description="the citizen's answer on the consent page")
    tampered: bool | None = Field(default=None, description="the authorization response's state was tampered with")
    pairing_id: str | None = None
    patient: str | None = Field(default=None, description="the data set's id of the citizen who paired")
    measure: str | None = Field(default=None, description="the kind of measure filed (measures.yaml)")
    idempotency_key: str | None = Field(default=None, description="the system|value the write was keyed by")
    dmp: DmpFiling | None = None
    response_lost: bool | None = Field(default=None, description="the lose_response behaviour ate the answer")
    dossier: str | None = Field(default=None, description="the referencing dossier's id")
    status: str | None = Field(default=None, description="the referencing dossier's status")
    findings: int | None = Field(default=None, description="how many findings the dossier's check made")
