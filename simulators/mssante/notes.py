"""What the MSSanté simulator notes about each exchange, for the MSSanté test kit.

Directory calls are HTTP exchanges; an SMTP or IMAP connection is one session (see
:class:`~esante.simulators.core.journal.Session`): its notes say whether STARTTLS was done, every
authentication attempt (never the token), the IMAP commands, and each message submitted with what is wrong
with it (:class:`MessageNotes`, findings in the one :class:`~esante.simulators.core.findings.Finding` form).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from esante.simulators.core.findings import Finding
from esante.simulators.core.notes import Notes


def _finding(value: Any) -> Finding:
    return value if isinstance(value, Finding) else Finding.from_json(value)


#: A finding as notes keep it: its JSON form in the evidence, the one Finding in Python.
FindingNote = Annotated[Finding, PlainValidator(_finding), PlainSerializer(Finding.to_json)]


class Note(BaseModel):
    """Part of an exchange's notes; ``from`` (a keyword in Python) is ``sender``."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class AuthAttempt(Note):
    """One SASL authentication (or refused LOGIN): the mailbox asked for and why it was or was not opened."""

    mechanism: str
    outcome: Literal["accepted", "refused"]
    reason: str = ""
    mailbox: str | None = None
    certificate_cn: str | None = Field(default=None, description="EXTERNAL: the TLS client certificate's CN")
    token_active: bool | None = Field(default=None, description="a token: what PSC's introspection said")
    national_id: str | None = Field(default=None, description="a token: whose it is")


class Refusal(Note):
    """A sender, recipient or message the SMTP server refused, with its reply code."""

    sender: str | None = Field(default=None, alias="from")
    to: str | None = None
    reply: str
    reason: str = Field(default="", description="a refused message: why")


class MessageNotes(Note):
    """One message submitted over SMTP: what it is, and its findings."""

    kind: Literal["mail", "mdn"]
    message_id: str
    sender: str = Field(alias="from", description="the From header")
    to: list[str] = Field(description="the envelope recipients")
    subject: str
    size: int
    receipt_asked: bool
    findings: list[FindingNote] = Field(default_factory=list)
    # a mail
    structured: bool | None = Field(default=None, description="it carries an IHE_XDM.ZIP")
    archive_refused: str | None = Field(default=None, description="why the archive was not opened")
    documents: list[str] = Field(default_factory=list, description="the archive's DocumentEntry ids")
    cda_codes: list[str] = Field(default_factory=list)
    patients: list[str] = Field(default_factory=list, description="the INS (NIR + key) the CDA documents name")
    patient_known: bool | None = None
    dmp_findings: list[FindingNote] = Field(default_factory=list, description="the DMP's document checks: "
                                                                              "evidence, not yet verdicts")
    # a read receipt
    original_message_id: str | None = None
    disposition: str | None = None
    answers_known_message: bool | None = None
    # its delivery
    queue_id: str | None = None
    envelope_from: str | None = None


class MssNotes(Notes):
    """One directory call (HTTP) or one SMTP or IMAP session."""

    # the directory
    resource_type: str | None = None
    search: list[str] = Field(default_factory=list, description="the search parameters, name=value")
    total: int | None = None
    mailboxes: list[str] = Field(default_factory=list, description="the MSSanté addresses the answer holds")
    error: str | None = None
    # a mail session
    tls: bool | None = Field(default=None, description="a session: upgraded with STARTTLS")
    auth: list[AuthAttempt] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list, description="IMAP: the commands, in order")
    messages: list[MessageNotes] = Field(default_factory=list)
    refused: list[Refusal] = Field(default_factory=list)
    dropped_after_data: bool = False
    dropped_after_auth: bool = False
    token_expired_mid_session: bool = False
