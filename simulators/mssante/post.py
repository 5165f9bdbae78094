"""The operator's mail, whatever protocol reaches it: the trust space of the data set, the one message store the
SMTP and IMAP servers share (the mail kit's), the inspection of what is submitted (in a worker process, off the
servers' event loop), and what the operator remembers of the messages it delivered (to judge the read receipts
that answer them)."""

from __future__ import annotations

import asyncio

from esante.simulators.dataset import Dataset
from esante.simulators.kits.mail.bounds import check_structure
from esante.simulators.kits.mail.store import MailStore
from esante.simulators.kits.mail.worker import WorkerPool
from esante.simulators.mssante.incoming import build, inbox_data
from esante.simulators.mssante.inspection import Original, inspect_in_worker, inspect_message
from esante.simulators.mssante.mailboxes import TrustSpace
from esante.simulators.mssante.notes import MessageNotes


class PostOffice:
    """One simulator's mail state. The data set may change (:meth:`load`); the store stays the same object."""

    def __init__(self, dataset: Dataset) -> None:
        self.store = MailStore()
        self.originals: dict[str, Original] = {}
        self.load(dataset)
        self.reset()

    def load(self, dataset: Dataset) -> None:
        """Take another data set's mailboxes (the caller resets)."""
        self.dataset = dataset
        self.trust = TrustSpace(dataset)

    def reset(self) -> None:
        """Empty every mailbox, then deliver what correspondents sent the test professionals (``inbox.yaml``)."""
        seed: dict[str, list[bytes]] = {}
        self.originals.clear()
        for entry in inbox_data():
            try:
                address, raw = build(entry, self.dataset)
            except KeyError:  # a data set without these professionals or patients: no seeded mail
                continue
            seed.setdefault(address, []).append(raw)
            self.originals[entry["message_id"]] = Original(bool(entry.get("receipt")), "patient" in entry)
        self.store.reset(seed)

    def _patients(self, recipients: list[str]) -> list[str]:
        return [r for r in recipients if self.trust.is_patient(r)]

    def inspect(self, raw: bytes, recipients: list[str]) -> MessageNotes:
        """What is wrong with a message submitted to these recipients (patients' addresses included)."""
        return inspect_message(raw, recipients, dataset=self.dataset, patient_recipients=self._patients(recipients),
                               originals=self.originals)

    async def inspect_off_loop(self, raw: bytes, recipients: list[str], pool: WorkerPool) -> MessageNotes:
        """:meth:`inspect` in one of ``pool``'s processes (initialised with this data set), after the MIME
        structure bounds (:class:`~esante.simulators.kits.mail.bounds.StructureRefused` beyond them)."""
        await asyncio.to_thread(check_structure, raw)  # linear, but 20 MB take a while: not on the loop
        return await pool.run(inspect_in_worker, raw, recipients, self._patients(recipients), dict(self.originals))

    async def deliver(self, raw: bytes, message: MessageNotes) -> None:
        """Put an inspected message in its recipients' INBOX (:class:`~esante.simulators.kits.mail.store.
        MailboxFull` when one is full), and remember it for the receipts that will answer it."""
        for recipient in message.to:
            await self.store.deliver(recipient, raw)
        if message.message_id:
            self.originals[message.message_id] = Original(message.receipt_asked, message.patient_known)
