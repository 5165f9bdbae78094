"""MSSanté's IMAP server: the mail kit's IMAP4rev1 (pymap) with the operator's rules — mailboxes opened with a PSC
token (XOAUTH2, OAUTHBEARER) or an application certificate (EXTERNAL), each session journaled with its commands
and authentication attempts, and the drawn faults (busy server, STARTTLS unavailable, a drop right after
authentication, a token that expires mid-session)."""

from __future__ import annotations

from typing import Final

from esante.simulators.core.faults import FaultKind
from esante.simulators.kits.mail.imap import ImapServer, MailImapConfig
from esante.simulators.mssante.sessions import MailContext, MssSession

GREETING: Final = "esante MSSante IMAP ready"
COMMANDS_BEFORE_EXPIRY: Final = 3  # token_expires_mid_session: the token is deemed expired after this many


class MssImapSession(MssSession):
    """One IMAP connection as MSSanté rules it."""

    protocol = "IMAP"
    busy_reply = "Server busy, try again later"
    starttls_unavailable_reply = "TLS not available, try again later"

    def authenticated(self) -> bool:
        if self.record.fired(FaultKind.DROP):
            self.notes.dropped_after_auth = True
            self.record.outcome = "dropped"
            return True
        return False

    def command(self, name: str, authenticated: bool) -> str | None:
        self.notes.commands.append(name)
        expiring = "token_expires_mid_session" in self.record.behaviours
        if authenticated and expiring and len(self.notes.commands) > COMMANDS_BEFORE_EXPIRY:
            self.notes.token_expired_mid_session = True
            return "Access token expired: authenticate again"
        return None


def imap_server(context: MailContext) -> ImapServer:
    """The IMAP server on the shared store, one :class:`MssImapSession` per connection."""
    config = MailImapConfig(context.tls, GREETING, "esante-conformance MSSante simulator")
    return ImapServer(context.post.store, config, lambda: MssImapSession(context))
