"""SMTP submission and IMAP as the messaging software speaks them: STARTTLS first, then SASL XOAUTH2 with the
professional's PSC access token or EXTERNAL with the software's certificate (application mailbox). Transient
failures (4xx, a lost connection) are retried twice; a permanent refusal (5xx) is reported at once.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import imaplib
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from esante.harness.driver import ActionOutcome
from esante.harness.reference.defects import Defects

ATTEMPTS = 3  # one try and two retries
RETRY_PAUSE = 0.2
TIMEOUT = 10.0


class MailFailure(Exception):
    """The action failed; ``outcome`` is what the software tells its user."""

    def __init__(self, outcome: ActionOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class IgnoredRefusal(MailFailure):
    """The mssante_ignores_refusal defect: a permanent refusal the software does not report."""

    def __init__(self, reply: str) -> None:
        super().__init__(ActionOutcome.COMPLETED, f"sent (the server said {reply})")


@dataclass(frozen=True, slots=True)
class MailServers:
    host: str
    smtp_port: int
    imap_port: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to open a mailbox: a PSC token (XOAUTH2) or the application certificate (EXTERNAL)."""

    mailbox: str
    token: Callable[[], str] | None = None
    certificate: tuple[str, str] | None = None


def xoauth2(address: str, token: str) -> str:
    return f"user={address}\x01auth=Bearer {token}\x01\x01"


class MailTransport:
    """The operator's mail servers, reached with the software's TLS settings."""

    def __init__(self, servers: MailServers, tls: ssl.SSLContext, client_tls: Callable[[], ssl.SSLContext],
                 defects: Defects) -> None:
        self.servers, self.tls, self.defects = servers, tls, defects
        self.client_tls = client_tls  # a fresh context trusting the operator, to load a client certificate into

    # -- sending ---------------------------------------------------------------------------------------------
    def submit(self, credentials: Credentials, messages: list[EmailMessage]) -> None:
        """Send over SMTP submission, retrying transient failures (4xx, dropped connection) twice."""
        attempts = 1 if self.defects.on("mssante_no_retry") else ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._smtp(credentials, messages)
                return
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                problem = self._refused(code, text)
            except smtplib.SMTPResponseException as exc:
                problem = self._refused(exc.smtp_code, exc.smtp_error)
            except OSError as exc:  # after the SMTP errors, which are OSErrors too: a lost connection
                problem = f"connection lost ({type(exc).__name__}: {exc})"
            if attempt < attempts:
                time.sleep(RETRY_PAUSE * attempt)
        raise MailFailure(ActionOutcome.UNAVAILABLE, f"not sent after {attempts} attempt(s): {problem}")

    def _refused(self, code: int, text: bytes | str) -> str:
        """A transient reply, to retry; a permanent one ends the sending."""
        reply = f"{code} {text.decode() if isinstance(text, bytes) else text}"
        if code >= 500:
            if self.defects.on("mssante_ignores_refusal"):
                raise IgnoredRefusal(reply)
            raise MailFailure(ActionOutcome.REFUSED, f"refused by the MSSanté server: {reply}")
        return reply

    def _smtp(self, credentials: Credentials, messages: list[EmailMessage]) -> None:
        with smtplib.SMTP(self.servers.host, self.servers.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.ehlo("esante-reference")
            if not self.defects.on("mssante_no_starttls"):
                context = self.tls
                if credentials.certificate:
                    context = self.client_tls()
                    context.load_cert_chain(*credentials.certificate)
                smtp.starttls(context=context)
                smtp.ehlo("esante-reference")
            self._authenticate_smtp(smtp, credentials)
            for msg in messages:
                smtp.send_message(msg)

    def _authenticate_smtp(self, smtp: smtplib.SMTP, credentials: Credentials) -> None:
        if credentials.certificate:
            smtp.auth("EXTERNAL", lambda challenge=None: credentials.mailbox)
        elif self.defects.on("mssante_password_auth"):
            plain = base64.b64encode(f"\0{credentials.mailbox}\0password".encode()).decode()
            code, text = smtp.docmd("AUTH", f"PLAIN {plain}")
            if code != 235:
                raise smtplib.SMTPAuthenticationError(code, text)
        else:
            token = credentials.token() if credentials.token else ""
            smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(credentials.mailbox, token))

    # -- receiving -------------------------------------------------------------------------------------------
    def read_inbox(self, credentials: Credentials) -> list[EmailMessage]:
        """The INBOX's unseen messages, marked seen once read; ``imaplib.IMAP4.abort`` when the server ends
        the session (the caller may sign in again)."""
        imap = imaplib.IMAP4(self.servers.host, self.servers.imap_port, timeout=TIMEOUT)
        try:
            if not self.defects.on("mssante_no_starttls"):
                imap.starttls(ssl_context=self.tls)
            self._authenticate_imap(imap, credentials)
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "UNSEEN")
            received = [self._fetch(imap, uid) for uid in (data[0] or b"").split()]
            imap.logout()
            return received
        except imaplib.IMAP4.error as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise
            raise MailFailure(ActionOutcome.REFUSED, f"IMAP: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                imap.shutdown()

    def _authenticate_imap(self, imap: imaplib.IMAP4, credentials: Credentials) -> None:
        if self.defects.on("mssante_password_auth"):
            imap.login(credentials.mailbox, "password")
        else:
            token = credentials.token() if credentials.token else ""
            imap.authenticate("XOAUTH2", lambda _: xoauth2(credentials.mailbox, token).encode())

    @staticmethod
    def _fetch(imap: imaplib.IMAP4, uid: bytes) -> EmailMessage:
        _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = next(p[1] for p in parts if isinstance(p, tuple))
        imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]
