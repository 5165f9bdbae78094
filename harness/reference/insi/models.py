"""The identities the reference software stores, and the INSi actions' parameters and report, as the driver
contract describes them (declared here independently of the test kit, as any candidate would from the
published OpenAPI document)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params


class IdentityStatus(StrEnum):
    PROVISIONAL = "PROV"
    RETRIEVED = "RECUP"
    VALIDATED = "VALI"
    QUALIFIED = "QUAL"


class Ins(Params):
    nir: str = Field(pattern=r"^\d{6}[0-9AB]\d{6}$")
    key: str = Field(pattern=r"^\d{2}$")
    oid: str


class Traits(Params):
    birth_name: str
    first_names: list[str]
    sex: str = Field(pattern="^[MF]$")
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    birth_place: str | None = None


class PatientIdentity(Params):
    local_id: str
    status: IdentityStatus
    ins: Ins | None = None
    traits: Traits


class InsiReport(ActionReport):
    identity: PatientIdentity | None = None


class VitaleCard(Params):
    """What the software reads from a carte Vitale: the holder's NIR and the beneficiary's birth date and rank."""

    nir: str = Field(pattern=r"^\d{5}(?:\d{2}|2[AB])\d{6}$")
    key: str | None = Field(default=None, pattern=r"^\d{2}$")
    birth_name: str | None = None
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    rank: int = Field(ge=1, le=99)


class LookupTraitsParams(Params):
    traits: Traits
    id_document_checked: bool = False


class LookupVitaleParams(Params):
    card: VitaleCard
    id_document_checked: bool = False


class VerifyParams(Params):
    identity: PatientIdentity
