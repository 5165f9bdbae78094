"""What the INSi simulator notes about each call, for the INSi test kit."""

from __future__ import annotations

from pydantic import Field

from esante.simulators.core.notes import Notes


class InsiNotes(Notes):
    """One INSi call: the operation asked (``Notes.operation``), who asked, and what was answered."""

    message_id: str | None = None
    idam: str | None = None
    authentication: str | None = None     # "certificate" (mTLS endpoint) or "cps" (assertion in wsse:Security)
    code_cr: str | None = None            # "00" found, "01" none, "02" several
    matched: list[str] = Field(default_factory=list)  # the data set's ids of the identities that matched
    fault: str | None = None              # the fault answered, as faults.yaml names it
    fault_detail: str | None = None
