"""What the SMTP and IMAP servers share: the service state they act on, the session journal, the fault draw,
and token/certificate authentication."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from esante.simulators.core.faults import FaultKind, FaultRule
from esante.simulators.core.journal import Session
from esante.simulators.mssante.auth import PARSERS, Credentials, SaslError, introspect

if TYPE_CHECKING:
    from esante.simulators.core.runtime import SimulatorRuntime
    from esante.simulators.mssante.service import MssanteSimulator


@dataclass(slots=True)
class MailContext:
    """One running simulator's mail side: its protocol state, its runtime and the STARTTLS context."""

    service: MssanteSimulator
    runtime: SimulatorRuntime
    tls: ssl.SSLContext


@dataclass(slots=True)
class MailSession:
    """A journaled connection (the core's :class:`Session`: transcript, notes, the faults drawn for it) and the
    mail side it acts on."""

    context: MailContext
    record: Session

    @classmethod
    def open(cls, context: MailContext, protocol: str, peer: Any) -> MailSession:
        record = Session.open(context.runtime, protocol, peer)
        record.notes.update({"operation": protocol.lower(), "tls": False, "auth": []})
        return cls(context, record)

    @property
    def notes(self) -> Any:
        return self.record.notes

    @property
    def behaviours(self) -> set[str]:
        return self.record.behaviours

    def fault(self, *codes: str) -> FaultRule | None:
        """The first drawn rule that is one of these service faults (or the core kind for ``drop`` / ``busy``)."""
        for rule in self.record.faults:
            if rule.kind == FaultKind.SERVICE_FAULT and rule.fault_code in codes:
                return rule
            if rule.kind == FaultKind.DROP and "drop" in codes:
                return rule
            if rule.kind == FaultKind.HTTP_ERROR and "server_busy" in codes:
                return rule
        return None

    async def latency(self) -> None:
        await self.record.latency()

    def close(self, outcome: str = "answered") -> None:
        self.record.close(outcome)


def certificate_cn(der: bytes | None) -> str | None:
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    ok: bool
    mailbox: str | None
    reason: str
    expires: float | None = None


async def authenticate(session: MailSession, mechanism: str, response: str, peer_cert: bytes | None) -> AuthOutcome:
    """Check SASL credentials; the attempt (never the token) goes into the session's notes."""
    service = session.context.service
    attempt: dict[str, Any] = {"mechanism": mechanism}
    session.notes["auth"].append(attempt)
    try:
        credentials: Credentials = PARSERS[mechanism](response)
    except SaslError as exc:
        attempt |= {"outcome": "refused", "reason": str(exc)}
        return AuthOutcome(False, None, str(exc))
    attempt["mailbox"] = credentials.user
    if mechanism == "EXTERNAL":
        cn = certificate_cn(peer_cert)
        attempt["certificate_cn"] = cn
        ok = service.trust.opens(credentials.user, certificate_cn=cn)
        reason = "" if ok else f"certificate {cn!r} does not open application mailbox {credentials.user}"
        attempt |= {"outcome": "accepted" if ok else "refused", "reason": reason}
        return AuthOutcome(ok, credentials.user if ok else None, reason)
    verdict = await asyncio.to_thread(introspect, service.peer("psc"), credentials.token or "")
    attempt["token_active"] = verdict.active
    if not verdict.active:
        attempt |= {"outcome": "refused", "reason": verdict.reason}
        return AuthOutcome(False, None, verdict.reason)
    attempt["national_id"] = verdict.national_id
    if not service.trust.opens(credentials.user, national_id=verdict.national_id):
        reason = f"professional {verdict.national_id} holds no mailbox {credentials.user}"
        attempt |= {"outcome": "refused", "reason": reason}
        return AuthOutcome(False, None, reason)
    attempt["outcome"] = "accepted"
    return AuthOutcome(True, credentials.user.lower(), "", verdict.expires)
