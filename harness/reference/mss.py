"""The reference candidate as a mail-capable health software on MSSanté.

The professional signs in with Pro Santé Connect (a browser flow: ``/mss/callback``); the software then finds
the mail servers from the operator's autoconfig document, its own and its recipients' mailboxes in the
directory, and speaks SMTP and IMAP with STARTTLS, authenticating with the PSC access token (SASL XOAUTH2),
refreshed before it expires; the application mailbox authenticates with the software's certificate (SASL
EXTERNAL). Transient failures are retried twice; permanent refusals are reported.
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
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from lxml import etree

from esante.harness.driver import ActionOutcome, LegacyReport, ProfessionalSession
from esante.harness.reference.mss_mail import (
    Document,
    Unreadable,
    json_mailboxes,
    letter,
    receipt,
    received_patient,
    unknown_patient_error,
    xoauth2,
)
from esante.harness.reference.parts import NoParams, NotConfigured, Params, Part, ProfessionalParams, validated
from esante.harness.reference.psc.client import MAX_PENDING_LOGINS, PendingLogin, PscClient, Session
from esante.harness.reference.psc.tokens import PscError
from esante.simulators.core.pki import client_ssl_context
from esante.simulators.dataset import load_dataset
from esante.simulators.mssante.protocol import AUTOCONFIG_PATH, DNT, FHIR_BASE

CLIENT_ID = "esante-reference-mss"
CALLBACK_PATH = "/mss/callback"
API_KEY = "esante-reference-api-key"
SYSTEM_IDNAT = "urn:oid:1.2.250.1.71.4.2.1"
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
ATTEMPTS = 3  # one try and two retries
RETRY_PAUSE = 0.2
TIMEOUT = 10.0


class MailFailure(Exception):
    def __init__(self, outcome: ActionOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _report(outcome: ActionOutcome, message: str = "", **fields: Any) -> LegacyReport:
    return LegacyReport(outcome=outcome, message=message, **fields)


# -- action parameters -------------------------------------------------------------------------------------
class LoginParams(Params):
    professional: ProfessionalParams | None = None


class RecipientParams(Params):
    kind: Literal["professional", "patient", "address"]
    rpps: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    address: str | None = None


class LookupParams(Params):
    recipient: RecipientParams


class PatientParams(Params):
    id: str
    ins: str
    oid: str
    family_name: str
    given_name: str
    birth_date: str
    sex: str


class DocumentParams(Params):
    patient: PatientParams
    title: str
    code: str


class SenderParams(Params):
    kind: Literal["application", "organisation"]
    address: str
    certificate_cn: str | None = None


class SendParams(Params):
    recipient: RecipientParams
    receipt: bool = False
    document: DocumentParams | None = None
    sender: SenderParams | None = None


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


class MssCandidate:
    """One user's session with the messaging software (the harness plays one user per test case)."""

    def __init__(self, part: MssPart, base_url: str, psc_url: str | None) -> None:
        self.part, self.defects = part, part.defects
        self.base_url = base_url.rstrip("/")
        ca_pem = part.context.ca_pem_for(base_url)
        self.tls = client_ssl_context(ca_pem) if ca_pem else ssl.create_default_context()
        self.http = httpx.Client(verify=self.tls, timeout=TIMEOUT, headers={"ESANTE-API-KEY": API_KEY})
        self.psc = None
        if psc_url:
            secret = load_dataset().oidc_client(CLIENT_ID).secret or ""
            self.psc = PscClient(psc_url, client_id=CLIENT_ID, secret=secret,
                                 ca_pem=part.context.ca_pem_for(psc_url), defects=self.defects)
        self.pending: dict[str, PendingLogin] = {}
        self.session: Session | None = None
        self.mailbox: str | None = None
        self._servers: MailServers | None = None

    def close(self) -> None:
        self.http.close()
        if self.psc is not None:
            self.psc.close()

    # -- sign-in ---------------------------------------------------------------------------------------
    def login(self, own_url: str) -> LegacyReport:
        if self.psc is None:
            raise NotConfigured("no Pro Santé Connect endpoint was given on /reset")
        url, pending = self.psc.begin_login(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        while len(self.pending) > MAX_PENDING_LOGINS:
            self.pending.pop(next(iter(self.pending)))
        return _report(ActionOutcome.REDIRECT, "sent to Pro Santé Connect", redirect_url=url)

    def callback(self, url: str) -> LegacyReport:
        if urlsplit(url).path != CALLBACK_PATH or self.psc is None:
            return _report(ActionOutcome.ERROR, f"the application has no page at {urlsplit(url).path}")
        try:
            session = self.psc.complete_login(url, self.pending)
            session.claims = self.psc.userinfo(session)
        except PscError as exc:
            return _report(ActionOutcome.REFUSED, str(exc))
        self.session = session
        national_id = str(session.claims["SubjectNameID"])
        boxes = json_mailboxes(self.search("Practitioner", identifier=f"{SYSTEM_IDNAT}|{national_id}"), "PER")
        self.mailbox = boxes[0] if boxes else None
        professional = ProfessionalSession(user_id=national_id, family_name=session.claims.get("family_name"),
                                           given_name=session.claims.get("given_name"))
        return _report(ActionOutcome.SIGNED_IN, f"mailbox {self.mailbox or '(none in the directory)'} opened",
                       professional=professional)

    def token(self) -> str:
        """The current access token, refreshed first when it is about to expire."""
        if self.session is None or self.psc is None:
            raise MailFailure(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        if not self.defects.on("mssante_no_token_refresh") and self.psc.needs_refresh(self.session):
            self.session = self.psc.refresh(self.session)
        return self.session.access_token

    # -- directory -------------------------------------------------------------------------------------
    def search(self, kind: str, **params: str) -> dict[str, Any]:
        answer = self.http.get(f"{self.base_url}{FHIR_BASE}/{kind}", params=params)
        if answer.status_code != 200:
            raise MailFailure(ActionOutcome.ERROR, f"directory answered HTTP {answer.status_code}: {answer.text[:200]}")
        return answer.json()

    def address_of(self, recipient: RecipientParams) -> str:
        if recipient.kind != "professional":
            return str(recipient.address)
        if self.defects.on("mssante_guesses_address"):
            return f"{recipient.given_name}.{recipient.family_name}@medecin.mssante.test".lower()
        boxes = json_mailboxes(self.search("Practitioner", identifier=f"{SYSTEM_RPPS}|{recipient.rpps}"), "PER")
        if not boxes:
            raise MailFailure(ActionOutcome.NOT_FOUND, f"no MSSanté mailbox for RPPS {recipient.rpps}")
        return boxes[0]

    def lookup(self, recipient: RecipientParams) -> LegacyReport:
        address = self.address_of(recipient)
        return _report(ActionOutcome.FOUND, f"{recipient.given_name} {recipient.family_name}: {address}")

    def servers(self) -> MailServers:
        """The mail servers, from the operator's autoconfig document (Thunderbird format)."""
        if self._servers is None:
            answer = self.http.get(self.base_url + AUTOCONFIG_PATH)
            if answer.status_code != 200:
                raise MailFailure(ActionOutcome.UNAVAILABLE, f"autoconfig answered HTTP {answer.status_code}")
            config = etree.fromstring(answer.content, etree.XMLParser(resolve_entities=False, no_network=True))
            self._servers = MailServers(urlsplit(self.base_url).hostname or "127.0.0.1",
                                        int(config.findtext(".//outgoingServer/port") or 587),
                                        int(config.findtext(".//incomingServer/port") or 143))
        return self._servers

    # -- sending -----------------------------------------------------------------------------------------
    def credentials(self, sender: SenderParams | None) -> Credentials:
        if sender is not None and sender.kind == "application":
            cert = self.part.context.certificate(sender.certificate_cn or "")
            return Credentials(sender.address, certificate=(str(cert.cert_path), str(cert.key_path)))
        if self.mailbox is None:
            raise MailFailure(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        return Credentials(sender.address if sender else self.mailbox, token=self.token)

    def send(self, params: SendParams) -> LegacyReport:
        credentials = self.credentials(params.sender)
        recipient = self.address_of(params.recipient)
        document = None
        if params.document is not None:
            p = params.document.patient
            document = Document(p.ins, p.oid, p.family_name, p.given_name, p.birth_date, params.document.title,
                                params.document.code)
        msg = letter(credentials.mailbox, recipient, to_patient=params.recipient.kind == "patient",
                     document=document, receipt=params.receipt, defects=self.defects)
        self.submit(credentials, [msg])
        return _report(ActionOutcome.COMPLETED, f"sent to {recipient} ({msg['Message-ID']})")

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
        reply = f"{code} {text.decode() if isinstance(text, bytes) else text}"
        if code >= 500:
            if self.defects.on("mssante_ignores_refusal"):
                raise _Ignored(reply)
            raise MailFailure(ActionOutcome.REFUSED, f"refused by the MSSanté server: {reply}")
        return reply

    def _smtp(self, credentials: Credentials, messages: list[EmailMessage]) -> None:
        servers = self.servers()
        with smtplib.SMTP(servers.host, servers.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.ehlo("esante-reference")
            if not self.defects.on("mssante_no_starttls"):
                context = self.tls
                if credentials.certificate:
                    context = client_ssl_context(self.part.context.ca_pem_for("https:") or b"")
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

    # -- receiving ---------------------------------------------------------------------------------------
    def integrate(self) -> LegacyReport:
        credentials = self.credentials(None)
        try:
            received = self._read_inbox(credentials)
        except imaplib.IMAP4.abort:  # the server ended the session (e.g. token expiry): sign in again, once
            if self.session is not None and self.psc is not None:
                self.session = self.psc.refresh(self.session)
            received = self._read_inbox(credentials)
        patients = {p.ins.nir + p.ins.key for p in load_dataset().patients}  # the software's patient base
        integrated, refused, receipts = [], [], []
        for msg in received:
            try:
                ins = received_patient(msg)
            except Unreadable as exc:
                refused.append(f"{msg['Message-ID']}: {exc}")
                continue
            error = None
            if ins is not None and ins not in patients and not self.defects.on("mssante_integrates_unknown_patient"):
                error = unknown_patient_error(ins)
                refused.append(f"{msg['Message-ID']}: patient {ins} unknown")
            elif ins is not None:
                integrated.append(f"{msg['Message-ID']} (patient {ins})")
            if msg.get(DNT) is not None or self.defects.on("mssante_receipt_always"):
                receipts.append(receipt(msg, credentials.mailbox, error=error))
        if receipts:
            self.submit(credentials, receipts)
        return _report(ActionOutcome.COMPLETED, f"{len(received)} message(s) read; integrated: "
                                                f"{', '.join(integrated) or 'none'}; refused: "
                                                f"{', '.join(refused) or 'none'}; {len(receipts)} receipt(s) sent")

    def _read_inbox(self, credentials: Credentials) -> list[EmailMessage]:
        servers = self.servers()
        imap = imaplib.IMAP4(servers.host, servers.imap_port, timeout=TIMEOUT)
        try:
            if not self.defects.on("mssante_no_starttls"):
                imap.starttls(ssl_context=self.tls)
            if self.defects.on("mssante_password_auth"):
                imap.login(credentials.mailbox, "password")
            else:
                token = credentials.token() if credentials.token else ""
                imap.authenticate("XOAUTH2", lambda _: xoauth2(credentials.mailbox, token).encode())
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "UNSEEN")
            received = []
            for uid in (data[0] or b"").split():
                _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next(p[1] for p in parts if isinstance(p, tuple))
                received.append(email.message_from_bytes(raw, policy=email.policy.default))
                imap.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            imap.logout()
            return received  # type: ignore[return-value]
        except imaplib.IMAP4.error as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise
            raise MailFailure(ActionOutcome.REFUSED, f"IMAP: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                imap.shutdown()


class _Ignored(MailFailure):
    """The mssante_ignores_refusal defect: a permanent refusal the software does not report."""

    def __init__(self, reply: str) -> None:
        super().__init__(ActionOutcome.COMPLETED, f"sent (the server said {reply})")


class MssPart(Part):
    """The ``mss.*`` actions on a fresh session per ``/reset``."""

    actions = ("mss.login", "mss.lookup_recipient", "mss.send", "mss.integrate")
    callback_prefix = "/mss/"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.session: MssCandidate | None = None

    def reset(self, endpoints: dict[str, str]) -> None:
        self.close()
        if endpoints.get("mssante"):
            self.session = MssCandidate(self, endpoints["mssante"], endpoints.get("psc"))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _mail(self) -> MssCandidate:
        if self.session is None:
            raise NotConfigured("no MSSanté endpoint was given on /reset")
        return self.session

    def act(self, action: str, params: dict[str, Any], own_url: str) -> LegacyReport:
        if action == "mss.login":
            validated(LoginParams, params)
            work: Callable[[MssCandidate], LegacyReport] = lambda mss: mss.login(own_url)  # noqa: E731
        elif action == "mss.lookup_recipient":
            recipient = validated(LookupParams, params).recipient
            work = lambda mss: mss.lookup(recipient)  # noqa: E731
        elif action == "mss.send":
            send = validated(SendParams, params)
            work = lambda mss: mss.send(send)  # noqa: E731
        else:
            validated(NoParams, params)
            work = lambda mss: mss.integrate()  # noqa: E731
        mail = self._mail()
        try:
            return work(mail)
        except MailFailure as exc:
            return _report(exc.outcome, str(exc))
        except PscError as exc:
            return _report(ActionOutcome.ERROR, f"Pro Santé Connect: {exc}", error_code=exc.error)

    def callback(self, url: str) -> LegacyReport:
        return self._mail().callback(url)
