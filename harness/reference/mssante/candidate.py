"""One user's session with the messaging software: sign-in with Pro Santé Connect, the directory, sending and
integrating what was received.

The professional signs in with Pro Santé Connect (a browser flow: ``/mss/callback``); the software then finds
the mail servers from the operator's autoconfig document, its own and its recipients' mailboxes in the
directory, and speaks SMTP and IMAP (:mod:`.transport`) with the PSC access token, refreshed before it
expires; the application mailbox authenticates with the software's certificate.
"""

from __future__ import annotations

import imaplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from lxml import etree

from esante.harness.driver import ActionOutcome
from esante.harness.reference.mssante.mail import (
    Document,
    Unreadable,
    letter,
    receipt,
    received_patient,
    unknown_patient_error,
)
from esante.harness.reference.mssante.models import (
    DocumentParams,
    MssReport,
    ProfessionalRecipient,
    Recipient,
    SenderParams,
    SendParams,
    SignedIn,
)
from esante.harness.reference.mssante.transport import Credentials, MailFailure, MailServers, MailTransport
from esante.harness.reference.parts import NotConfigured, ReferenceContext
from esante.harness.reference.psc.client import MAX_PENDING_LOGINS, PendingLogin, PscClient, Session
from esante.harness.reference.psc.tokens import PscError
from esante.simulators.core.pki import client_ssl_context
from esante.simulators.dataset import load_dataset
from esante.simulators.mssante.protocol import AUTOCONFIG_PATH, FHIR_BASE, SYSTEM_IDNAT, SYSTEM_RPPS, Header

CLIENT_ID = "esante-reference-mss"
CALLBACK_PATH = "/mss/callback"
API_KEY = "esante-reference-api-key"
TIMEOUT = 10.0


def report(outcome: ActionOutcome, message: str = "", **fields: Any) -> MssReport:
    return MssReport(outcome=outcome, message=message, **fields)


def json_mailboxes(bundle: dict[str, Any], kind: str | None = None) -> list[str]:
    """The MSSanté mailboxes of a directory search answer (optionally of one type: PER, ORG...)."""
    found = []
    for entry in bundle.get("entry", []):
        for telecom in entry.get("resource", {}).get("telecom", []):
            types = [c.get("code") for e in telecom.get("extension", []) for x in e.get("extension", [])
                     if x.get("url") == "type" for c in x.get("valueCodeableConcept", {}).get("coding", [])]
            if telecom.get("system") == "email" and (kind is None or kind in types):
                found.append(str(telecom["value"]))
    return found


def document_of(params: DocumentParams) -> Document:
    """The structured document about the patient, who must hold an INS (the CDA names the patient by it)."""
    p = params.patient
    if p.ins is None:
        raise MailFailure(ActionOutcome.ERROR, f"patient {p.id} has no INS: no structured document can be sent")
    return Document(p.ins.nir + p.ins.key, p.ins.oid, p.birth_name, p.first_names[0], p.birth_date, params.title,
                    params.code)


