"""What MSSanté actions send the candidate and what it reports back: people in the one shape of every kit
(:class:`PatientPayload`, :class:`ProfessionalPayload`), recipients as an address book holds them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from esante.harness.suite import PatientPayload, ProfessionalPayload


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfessionalRecipient(Model):
    """A professional of the address book: the software finds their mailbox in the directory."""

    kind: Literal["professional"] = "professional"
    rpps: str
    family_name: str
    given_name: str


class AddressRecipient(Model):
    """A mailbox given as such: typed by the user (``address``) or a patient's (``patient``,
    ``<INS>@patient.mssante.fr``)."""

    kind: Literal["address", "patient"]
    address: str


Recipient = Annotated[ProfessionalRecipient | AddressRecipient, Field(discriminator="kind")]


class StructuredDocument(Model):
    """The structured document a letter carries (CDA R2 in IHE_XDM.ZIP), about a patient."""

    patient: PatientPayload
    title: str
    code: str = Field(description="the document's LOINC code, e.g. 11488-4")


class SenderMailbox(Model):
    """A mailbox other than the signed-in professional's: the software's own (``application``, opened with its
    certificate) or an organisational one the professional belongs to (``organisation``, with their token)."""

    kind: Literal["application", "organisation"]
    address: str
    certificate_cn: str | None = Field(default=None, description="application: the certificate's common name")


# -- parameters -------------------------------------------------------------------------------------------------
class OpenMailbox(Model):
    professional: ProfessionalPayload


class LookupRecipient(Model):
    recipient: ProfessionalRecipient


class SendLetter(Model):
    recipient: Recipient
    receipt: bool = Field(default=False, description="ask for a read receipt")
    document: StructuredDocument | None = None
    sender: SenderMailbox | None = Field(default=None, description="absent: the signed-in professional's mailbox")


class ReadInbox(Model):
    """No parameters: the signed-in professional's INBOX."""
