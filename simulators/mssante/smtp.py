"""SMTP submission (RFC 6409) with STARTTLS (RFC 3207) on aiosmtpd: the MSSanté operator's outgoing server.

TLS first (530 before STARTTLS), then SASL XOAUTH2/OAUTHBEARER with a PSC token or EXTERNAL with an application
certificate (535 5.7.8 otherwise; PLAIN and LOGIN are not offered). The sender must be the authenticated
mailbox, every recipient a mailbox of the trust space. Each message is inspected (headers, XDM, receipts) and
delivered to the recipients' INBOX in the shared store; the whole session is journaled with its findings.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from esante.simulators.core.faults import FaultKind
from esante.simulators.core.journal import Session
from esante.simulators.mssante.mailboxes import MailboxFull
from esante.simulators.mssante.notes import MssNotes, Refusal
from esante.simulators.mssante.protocol import MAX_MESSAGE_BYTES, Reply
from esante.simulators.mssante.sessions import MailContext, authenticate, busy, open_session, session_notes

AUTH_LINE_LIMIT = 12288
# aiosmtpd fills its deprecated Session.login_data itself after every successful AUTH, and logs a warning
logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())


class MssSmtp(SMTP):
    """aiosmtpd's SMTP with a journaled transcript and the drawn faults of the session."""

    line_length_limit = AUTH_LINE_LIMIT  # the line reader's limit (AUTH lines); per-command limits below

    def __init__(self, context: MailContext) -> None:
        super().__init__(SubmissionHandler(context), hostname="smtp.mssante.test", ident="esante MSSante ESMTP",
                         tls_context=context.tls, require_starttls=True, auth_required=True,
                         auth_require_tls=True, auth_exclude_mechanism=["LOGIN", "PLAIN"],
                         data_size_limit=MAX_MESSAGE_BYTES, decode_data=False, loop=asyncio.get_running_loop())
        # a JWT in an initial response is long (RFC 4954 §4: 12288 octets); other commands keep RFC 5321's 512
        self.command_size_limits = collections.defaultdict(lambda: 512, {"AUTH": AUTH_LINE_LIMIT})
        self.context = context
        self.record: Session | None = None

    def connection_made(self, transport: Any) -> None:
        if self.record is None:
            self.record = open_session(self.context, "SMTP", transport.get_extra_info("peername"))
        else:  # aiosmtpd calls it again with the TLS transport once STARTTLS is done
            session_notes(self.record).tls = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.record is not None:
            self.record.heard(data)
        super().data_received(data)

    async def push(self, status: Any) -> None:
        if status == "530 Must issue a STARTTLS command first":  # aiosmtpd's, without the enhanced code
            status = Reply.TLS_FIRST
        if self.record is not None:
            self.record.said((status if isinstance(status, bytes) else str(status).encode()) + b"\r\n")
            if isinstance(status, str) and status[:1] in "45":
                self.record.status = int(status[:3])
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        if self.record is not None:
            self.record.close()
        super().connection_lost(error)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.record is not None and "starttls_unavailable" in self.record.behaviours:
            await self.push(Reply.TLS_UNAVAILABLE)
            return
        await super().smtp_STARTTLS(arg)

    async def _handle_client(self) -> None:
        assert self.record is not None
        await self.record.latency()
        if busy(self.record):
            await self.push(Reply.BUSY)
            self.transport.close()  # type: ignore[union-attr]
            return
        await super()._handle_client()


class SubmissionHandler:
    """aiosmtpd hooks: authentication, envelope rules, inspection and delivery."""

    def __init__(self, context: MailContext) -> None:
        self.context = context

    @staticmethod
    def _record(server: SMTP) -> Session:
        record = getattr(server, "record", None)
        assert record is not None
        return record

    def _notes(self, server: SMTP) -> MssNotes:
        return session_notes(self._record(server))

    async def _sasl(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        if len(args) > 1:
            response = args[1]
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            response = answer.decode("ascii", "replace")
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        mailbox = await authenticate(self.context, self._record(server), mechanism, response, der)
        if mailbox is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=mailbox)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "OAUTHBEARER")

    async def auth_EXTERNAL(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "EXTERNAL")

    async def handle_MAIL(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.lower() != str(session.auth_data or "").lower():
            self._notes(server).refused.append(Refusal(sender=address, reply=Reply.SENDER_NOT_OWNED[:3]))
            return Reply.SENDER_NOT_OWNED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        reply = self._recipient_refused(server, address)
        if reply is not None:
            self._notes(server).refused.append(Refusal(to=address, reply=reply[:3]))
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _recipient_refused(self, server: SMTP, address: str) -> Reply | None:
        trust = self.context.post.trust
        if not trust.trusted(address):
            return Reply.OUTSIDE_TRUST
        if trust.mailbox(address) is None:
            return Reply.UNKNOWN_MAILBOX
        if self._record(server).fired(FaultKind.SERVICE_FAULT, "mailbox_full"):
            return Reply.MAILBOX_FULL
        return None

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        record, notes, post = self._record(server), self._notes(server), self.context.post
        raw = envelope.original_content or b""
        if record.fired(FaultKind.DROP):  # the worst moment: the client cannot know whether the message was taken
            notes.dropped_after_data = True
            record.outcome = "dropped"
            server.transport.abort()  # type: ignore[union-attr]
            return "451 4.3.0 dropped"  # never reaches the client
        try:
            message = post.inspect(raw, list(envelope.rcpt_tos))
        except Exception as exc:  # a simulator bug: the evidence says so, the client gets a transient failure
            notes.exception = f"{type(exc).__name__}: {exc}"
            return "451 4.3.0 Internal error while checking the message"
        message.queue_id, message.envelope_from = uuid.uuid4().hex[:12].upper(), envelope.mail_from
        notes.messages.append(message)
        try:
            post.deliver(raw, message)
        except MailboxFull:
            return Reply.MAILBOX_FULL
        return f"250 2.0.0 Ok: queued as {message.queue_id}"
