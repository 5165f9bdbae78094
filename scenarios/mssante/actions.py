"""The MSSanté driver actions: what a professional does in a mail-capable health software (an LPS).

* ``mss.login`` — the user signs in with Pro Santé Connect to open their MSSanté mailbox; a browser flow (the
  harness fills PSC's login page). Reports who is signed in (:class:`SignInReport`).
* ``mss.lookup_recipient`` — the user looks a professional up in the directory (Annuaire Santé) to write to
  them (``with: {to: PS002}``); the report's message shows the mailbox found.
* ``mss.send`` — the user sends a letter: to a professional of the address book (``with: {to: PS002}``: the
  software finds the address in the directory), to the step's patient (``with: {to_patient: true}``) or to a
  typed address (``with: {address}``); with a structured document about the step's ``patient`` (unless
  ``with: {document: false}``), a read receipt asked for when ``with: {receipt: true}``; from the application
  mailbox (``with: {from: application}``, certificate) or an organisational one (``with: {from: <address>}``).
* ``mss.integrate`` — the software reads the signed-in professional's INBOX, integrates the structured
  documents and answers the read receipts asked for (an error receipt 902 for an unknown patient).
"""

from __future__ import annotations

from esante.harness.suite import (
    ActionOutcome,
    ActionReport,
    Dataset,
    SignInReport,
    Step,
    action,
    ask_professional,
    patient_payload,
    professional_payload,
)
from esante.scenarios.mssante.models import (
    AddressRecipient,
    LookupRecipient,
    OpenMailbox,
    ProfessionalRecipient,
    ReadInbox,
    SenderMailbox,
    SendLetter,
    StructuredDocument,
)
from esante.simulators.mssante.protocol import patient_address

#: What a software may report for an action of this service (operator mode offers these, and only these).
OUTCOMES = (ActionOutcome.SIGNED_IN, ActionOutcome.SIGNED_OUT, ActionOutcome.FOUND, ActionOutcome.NOT_FOUND,
            ActionOutcome.COMPLETED, ActionOutcome.REFUSED, ActionOutcome.ERROR, ActionOutcome.UNAVAILABLE)


def recipient_entry(dataset: Dataset, professional_id: str) -> ProfessionalRecipient:
    """The professional as the software's address book holds them."""
    p = dataset.professional(professional_id)
    return ProfessionalRecipient(rpps=p.rpps, family_name=p.family_name, given_name=p.given_name)


@action("mss.login", title="Open the MSSanté mailbox (sign in with Pro Santé Connect)", params=OpenMailbox,
        report=SignInReport, operator_questions=ask_professional,
        instruction="Open the secure messaging and sign in with Pro Santé Connect as {professional[national_id]} "
                    "({professional[given_name]} {professional[family_name]}).",
        browser_form=lambda params: {"national_id": params["professional"]["national_id"], "channel": "MOBILE"},
        outcomes=OUTCOMES)
def login(step: Step, dataset: Dataset) -> OpenMailbox:
    return OpenMailbox(professional=professional_payload(dataset, step))


@action("mss.lookup_recipient", title="Find a recipient in the directory", params=LookupRecipient,
        report=ActionReport,
        instruction="Search the MSSanté directory for {recipient[given_name]} {recipient[family_name]} "
                    "(RPPS {recipient[rpps]}) and show their secure mailbox.", outcomes=OUTCOMES)
def lookup_recipient(step: Step, dataset: Dataset) -> LookupRecipient:
    if "to" not in step.with_:
        raise ValueError("mss.lookup_recipient needs with: {to: <professional id>}")
    return LookupRecipient(recipient=recipient_entry(dataset, step.with_["to"]))


@action("mss.send", title="Send a secure message", params=SendLetter, report=ActionReport,
        instruction="Write to {recipient} and send it (with the structured document about the patient when "
                    "one is given; ask for a read receipt when asked).", outcomes=OUTCOMES)
def send(step: Step, dataset: Dataset) -> SendLetter:
    w = step.with_
    document = None
    if step.patient and w.get("document", True):
        document = StructuredDocument(patient=patient_payload(dataset, step),
                                      title=w.get("title", "Lettre de liaison"), code=w.get("code", "34133-9"))
    return SendLetter(recipient=_recipient(step, dataset), receipt=bool(w.get("receipt", False)), document=document,
                      sender=_sender(step, dataset))


def _recipient(step: Step, dataset: Dataset) -> ProfessionalRecipient | AddressRecipient:
    w = step.with_
    if "to" in w:
        return recipient_entry(dataset, w["to"])
    if "address" in w:
        return AddressRecipient(kind="address", address=w["address"])
    if w.get("to_patient") and step.patient:
        ins = dataset.patient(step.patient).ins
        return AddressRecipient(kind="patient", address=patient_address(ins.nir, ins.key))
    raise ValueError("mss.send needs with: {to: <professional id>}, {address} or {to_patient: true} + patient")


def _sender(step: Step, dataset: Dataset) -> SenderMailbox | None:
    sender = step.with_.get("from")
    if sender == "application":
        box = next(b for b in dataset.mailboxes if b.type == "APP")
        return SenderMailbox(kind="application", address=box.address, certificate_cn=box.certificate_cn)
    return SenderMailbox(kind="organisation", address=sender) if sender else None


@action("mss.integrate", title="Read the INBOX and integrate the documents", params=ReadInbox, report=ActionReport,
        instruction="Open the INBOX, integrate the structured documents received and let the software answer "
                    "the read receipts asked for.", outcomes=OUTCOMES)
def integrate(step: Step, dataset: Dataset) -> ReadInbox:
    return ReadInbox()
