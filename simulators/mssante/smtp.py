"""MSSanté's SMTP submission server: the mail kit's (aiosmtpd, exact to the RFCs) with the operator's rules.

TLS first (530 before STARTTLS), then SASL XOAUTH2/OAUTHBEARER with a PSC token or EXTERNAL with an application
certificate (535 5.7.8 otherwise; PLAIN and LOGIN are not offered). The sender must be the authenticated
mailbox, every recipient a mailbox of the trust space. Each message is inspected (headers, XDM, receipts) in a
worker process, within the MIME structure bounds and a deadline (``554 5.6.0`` with the reason beyond them),
then delivered, with its ``Received:`` field, to the recipients' INBOX in the shared store; the whole session is
journaled with its findings.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession

from esante.simulators.core.faults import FaultKind
from esante.simulators.kits.mail.bounds import StructureRefused
from esante.simulators.kits.mail.smtp import SubmissionServer
from esante.simulators.kits.mail.store import MailboxFull
from esante.simulators.kits.mail.worker import Overdue, TaskFailed
from esante.simulators.mssante.notes import Refusal
from esante.simulators.mssante.protocol import MAX_MESSAGE_BYTES, Reply
from esante.simulators.mssante.sessions import MailContext, MssSession

HOSTNAME: Final = "smtp.mssante.test"


class MssSubmission(MssSession):
    """One SMTP connection as MSSanté rules it: the kit's rules and aiosmtpd's handler hooks."""

    protocol = "SMTP"
    busy_reply = Reply.BUSY
    starttls_unavailable_reply = Reply.TLS_UNAVAILABLE

    async def handle_MAIL(self, server: SubmissionServer, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.lower() != str(session.auth_data or "").lower():
            self.notes.refused.append(Refusal(sender=address, reply=Reply.SENDER_NOT_OWNED[:3]))
            return Reply.SENDER_NOT_OWNED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SubmissionServer, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        reply = self._recipient_refused(address)
        if reply is not None:
            self.notes.refused.append(Refusal(to=address, reply=reply[:3]))
            return reply
        entry = self.context.post.trust.mailbox(address)
        server.add_recipient(envelope, entry.address if entry else address)  # one mailbox, whatever its case
        return "250 2.1.5 OK"

    def _recipient_refused(self, address: str) -> Reply | None:
        trust = self.context.post.trust
        if not trust.trusted(address):
            return Reply.OUTSIDE_TRUST
        if trust.mailbox(address) is None:
            return Reply.UNKNOWN_MAILBOX
        if self.record.fired(FaultKind.SERVICE_FAULT, "mailbox_full"):
            return Reply.MAILBOX_FULL
        return None

    async def handle_DATA(self, server: SubmissionServer, session: SmtpSession, envelope: Envelope) -> str:
        raw, post = envelope.original_content or b"", self.context.post
        if self.record.fired(FaultKind.DROP):  # the worst moment: the client cannot know whether it was taken
            self.notes.dropped_after_data = True
            self.record.outcome = "dropped"
            server.transport.abort()  # type: ignore[union-attr]
            return "451 4.3.0 dropped"  # never reaches the client
        try:
            message = await post.inspect_off_loop(raw, list(envelope.rcpt_tos), self.context.pool)
        except (StructureRefused, Overdue, TaskFailed) as refused:
            return self._refuse(refused)
        message.queue_id, message.envelope_from = uuid.uuid4().hex[:12].upper(), envelope.mail_from
        self.notes.messages.append(message)
        try:
            await post.deliver(server.received(envelope, message.queue_id) + raw, message)
        except MailboxFull:
            return Reply.MAILBOX_FULL
        return f"250 2.0.0 Ok: queued as {message.queue_id}"

    def _refuse(self, refused: Exception) -> str:
        """A message that cannot be checked is refused for good, saying why: retrying would change nothing."""
        if isinstance(refused, TaskFailed):  # a simulator bug: the evidence says so
            self.notes.exception = str(refused)
        reason = f"{Reply.MESSAGE_REFUSED[4:]}: {refused}"
        self.notes.refused.append(Refusal(reply=Reply.MESSAGE_REFUSED[:3], reason=reason))
        return f"{Reply.MESSAGE_REFUSED[:3]} {reason}"


def smtp_server(context: MailContext) -> Any:
    """A factory of per-connection SMTP protocols (``loop.create_server``'s)."""
    return lambda: SubmissionServer(MssSubmission(context), tls=context.tls, hostname=HOSTNAME,
                                    ident="esante MSSante ESMTP", max_size=MAX_MESSAGE_BYTES)
