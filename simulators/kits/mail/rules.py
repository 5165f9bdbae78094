"""What a service decides for each connection to the mail kit's servers: one object per connection, asked by
the server at each step (:class:`MailRules`; IMAP asks a little more, :class:`~.imap.ImapRules`; for SMTP the same
object is aiosmtpd's handler, with its ``handle_MAIL``, ``handle_RCPT`` and ``handle_DATA``)."""

from __future__ import annotations

from typing import Any, Protocol

from esante.simulators.core.journal import Session
from esante.simulators.kits.mail.sasl import Credentials


class MailRules(Protocol):
    record: Session  # the connection's journal (transcripts, notes)

    def opened(self, peer: Any) -> None:
        """The connection from ``peer`` begins: open its journal (:attr:`record`)."""

    def refusal(self) -> str | None:
        """Why the connection is refused at the greeting (SMTP: the whole ``421`` reply; IMAP: the text of
        ``BYE [UNAVAILABLE]``), or None."""

    def starttls_refusal(self) -> str | None:
        """Why STARTTLS is unavailable now (SMTP: the ``454`` reply; IMAP: the text of ``NO [UNAVAILABLE]``)."""

    def tls_started(self) -> None: ...

    async def verify(self, mechanism: str, credentials: Credentials | None, certificate: bytes | None,
                     problem: str = "") -> str | None:
        """The address these ``mechanism`` credentials open, or None (the attempt goes into the journal).
        ``credentials`` is None when the response was malformed (``problem`` says how)."""
