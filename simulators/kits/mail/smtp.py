"""SMTP submission (RFC 6409) on aiosmtpd, exact to the RFCs where aiosmtpd is not, with the service's rules.

What is added to aiosmtpd: the SASL mechanisms of :mod:`.sasl` with both forms of RFC 4954 (initial response
on the ``AUTH`` line, or after an empty ``334`` challenge: aiosmtpd's ``challenge_auth`` hands back the
*decoded* response), ``501 5.5.2`` for a response that is not base64, the bearer-token error challenge before
``535 5.7.8`` (RFC 7628 §3.2.2); the enhanced status code (RFC 2034, RFC 3463) on every reply but the greeting
and EHLO's, and the ``PIPELINING`` and ``ENHANCEDSTATUSCODES`` keywords; ``STARTTLS`` refused once in TLS
(``554 5.5.1``, where aiosmtpd answers ``220`` then fails); the ``Received:`` trace field (RFC 5321 §4.4) on
what is delivered; recipients named twice kept once. The session's transcript goes into the core journal.

The service gives one :class:`~.rules.MailRules` object per connection: it is aiosmtpd's handler
(``handle_MAIL``, ``handle_RCPT``, ``handle_DATA``) and answers the kit's questions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope

from esante.simulators.kits.mail import sasl
from esante.simulators.kits.mail.rules import MailRules

AUTH_LINE_LIMIT: Final = 12288  # RFC 4954 §4: an initial response may be this long (a JWT is long)
_ENHANCED = re.compile(r"^\d\.\d{1,3}\.\d{1,3}( |$)")
_REPLY = re.compile(r"^(\d{3})([ -])(.*)$", re.DOTALL)
#: RFC 3463 / RFC 5248 codes for aiosmtpd's own replies, which carry none.
ENHANCED_CODES: Final = {
    211: "2.0.0", 214: "2.0.0", 220: "2.0.0", 221: "2.0.0", 235: "2.7.0", 250: "2.0.0", 252: "2.5.0",
    421: "4.3.2", 450: "4.2.0", 451: "4.3.0", 452: "4.3.1", 454: "4.7.0", 455: "4.5.4",
    500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0", 534: "5.7.9",
    535: "5.7.8", 538: "5.7.11", 550: "5.7.1", 551: "5.1.6", 552: "5.3.4", 553: "5.1.3", 554: "5.5.0",
    555: "5.5.4"}
TLS_ACTIVE: Final = "554 5.5.1 Error: TLS already active"  # as Postfix answers it

# aiosmtpd fills its deprecated Session.login_data itself after every successful AUTH, and logs a warning
logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())


def with_enhanced_code(reply: str) -> str:
    """``reply`` with an RFC 3463 code after the basic one, unless it has one (or is an intermediate 3xx)."""
    match = _REPLY.match(reply)
    if not match or match.group(1)[0] == "3" or _ENHANCED.match(match.group(3)):
        return reply
    code = int(match.group(1))
    enhanced = ENHANCED_CODES.get(code, f"{match.group(1)[0]}.0.0")
    return f"{match.group(1)}{match.group(2)}{enhanced} {match.group(3)}"


def recipient_key(address: str) -> str:
    """How recipients are compared: the domain is case-insensitive (RFC 5321 §2.4), the local part is not."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address.strip()


