"""What the MSSanté SMTP and IMAP sessions share: the mail side they act on (:class:`MailContext`), their journal,
the MSSanté meaning of the drawn faults, and who may open which mailbox (:class:`MssSession`, the hooks both
servers of the mail kit ask)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from esante.simulators.core.faults import FaultKind
from esante.simulators.core.journal import Session
from esante.simulators.core.runtime import Peer, SimulatorRuntime
from esante.simulators.kits.mail.sasl import Credentials
from esante.simulators.kits.mail.worker import WorkerPool
from esante.simulators.mssante.auth import introspect
from esante.simulators.mssante.notes import AuthAttempt, MssNotes
from esante.simulators.mssante.post import PostOffice


@dataclass(frozen=True, slots=True)
class MailContext:
    """What the mail servers need of the running simulator: its mail (store, trust space, inspection and the
    worker processes it runs in), its runtime (the journal, the faults, the current test context), the
    STARTTLS context, and where Pro Santé Connect is for token introspection (asked at each authentication: the
    environment says it late)."""

    post: PostOffice
    runtime: SimulatorRuntime
    tls: ssl.SSLContext
    psc: Callable[[], Peer | None]
    pool: WorkerPool


def session_notes(session: Session) -> MssNotes:
    """The session's notes, of the simulator's model."""
    if not isinstance(session.notes, MssNotes):
        raise TypeError(f"an MSSanté session's notes are MssNotes, not {type(session.notes).__name__}")
    return session.notes


def certificate_cn(der: bytes | None) -> str | None:
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class MssSession:
    """One SMTP or IMAP connection as MSSanté rules it; each server adds its own replies."""

    protocol = ""
    busy_reply = ""
    starttls_unavailable_reply = ""

    def __init__(self, context: MailContext) -> None:
        self.context = context
        self.record: Session

    def opened(self, peer: Any) -> None:
        """Journal the connection, its faults drawn at ``/smtp`` or ``/imap``."""
        self.record = Session.open(self.context.runtime, self.protocol, peer)
        self.notes.operation, self.notes.tls = self.protocol.lower(), False

    @property
    def notes(self) -> MssNotes:
        return session_notes(self.record)

    def refusal(self) -> str | None:
        """The server is busy for this session: the ``server_busy`` service fault, or any ``http_error`` rule."""
        busy = self.record.fired(FaultKind.SERVICE_FAULT, "server_busy") or self.record.fired(FaultKind.HTTP_ERROR)
        return self.busy_reply if busy else None

    def starttls_refusal(self) -> str | None:
        return self.starttls_unavailable_reply if "starttls_unavailable" in self.record.behaviours else None

    def tls_started(self) -> None:
        self.notes.tls = True

    async def verify(self, mechanism: str, credentials: Credentials | None, certificate: bytes | None,
                     problem: str = "") -> str | None:
        """The mailbox these SASL credentials open, or None; the attempt (never the token) goes into the notes."""
        attempt = await self._attempt(mechanism, credentials, certificate, problem)
        self.notes.auth.append(attempt)
        if attempt.outcome == "refused" or attempt.mailbox is None:
            return None
        return attempt.mailbox if attempt.mechanism == "EXTERNAL" else attempt.mailbox.lower()

    async def _attempt(self, mechanism: str, credentials: Credentials | None, certificate: bytes | None,
                       problem: str) -> AuthAttempt:
        if credentials is None:
            return AuthAttempt(mechanism=mechanism, outcome="refused", reason=problem)
        mailbox, trust = credentials.user, self.context.post.trust
        if mechanism == "EXTERNAL":
            cn = certificate_cn(certificate)
            if trust.opens(mailbox, certificate_cn=cn):
                return AuthAttempt(mechanism=mechanism, outcome="accepted", mailbox=mailbox, certificate_cn=cn)
            return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, certificate_cn=cn,
                               reason=f"certificate {cn!r} does not open application mailbox {mailbox}")
        verdict = await asyncio.to_thread(introspect, self.context.psc(), credentials.token or "")
        if not verdict.active:
            return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, token_active=False,
                               reason=verdict.reason)
        if not trust.opens(mailbox, national_id=verdict.national_id):
            return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, token_active=True,
                               national_id=verdict.national_id,
                               reason=f"professional {verdict.national_id} holds no mailbox {mailbox}")
        return AuthAttempt(mechanism=mechanism, outcome="accepted", mailbox=mailbox, token_active=True,
                           national_id=verdict.national_id)
