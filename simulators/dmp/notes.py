"""What the DMP simulator notes about each DMPi call, for the DMP test kit.

One call is one transaction (``td``, e.g. TD2.1), or a SOAP fault when the message could not be processed
(``fault``; a refused VIHF adds ``vihf_error``, the VIHF rule broken). A processed call carries the VIHF's
summary, the rights decision and the patient's authorisation; a business refusal, answered in the
transaction's own form, is ``error``. Feeds add the document checks' ``findings`` and what was stored;
searches, retrievals and updates what they found or changed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from esante.simulators.core.findings import Finding
from esante.simulators.core.notes import Notes


class VihfSummary(BaseModel):
    """The VIHF of an accepted call, as the checks need it."""

    model_config = ConfigDict(extra="ignore")

    national_id: str
    mode: str                         # DIRECTE | INDIRECTE | INDIRECTE_RENFORCEE
    purpose: str                      # normal | centre_15 | bris_de_glace
    profession: str
    structure: str
    ins: str | None = None            # 15 characters (NIR + key); None for a transaction about no one patient
    lps: str
    signed: bool
    signer: str | None = None         # the signing certificate's subject
    example_vector: str | None = None  # the official example it was accepted as, if any


class DmpErrorNote(BaseModel):
    """A business refusal: the DMP's code (``DMPClosed``, ``XDSRegistryNotAvailable``...), why and where."""

    model_config = ConfigDict(extra="ignore")

    code: str
    message: str
    location: str = ""


class DmpNotes(Notes):
    """One DMPi call (``Notes.operation`` is its TD)."""

    td: str | None = None
    action: str | None = None                 # the WS-Addressing Action
    message_id: str | None = None
    mtom: bool | None = None                  # sent as MTOM (multipart/related)
    fault: str | None = None                  # the SOAP fault answered, as faults.yaml names it
    fault_detail: str | None = None
    vihf_error: str | None = None             # the VIHF rule a refused VIHF broke (VIHF_UNSIGNED...)
    vihf: VihfSummary | None = None
    rights: str | None = None                 # the rights matrix's decision, in words
    authorisation: str | None = None          # VALIDE | NON_EXISTANTE | INTERDITE
    error: DmpErrorNote | None = None
    dmp_status: str | None = None             # TD0.2, TD1.4: open | closed | absent
    # TD2.1
    findings: list[Finding] | None = Field(default=None, description="the document checks, errors and warnings")
    stored: list[str] | None = None           # uniqueIds of the documents stored
    replaced: list[str] | None = None         # uniqueIds of the documents they replaced (RPLC)
    # TD3.1, TD0.5
    query: str | None = None                  # FindDocuments | GetDocuments
    results: list[str] | None = None          # uniqueIds found (signature documents aside)
    signature_results: list[str] | None = None
    patients_found: int | None = None         # TD0.5
    # TD3.2
    retrieved: list[str] | None = None
    sha1: dict[str, str] | None = None        # uniqueId → SHA-1 (hex) of the bytes sent
    # TD3.3
    updated: list[str] | None = None          # what changed, one line per document

    def to_json(self) -> dict[str, Any]:
        """The notes as journaled; the VIHF, the error and the findings whole (the base drops default values,
        which inside them are meaningful: a finding's ``severity``, a VIHF without ``ins``)."""
        data = super().to_json()
        for name, part in (("vihf", self.vihf), ("error", self.error)):
            if part is not None:
                data[name] = part.model_dump(mode="json")
        if self.findings is not None:
            data["findings"] = [finding.to_json() for finding in self.findings]
        return data

    @property
    def error_code(self) -> str | None:
        return self.error.code if self.error is not None else None