class SubmissionServer(SMTP):
    """aiosmtpd's SMTP, per connection, with the additions of the module docstring."""

    line_length_limit = AUTH_LINE_LIMIT  # the line reader's limit; per-command limits below

    def __init__(self, rules: MailRules, *, tls: Any, hostname: str, ident: str, max_size: int) -> None:
        super().__init__(rules, hostname=hostname, ident=ident, tls_context=tls, require_starttls=True,
                         auth_required=True, auth_require_tls=True, auth_exclude_mechanism=["LOGIN", "PLAIN"],
                         data_size_limit=max_size, decode_data=False, loop=asyncio.get_running_loop())
        # other commands keep RFC 5321's 512 octets
        self.command_size_limits = collections.defaultdict(lambda: 512, {"AUTH": AUTH_LINE_LIMIT})
        self.rules = rules
        self._greeted = self._in_ehlo = False  # the greeting and EHLO's lines carry no enhanced code

    # -- transport and replies -----------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        if self.transport is None:
            self.rules.opened(transport.get_extra_info("peername"))
        else:  # called again with the TLS transport once STARTTLS is done
            self.rules.tls_started()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.rules.record.heard(data)
        super().data_received(data)

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        if self._greeted and not self._in_ehlo:
            text = with_enhanced_code(text)
        self._greeted = True
        if self._in_ehlo and text == "250 HELP":  # aiosmtpd's last EHLO line: the keywords it does not say first
            for keyword in ("PIPELINING", "ENHANCEDSTATUSCODES"):
                await self._say(f"250-{keyword}")
        await self._say(text)

    async def _say(self, text: str) -> None:
        self.rules.record.said(text.encode("utf-8", "replace") + b"\r\n")
        if text[:1] in ("4", "5"):
            self.rules.record.status = int(text[:3])
        await super().push(text)

    def connection_lost(self, error: Exception | None) -> None:
        self.rules.record.close()
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        await self.rules.record.latency()
        refusal = self.rules.refusal()
        if refusal:
            self._greeted = True
            await self.push(refusal)
            self.transport.close()  # type: ignore[union-attr]
            return
        await super()._handle_client()

    # -- commands -----------------------------------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True  # RFC 2034 §3
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push(TLS_ACTIVE)
            return
        refusal = self.rules.starttls_refusal()
        if refusal:
            await self.push(refusal)
            return
        await super().smtp_STARTTLS(arg)

    # -- SASL ------------------------------------------------------------------------------------------------
    async def auth_XOAUTH2(self, _: Any, args: list[str]) -> AuthResult:
        return await self._sasl("XOAUTH2", args)

    async def auth_OAUTHBEARER(self, _: Any, args: list[str]) -> AuthResult:
        return await self._sasl("OAUTHBEARER", args)

    async def auth_EXTERNAL(self, _: Any, args: list[str]) -> AuthResult:
        return await self._sasl("EXTERNAL", args)

    async def _sasl(self, mechanism: str, args: list[str]) -> AuthResult:
        response = await self._response(args)
        if response is None:
            return AuthResult(success=False, handled=True)  # the 501 is said
        try:
            found, problem = sasl.credentials(mechanism, response), ""
        except sasl.SaslError as exc:
            found, problem = None, str(exc)
        address = await self.rules.verify(mechanism, found, self._certificate(), problem)
        if address is not None:
            return AuthResult(success=True, auth_data=address)
        challenge = sasl.error_challenge(mechanism)
        if challenge is not None and await self.challenge_auth(challenge) is MISSING:
            return AuthResult(success=False, handled=True)  # the client cancelled with '*': 501 is said
        return AuthResult(success=False, handled=False)  # 535 5.7.8

    async def _response(self, args: list[str]) -> bytes | None:
        if len(args) < 2:
            answer = await self.challenge_auth("", encode_to_b64=False)
            return None if answer is MISSING else bytes(answer)  # type: ignore[arg-type]
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Cannot decode the response: not base64")
            return None

    def _certificate(self) -> bytes | None:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    # -- what the service's handler uses --------------------------------------------------------------------
    @staticmethod
    def add_recipient(envelope: Envelope, address: str) -> None:
        """Add a recipient once: one named again (its domain in another case) is already there."""
        if recipient_key(address) not in {recipient_key(r) for r in envelope.rcpt_tos}:
            envelope.rcpt_tos.append(address)

    def received(self, envelope: Envelope, queue_id: str) -> bytes:
        """The ``Received:`` field (RFC 5321 §4.4) to put before a message delivered from this session."""
        peer = self.session.peer if self.session else None
        address = peer[0] if isinstance(peer, tuple) else "unknown"
        helo = (self.session.host_name if self.session else None) or "unknown"
        protocol = "ESMTP" + ("S" if self._tls_protocol else "") + ("A" if self.session and
                                                                     self.session.authenticated else "")
        recipient = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        return (f"Received: from {helo} ([{address}])\r\n\tby {self.hostname} ({self.__ident__}) with {protocol} "
                f"id {queue_id}{recipient};\r\n\t{format_datetime(datetime.now(UTC))}\r\n").encode()

