"""What INSi actions send the candidate and what it reports back: identities as the national
identity-vigilance referential (RNIV) describes them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from esante.harness.suite import ActionReport


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityStatus(StrEnum):
    """Identity statuses of the Référentiel national d'identitovigilance (FR Core identity-status codes)."""

    PROVISIONAL = "PROV"   # provisoire: not from INSi, not checked on an identity document
    RETRIEVED = "RECUP"    # récupérée: INS obtained from INSi, identity document not checked
    VALIDATED = "VALI"     # validée: checked on a high-trust identity document, no INS
    QUALIFIED = "QUAL"     # qualifiée: INS from INSi and identity document checked


class Ins(Model):
    nir: str = Field(description="13-character matricule (NIR or NIA)", pattern=r"^\d{6}[0-9AB]\d{6}$")
    key: str = Field(pattern=r"^\d{2}$")
    # The description must stay the same as harness/driver.py's Ins (one schema in the published contract): INSi
    # returns 1.2.250.1.213.1.4.8 (INS-NIR) or 1.2.250.1.213.1.4.9 (INS-NIA), never the test OID it names.
    oid: str = Field(description="OID of the INS domain: 1.2.250.1.213.1.4.8 for an INS-NIR, …4.9 for an INS-NIA")


class Traits(Model):
    birth_name: str
    first_names: list[str] = Field(description="civil-status first names, in order")
    sex: str = Field(pattern="^[MF]$")
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="may hold 00 for unknown day/month")
    birth_place: str | None = Field(default=None, description="INSEE COG code, 99xxx abroad")


class PatientIdentity(Model):
    """What the candidate stored for a patient after an action."""

    local_id: str
    status: IdentityStatus
    ins: Ins | None = None
    traits: Traits


class InsiReport(ActionReport):
    """An INSi action's report: the identity the software holds afterwards, if any."""

    identity: PatientIdentity | None = None


# -- parameters -------------------------------------------------------------------------------------------------
class LookupTraits(Model):
    traits: Traits = Field(description="the traits the user typed (the patient's local traits when the data "
                                       "set has them, as a registration desk typed them)")
    id_document_checked: bool = False


class VitaleCard(Model):
    """What the software reads from a carte Vitale: the holder's NIR and the beneficiary's birth date and rank."""

    nir: str
    key: str | None = None
    birth_name: str | None = None
    birth_date: str
    rank: int = Field(ge=1, le=99)


class LookupVitale(Model):
    card: VitaleCard
    id_document_checked: bool = False


class Verify(Model):
    identity: PatientIdentity = Field(description="the identity the software holds, with the INS to verify")


# -- operator mode ----------------------------------------------------------------------------------------------
IDENTITY_OUTCOMES = ("found", "verified", "updated", "several", "not_found", "mismatch")


def ask_identity(ask: Any, params: dict[str, Any], outcome: str) -> dict[str, Any]:
    """What a person reads on the patient's identity panel after an INSi action: the status, the INS (matricule,
    key and OID asked together), then the traits, pre-filled with those the step gave."""
    if outcome not in IDENTITY_OUTCOMES:
        return {}
    known = params.get("traits") or params.get("identity", {}).get("traits") or {}
    status = ask("Identity status shown (PROV/RECUP/VALI/QUAL)", "PROV", "identity.status")
    identity: dict[str, Any] = {"status": status}
    nir = ask("INS matricule shown (13 characters, empty if none)", "", "identity.ins.nir")
    if nir:
        identity["ins"] = {"nir": nir, "key": ask("INS key (2 digits)", "", "identity.ins.key"),
                           "oid": ask("INS OID", "1.2.250.1.213.1.4.8", "identity.ins.oid")}
    identity["local_id"] = ask("Local patient id", "operator", "identity.local_id")
    identity["traits"] = _ask_traits(ask, known)
    return {"identity": identity}


def _ask_traits(ask: Any, known: dict[str, Any]) -> dict[str, Any]:
    return {"birth_name": ask("Birth name shown", known.get("birth_name", ""), "identity.traits.birth_name"),
            "first_names": ask("First names shown", " ".join(known.get("first_names", [])),
                               "identity.traits.first_names").split(),
            "sex": ask("Sex shown (M/F)", known.get("sex", ""), "identity.traits.sex"),
            "birth_date": ask("Birth date shown (YYYY-MM-DD)", known.get("birth_date", ""),
                              "identity.traits.birth_date"),
            "birth_place": ask("Birth place code shown", known.get("birth_place") or "",
                               "identity.traits.birth_place") or None}
