"""The MSSanté actions' parameters and report, as the driver contract describes them (declared here
independently of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params


class Ins(Params):
    nir: str
    key: str
    oid: str


class Patient(Params):
    id: str
    identity_status: Literal["QUAL", "VALI", "RECUP", "PROV"] = "QUAL"
    ins: Ins | None = None
    birth_name: str
    used_name: str | None = None
    first_names: list[str] = Field(min_length=1)
    sex: Literal["M", "F"]
    birth_date: str
    birth_place: str | None = None


class Structure(Params):
    id: str
    finess: str
    name: str
    sector: str | None = None


class Professional(Params):
    id: str
    national_id: str = Field(min_length=1)
    rpps: str | None = None
    family_name: str
    given_name: str
    profession_code: str | None = None
    profession_label: str | None = None
    specialty_code: str | None = None
    structure: Structure | None = None


class ProfessionalRecipient(Params):
    """An address-book entry: the mailbox is looked up in the directory."""

    kind: Literal["professional"] = "professional"
    rpps: str
    family_name: str
    given_name: str


class AddressRecipient(Params):
    kind: Literal["address", "patient"]
    address: str


Recipient = Annotated[ProfessionalRecipient | AddressRecipient, Field(discriminator="kind")]


class DocumentParams(Params):
    patient: Patient
    title: str
    code: str


class SenderParams(Params):
    kind: Literal["application", "organisation"]
    address: str
    certificate_cn: str | None = None


class LoginParams(Params):
    professional: Professional | None = None


class LookupParams(Params):
    recipient: ProfessionalRecipient


class SendParams(Params):
    recipient: Recipient
    receipt: bool = False
    document: DocumentParams | None = None
    sender: SenderParams | None = None


class SignedIn(Params):
    """Who the software considers signed in."""

    user_id: str
    family_name: str | None = None
    given_name: str | None = None


class MssReport(ActionReport):
    """What the messaging software did; a sign-in says who is signed in."""

    professional: SignedIn | None = None
