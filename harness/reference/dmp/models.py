"""The DMP actions' parameters and report, as the driver contract describes them (declared here independently
of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from esante.harness.driver import ActionOutcome, ActionReport
from esante.harness.reference.parts import Params, PatientParams, ProfessionalParams, StructureParams


# -- parameters -------------------------------------------------------------------------------------------------
class DmpStructure(StructureParams):
    sector: str = "SA01"  # the sector of activity the VIHF and the documents name (health establishment)


class DmpProfessional(ProfessionalParams):
    """The DMP needs more of the professional than the one shape requires: the profession (VIHF) and the
    structure they practise at."""

    national_id: str = Field(pattern=r"^8\d{11}$|^\d{6,}$")
    profession_code: str
    structure: DmpStructure


class CommonParams(Params):
    patient: PatientParams
    professional: DmpProfessional
    mode: str = Field(default="normal", pattern="^(normal|centre_15|bris_de_glace)$")
    auth: str = Field(default="INDIRECTE", pattern="^(INDIRECTE|DIRECTE|INDIRECTE_RENFORCEE)$")


class FeedParams(CommonParams):
    kind: str = Field(default="N3", pattern="^N[13]$")
    title: str = Field(min_length=1, max_length=256)
    confidentiality: list[str] = Field(default_factory=list)
    replaces: str | None = None


class SearchParams(CommonParams):
    statuses: list[str] = Field(default_factory=lambda: ["approved"], min_length=1)


class DocumentParams(CommonParams):
    document: str = "last"


class UpdateParams(DocumentParams):
    operation: str = Field(pattern="^(mask|unmask|hide_from_patient|show_to_patient|archive|unarchive|delete)$")


class SearchPatientParams(CommonParams):
    family_name: str = Field(min_length=1)
    given_name: str | None = None
    birth_date: str | None = None


# -- the report -------------------------------------------------------------------------------------------------
class RecordSummary(Params):
    """What the software learnt of a patient's DMP from the existence test."""

    status: str
    authorisation: str | None = None
    treating_doctor: bool | None = None


class DocumentSummary(Params):
    """A document of the patient's DMP as the software keeps a reference to it."""

    unique_id: str
    title: str | None = None
    status: str | None = None
    confidentiality: list[str] = Field(default_factory=list)
    sha1: str | None = None


class DmpReport(ActionReport):
    record: RecordSummary | None = None
    documents: list[DocumentSummary] | None = None


def report(outcome: ActionOutcome, message: str = "", **fields: Any) -> DmpReport:
    return DmpReport(outcome=outcome, message=message, **fields)
