"""What the SMTP and IMAP servers share: the mail side they act on (:class:`MailContext`), their sessions on the
core journal, the MSSanté meaning of the drawn faults, and token/certificate authentication."""

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
from esante.simulators.mssante.auth import PARSERS, SaslError, introspect
from esante.simulators.mssante.notes import AuthAttempt, MssNotes
from esante.simulators.mssante.post import PostOffice


@dataclass(frozen=True, slots=True)
class MailContext:
    """What the mail servers need of the running simulator: its mail (store, trust space, inspection), its
    runtime (the journal, the faults, the current test context), the STARTTLS context, and where Pro Santé
    Connect is for token introspection (asked at each authentication: the environment says it late)."""

    post: PostOffice
    runtime: SimulatorRuntime
    tls: ssl.SSLContext
    psc: Callable[[], Peer | None]


def open_session(context: MailContext, protocol: str, peer: Any) -> Session:
    """A journaled SMTP or IMAP connection, its faults drawn at ``/smtp`` or ``/imap``."""
    session = Session.open(context.runtime, protocol, peer)
    notes = session_notes(session)
    notes.operation, notes.tls = protocol.lower(), False
    return session


def session_notes(session: Session) -> MssNotes:
    """The session's notes, of the simulator's model."""
    if not isinstance(session.notes, MssNotes):
        raise TypeError(f"an MSSanté session's notes are MssNotes, not {type(session.notes).__name__}")
    return session.notes


def busy(session: Session) -> bool:
    """The server is busy for this session: the ``server_busy`` service fault, or any ``http_error`` rule."""
    return bool(session.fired(FaultKind.SERVICE_FAULT, "server_busy") or session.fired(FaultKind.HTTP_ERROR))


def certificate_cn(der: bytes | None) -> str | None:
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


async def authenticate(context: MailContext, session: Session, mechanism: str, response: str,
                       peer_cert: bytes | None) -> str | None:
    """The mailbox these SASL credentials open, or None; the attempt (never the token) goes into the notes."""
    attempt = await _attempt(context, mechanism, response, peer_cert)
    session_notes(session).auth.append(attempt)
    if attempt.outcome == "refused" or attempt.mailbox is None:
        return None
    return attempt.mailbox if mechanism == "EXTERNAL" else attempt.mailbox.lower()


async def _attempt(context: MailContext, mechanism: str, response: str, peer_cert: bytes | None) -> AuthAttempt:
    try:
        credentials = PARSERS[mechanism](response)
    except SaslError as exc:
        return AuthAttempt(mechanism=mechanism, outcome="refused", reason=str(exc))
    mailbox, trust = credentials.user, context.post.trust
    if mechanism == "EXTERNAL":
        cn = certificate_cn(peer_cert)
        if trust.opens(mailbox, certificate_cn=cn):
            return AuthAttempt(mechanism=mechanism, outcome="accepted", mailbox=mailbox, certificate_cn=cn)
        return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, certificate_cn=cn,
                           reason=f"certificate {cn!r} does not open application mailbox {mailbox}")
    verdict = await asyncio.to_thread(introspect, context.psc(), credentials.token or "")
    if not verdict.active:
        return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, token_active=False,
                           reason=verdict.reason)
    if not trust.opens(mailbox, national_id=verdict.national_id):
        return AuthAttempt(mechanism=mechanism, outcome="refused", mailbox=mailbox, token_active=True,
                           national_id=verdict.national_id,
                           reason=f"professional {verdict.national_id} holds no mailbox {mailbox}")
    return AuthAttempt(mechanism=mechanism, outcome="accepted", mailbox=mailbox, token_active=True,
                       national_id=verdict.national_id)
