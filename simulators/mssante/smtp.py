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

from esante.simulators.mssante.inspection import Original, inspect_message
from esante.simulators.mssante.mailboxes import MailboxFull
from esante.simulators.mssante.protocol import (
    MAX_MESSAGE_BYTES,
    REPLY_BUSY,
    REPLY_MAILBOX_FULL,
    REPLY_OUTSIDE_TRUST,
    REPLY_SENDER_NOT_OWNED,
    REPLY_TLS_FIRST,
    REPLY_TLS_UNAVAILABLE,
    REPLY_UNKNOWN_MAILBOX,
)
from esante.simulators.mssante.sessions import MailContext, MailSession, authenticate

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
        self.mail: MailSession | None = None

    def connection_made(self, transport: Any) -> None:
        if self.mail is None:
            self.mail = MailSession.open(self.context, "SMTP", transport.get_extra_info("peername"))
        else:
            self.mail.notes["tls"] = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.mail is not None:
            self.mail.record.heard(data)
        super().data_received(data)

    async def push(self, status: Any) -> None:
        if status == "530 Must issue a STARTTLS command first":  # aiosmtpd's, without the enhanced code
            status = REPLY_TLS_FIRST
        if self.mail is not None:
            self.mail.record.said((status if isinstance(status, bytes) else status.encode()) + b"\r\n")
            if isinstance(status, str) and status[:1] in "45":
                self.mail.record.status = int(status[:3])
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        if self.mail is not None:
            self.mail.close()
        super().connection_lost(error)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.mail is not None and "starttls_unavailable" in self.mail.behaviours:
            await self.push(REPLY_TLS_UNAVAILABLE)
            return
        await super().smtp_STARTTLS(arg)

    async def _handle_client(self) -> None:
        assert self.mail is not None
        await self.mail.latency()
        if self.mail.fault("server_busy"):
            await self.push(REPLY_BUSY)
            self.transport.close()  # type: ignore[union-attr]
            return
        await super()._handle_client()


class SubmissionHandler:
    """aiosmtpd hooks: authentication, envelope rules, inspection and delivery."""

    def __init__(self, context: MailContext) -> None:
        self.context = context

    @staticmethod
    def _mail(server: SMTP) -> MailSession:
        mail = getattr(server, "mail", None)
        assert mail is not None
        return mail

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
        outcome = await authenticate(self._mail(server), mechanism, response, der)
        if not outcome.ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=outcome.mailbox)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "OAUTHBEARER")

    async def auth_EXTERNAL(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "EXTERNAL")

    async def handle_MAIL(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address.lower() != str(session.auth_data or "").lower():
            self._mail(server).notes.setdefault("refused", []).append({"from": address, "reply": "553"})
            return REPLY_SENDER_NOT_OWNED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        trust, mail = self.context.service.trust, self._mail(server)
        reply = None
        if not trust.trusted(address):
            reply = REPLY_OUTSIDE_TRUST
        elif trust.mailbox(address) is None:
            reply = REPLY_UNKNOWN_MAILBOX
        elif mail.fault("mailbox_full"):
            reply = REPLY_MAILBOX_FULL
        if reply is not None:
            mail.notes.setdefault("refused", []).append({"to": address, "reply": reply[:3]})
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        mail, service = self._mail(server), self.context.service
        raw = envelope.original_content or b""
        if mail.fault("drop"):  # the worst moment: the client cannot know whether the message was taken
            mail.notes["dropped_after_data"] = True
            mail.record.outcome = "dropped"
            server.transport.abort()  # type: ignore[union-attr]
            return "451 4.3.0 dropped"  # never reaches the client
        recipients = list(envelope.rcpt_tos)
        patients = [r for r in recipients if service.trust.is_patient(r)]
        try:
            inspection = inspect_message(raw, recipients, dataset=service.dataset, patient_recipients=patients,
                                         originals=service.originals)
        except Exception as exc:  # a simulator bug: the evidence says so, the client gets a transient failure
            mail.notes["exception"] = f"{type(exc).__name__}: {exc}"
            return "451 4.3.0 Internal error while checking the message"
        queue_id = uuid.uuid4().hex[:12].upper()
        notes = inspection.to_notes() | {"queue_id": queue_id, "envelope_from": envelope.mail_from}
        mail.notes.setdefault("messages", []).append(notes)
        try:
            for recipient in recipients:
                service.store.deliver(recipient, raw)
        except MailboxFull:
            return REPLY_MAILBOX_FULL
        if notes["message_id"]:
            service.originals[notes["message_id"]] = Original(notes["receipt_asked"], notes.get("patient_known"))
        return f"250 2.0.0 Ok: queued as {queue_id}"
