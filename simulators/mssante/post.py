"""The operator's mail, whatever protocol reaches it: the trust space of the data set, the one message store the
SMTP and IMAP servers share, the inspection of what is submitted, and what the operator remembers of the
messages it delivered (to judge the read receipts that answer them)."""

from __future__ import annotations

from esante.simulators.dataset import Dataset
from esante.simulators.mssante.incoming import build, inbox_data
from esante.simulators.mssante.inspection import Original, inspect_message
from esante.simulators.mssante.mailboxes import MessageStore, TrustSpace
from esante.simulators.mssante.notes import MessageNotes


class PostOffice:
    """One simulator's mail state. The data set may change (:meth:`load`); the store stays the same object."""

    def __init__(self, dataset: Dataset) -> None:
        self.store = MessageStore()
        self.originals: dict[str, Original] = {}
        self.load(dataset)
        self.reset()

    def load(self, dataset: Dataset) -> None:
        """Take another data set's mailboxes (the caller resets)."""
        self.dataset = dataset
        self.trust = TrustSpace(dataset)

    def reset(self) -> None:
        """Empty every mailbox, then deliver what correspondents sent the test professionals (``inbox.yaml``)."""
        self.store.reset()
        self.originals.clear()
        for entry in inbox_data():
            try:
                address, raw = build(entry, self.dataset)
            except KeyError:  # a data set without these professionals or patients: no seeded mail
                continue
            self.store.deliver(address, raw)
            self.originals[entry["message_id"]] = Original(bool(entry.get("receipt")), "patient" in entry)

    def inspect(self, raw: bytes, recipients: list[str]) -> MessageNotes:
        """What is wrong with a message submitted to these recipients (patients' addresses included)."""
        patients = [r for r in recipients if self.trust.is_patient(r)]
        return inspect_message(raw, recipients, dataset=self.dataset, patient_recipients=patients,
                               originals=self.originals)

    def deliver(self, raw: bytes, message: MessageNotes) -> None:
        """Put an inspected message in its recipients' INBOX (:class:`MailboxFull` when one is full), and
        remember it for the receipts that will answer it."""
        for recipient in message.to:
            self.store.deliver(recipient, raw)
        if message.message_id:
            self.originals[message.message_id] = Original(message.receipt_asked, message.patient_known)