class MssCandidate:
    """One user's session with the messaging software (the harness plays one user per test case)."""

    def __init__(self, context: ReferenceContext, base_url: str, psc_url: str | None) -> None:
        self.context, self.defects = context, context.defects
        self.base_url = base_url.rstrip("/")
        ca_pem = context.ca_pem_for(base_url)
        self.tls = client_ssl_context(ca_pem) if ca_pem else ssl.create_default_context()
        self.http = httpx.Client(verify=self.tls, timeout=TIMEOUT, headers={"ESANTE-API-KEY": API_KEY})
        self.psc = None
        if psc_url:
            secret = load_dataset().oidc_client(CLIENT_ID).secret or ""
            self.psc = PscClient(psc_url, client_id=CLIENT_ID, secret=secret, ca_pem=context.ca_pem_for(psc_url),
                                 defects=self.defects)
        self.pending: dict[str, PendingLogin] = {}
        self.session: Session | None = None
        self.mailbox: str | None = None
        self._transport: MailTransport | None = None

    def close(self) -> None:
        self.http.close()
        if self.psc is not None:
            self.psc.close()

    # -- sign-in -----------------------------------------------------------------------------------------------
    def login(self, own_url: str) -> MssReport:
        if self.psc is None:
            raise NotConfigured("no Pro Santé Connect endpoint was given on /reset")
        url, pending = self.psc.begin_login(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        while len(self.pending) > MAX_PENDING_LOGINS:
            self.pending.pop(next(iter(self.pending)))
        return report(ActionOutcome.REDIRECT, "sent to Pro Santé Connect", redirect_url=url)

    def callback(self, url: str) -> MssReport:
        if urlsplit(url).path != CALLBACK_PATH or self.psc is None:
            return report(ActionOutcome.ERROR, f"the application has no page at {urlsplit(url).path}")
        try:
            session = self.psc.complete_login(url, self.pending)
            session.claims = self.psc.userinfo(session)
        except PscError as exc:
            return report(ActionOutcome.REFUSED, str(exc))
        self.session = session
        national_id = str(session.claims["SubjectNameID"])
        boxes = json_mailboxes(self.search("Practitioner", identifier=f"{SYSTEM_IDNAT}|{national_id}"), "PER")
        self.mailbox = boxes[0] if boxes else None
        professional = SignedIn(user_id=national_id, family_name=session.claims.get("family_name"),
                                given_name=session.claims.get("given_name"))
        return report(ActionOutcome.SIGNED_IN, f"mailbox {self.mailbox or '(none in the directory)'} opened",
                      professional=professional)

    def token(self) -> str:
        """The current access token, refreshed first when it is about to expire."""
        if self.session is None or self.psc is None:
            raise MailFailure(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        if not self.defects.on("mssante_no_token_refresh") and self.psc.needs_refresh(self.session):
            self.session = self.psc.refresh(self.session)
        return self.session.access_token

    # -- directory ---------------------------------------------------------------------------------------------
    def search(self, kind: str, **params: str) -> dict[str, Any]:
        answer = self.http.get(f"{self.base_url}{FHIR_BASE}/{kind}", params=params)
        if answer.status_code != 200:
            raise MailFailure(ActionOutcome.ERROR, f"directory answered HTTP {answer.status_code}: {answer.text[:200]}")
        return answer.json()

    def address_of(self, recipient: Recipient) -> str:
        if not isinstance(recipient, ProfessionalRecipient):
            return recipient.address
        if self.defects.on("mssante_guesses_address"):
            return f"{recipient.given_name}.{recipient.family_name}@medecin.mssante.test".lower()
        boxes = json_mailboxes(self.search("Practitioner", identifier=f"{SYSTEM_RPPS}|{recipient.rpps}"), "PER")
        if not boxes:
            raise MailFailure(ActionOutcome.NOT_FOUND, f"no MSSanté mailbox for RPPS {recipient.rpps}")
        return boxes[0]

    def lookup(self, recipient: ProfessionalRecipient) -> MssReport:
        address = self.address_of(recipient)
        return report(ActionOutcome.FOUND, f"{recipient.given_name} {recipient.family_name}: {address}")

    def transport(self) -> MailTransport:
        """The mail servers, from the operator's autoconfig document (Thunderbird format)."""
        if self._transport is None:
            answer = self.http.get(self.base_url + AUTOCONFIG_PATH)
            if answer.status_code != 200:
                raise MailFailure(ActionOutcome.UNAVAILABLE, f"autoconfig answered HTTP {answer.status_code}")
            config = etree.fromstring(answer.content, etree.XMLParser(resolve_entities=False, no_network=True))
            servers = MailServers(urlsplit(self.base_url).hostname or "127.0.0.1",
                                  int(config.findtext(".//outgoingServer/port") or 587),
                                  int(config.findtext(".//incomingServer/port") or 143))
            ca_pem = self.context.ca_pem_for("https:") or b""
            self._transport = MailTransport(servers, self.tls, lambda: client_ssl_context(ca_pem), self.defects)
        return self._transport

    # -- sending -----------------------------------------------------------------------------------------------
    def credentials(self, sender: SenderParams | None) -> Credentials:
        if sender is not None and sender.kind == "application":
            cert = self.context.certificate(sender.certificate_cn or "")
            return Credentials(sender.address, certificate=(str(cert.cert_path), str(cert.key_path)))
        if self.mailbox is None:
            raise MailFailure(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        return Credentials(sender.address if sender else self.mailbox, token=self.token)

    def send(self, params: SendParams) -> MssReport:
        credentials = self.credentials(params.sender)
        recipient = self.address_of(params.recipient)
        document = document_of(params.document) if params.document is not None else None
        msg = letter(credentials.mailbox, recipient, to_patient=params.recipient.kind == "patient",
                     document=document, receipt=params.receipt, defects=self.defects)
        self.transport().submit(credentials, [msg])
        return report(ActionOutcome.COMPLETED, f"sent to {recipient} ({msg['Message-ID']})")

    # -- receiving ---------------------------------------------------------------------------------------------
    def integrate(self) -> MssReport:
        credentials = self.credentials(None)
        try:
            received = self.transport().read_inbox(credentials)
        except imaplib.IMAP4.abort:  # the server ended the session (e.g. token expiry): sign in again, once
            if self.session is not None and self.psc is not None:
                self.session = self.psc.refresh(self.session)
            received = self.transport().read_inbox(credentials)
        integrated, refused, receipts = self._integrate(received, credentials.mailbox)
        if receipts:
            self.transport().submit(credentials, receipts)
        return report(ActionOutcome.COMPLETED, f"{len(received)} message(s) read; integrated: "
                                               f"{', '.join(integrated) or 'none'}; refused: "
                                               f"{', '.join(refused) or 'none'}; {len(receipts)} receipt(s) sent")

    def _integrate(self, received: list[EmailMessage], own: str) -> tuple[list[str], list[str], list[EmailMessage]]:
        """Integrate each document whose patient the software knows; the receipts asked for (an error receipt
        902 for an unknown patient)."""
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
            if msg.get(Header.RECEIPT_TO) is not None or self.defects.on("mssante_receipt_always"):
                receipts.append(receipt(msg, own, error=error))
        return integrated, refused, receipts
