"""The MSSanté actions' parameters and report, as the driver contract describes them (declared here
independently of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params, PatientParams, ProfessionalParams


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
    patient: PatientParams
    title: str
    code: str


class SenderParams(Params):
    kind: Literal["application", "organisation"]
    address: str
    certificate_cn: str | None = None


class LoginParams(Params):
    professional: ProfessionalParams | None = None


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
