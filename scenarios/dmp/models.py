"""What DMP actions send the candidate and what it reports back: the patient's record (DMP) as the software
shows it, and the documents it fed, found or opened."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from esante.harness.suite import ActionReport, PatientPayload, ProfessionalPayload


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the report -------------------------------------------------------------------------------------------------
class RecordSummary(Model):
    """What the software learnt of a patient's DMP from the existence test."""

    status: Literal["open", "closed", "absent"]
    authorisation: str | None = Field(default=None, description="VALIDE, NON_EXISTANTE, INTERDITE...")
    treating_doctor: bool | None = Field(default=None, description="the professional is the treating doctor")


class DocumentSummary(Model):
    """A document of the patient's DMP as the software lists, feeds or opens it."""

    unique_id: str = Field(description="the document's uniqueId (XDS), the reference the software keeps")
    title: str | None = None
    status: str | None = Field(default=None, description="approved, archived, deprecated or deleted")
    confidentiality: list[str] = Field(default_factory=list, description="e.g. N, MASQUE_PS, INVISIBLE_PATIENT")
    sha1: str | None = Field(default=None, description="SHA-1 (hex) of the bytes retrieved, for an opened document")


class DmpReport(ActionReport):
    """A DMP action's report: the DMP's status after an existence test, the documents concerned."""

    record: RecordSummary | None = Field(default=None, description="the existence test's result")
    documents: list[DocumentSummary] | None = Field(default=None, description="documents fed, found or opened")


# -- parameters -------------------------------------------------------------------------------------------------
Mode = Literal["normal", "centre_15", "bris_de_glace"]
Auth = Literal["INDIRECTE_RENFORCEE", "INDIRECTE", "DIRECTE"]


class DmpAction(Model):
    """Who acts for whom, and how: every DMP action's parameters."""

    patient: PatientPayload
    professional: ProfessionalPayload = Field(description="with the structure they practise in for this step")
    mode: Mode = Field(default="normal", description="the access mode the professional chose")
    auth: Auth = Field(default="INDIRECTE_RENFORCEE", description="how the software authenticates to the DMP")


class Feed(DmpAction):
    kind: Literal["N1", "N3"] = Field(default="N3", description="N1: a PDF in a CDA; N3: a structured CDA")
    title: str = Field(min_length=1, max_length=256)
    confidentiality: list[Literal["MASQUE_PS", "INVISIBLE_PATIENT"]] = Field(default_factory=list)
    replaces: Literal["last"] | None = Field(default=None, description="a new version of the last document")


class Search(DmpAction):
    statuses: list[Literal["approved", "archived", "deprecated"]] = Field(default=["approved"], min_length=1)


class OpenDocument(DmpAction):
    document: Literal["last"] = Field(default="last", description="the last document fed, else the last found")


class Update(OpenDocument):
    operation: Literal["mask", "unmask", "hide_from_patient", "show_to_patient", "archive", "unarchive", "delete"]


class SearchPatient(DmpAction):
    family_name: str = Field(min_length=1)
    given_name: str | None = None
    birth_date: str | None = None


# -- operator mode ----------------------------------------------------------------------------------------------
def ask_record(ask: Any, params: dict[str, Any], outcome: str) -> dict[str, Any]:
    """What a person reads on the software's DMP panel after an existence test or an authorisation."""
    if outcome not in ("found", "not_found", "completed"):
        return {}
    status = ask("DMP status shown (open/closed/absent)", "absent" if outcome == "not_found" else "open",
                 "record.status")
    authorisation = ask("Authorisation shown (VALIDE/NON_EXISTANTE/INTERDITE, empty if none)", "",
                        "record.authorisation")
    return {"record": {"status": status, "authorisation": authorisation or None}}


def ask_documents(ask: Any, params: dict[str, Any], outcome: str) -> dict[str, Any]:
    """The documents a person sees listed, fed or opened (their uniqueIds, and the SHA-1 of an opened one)."""
    if outcome not in ("found", "completed"):
        return {}
    ids = ask("uniqueId of each document shown (comma-separated)", "", "documents")
    sha1 = ask("SHA-1 of the document opened (empty if none)", "", "documents") if "document" in params else ""
    return {"documents": [{"unique_id": unique_id.strip(), "sha1": sha1 or None}
                          for unique_id in ids.split(",") if unique_id.strip()]}
