"""The MSSanté mail servers with standard clients (smtplib, imaplib, IMAPClient): STARTTLS, PSC tokens and
certificates, the trust space, delivery through the one store, faults, and the evidence of every session."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from esante.harness.lab import Lab, xoauth2
from esante.harness.reference.parts import client_certificate
from esante.simulators.dataset import load_dataset
from esante.simulators.mssante.notes import MssNotes
from esante.simulators.psc.protocol import REVOKE_PATH
from tests.mssante_lab import (
    APP_MAILBOX,
    CLAIRE,
    CLAIRE_ID,
    DAVID,
    DAVID_ID,
    clean_fixture,  # noqa: F401 - the fixtures
    lab_fixture,  # noqa: F401
    sessions,
    smtp_as,
)

CLIENT = ("esante-reference-mss", load_dataset().oidc_client("esante-reference-mss").secret or "")


def letter(sender: str = CLAIRE, to: str = DAVID, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "Courrier"
    msg["Message-ID"] = f"<{time.time_ns()}@medecin.mssante.test>"
    msg["X-MSS-NIL"] = "TESTS/1.0"
    for name, value in headers.items():
        del msg[name.replace("_", "-")]
        msg[name.replace("_", "-")] = value
    msg.set_content("Cher confrère,\n")
    return msg


def smtp(lab: Lab, *, tls: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", lab.listener_ports("mssante")["smtp"], timeout=10)
    if tls:
        client.starttls(context=lab.tls_context())
        client.ehlo()
    return client


def test_sent_over_smtp_is_read_over_imap_by_the_recipient(lab: Lab, request: pytest.FixtureRequest) -> None:
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client:
        client.send_message(letter(Message_ID="<one@medecin.mssante.test>"))
    imap = imaplib.IMAP4("127.0.0.1", lab.listener_ports("mssante")["imap"])
    imap.starttls(ssl_context=lab.tls_context())
    token = lab.psc_token(DAVID_ID).access_token
    assert imap.authenticate("XOAUTH2", lambda _: xoauth2(DAVID, token).encode())[0] == "OK"
    assert imap.select("INBOX") == ("OK", [b"2"])  # the seeded report, then ours
    _, data = imap.fetch("2", "(BODY.PEEK[])")
    assert b"Message-ID: <one@medecin.mssante.test>" in data[0][1]
    _, unseen = imap.search(None, "UNSEEN")
    assert unseen == [b"1 2"]
    imap.logout()
    smtp_session = sessions(lab, request.node.name, "SMTP")[0]
    notes = MssNotes.read(smtp_session)
    assert notes.tls and notes.auth[0].outcome == "accepted"
    assert notes.messages[0].message_id == "<one@medecin.mssante.test>"
    assert b"STARTTLS" in smtp_session.request_body and b"235 2.7.0" in smtp_session.response_body
    commands = MssNotes.read(sessions(lab, request.node.name, "IMAP")[0]).commands
    assert commands.index("STARTTLS") < commands.index("AUTHENTICATE") < commands.index("SELECT")


def test_imapclient_reads_with_oauthbearer(lab: Lab) -> None:
    token = lab.psc_token(DAVID_ID).access_token
    with IMAPClient("127.0.0.1", port=lab.listener_ports("mssante")["imap"], ssl=False, timeout=10) as client:
        client.starttls(lab.tls_context())
        client.oauthbearer_login(DAVID, token)
        client.select_folder("INBOX")
        uids = client.search(["UNSEEN"])
        fetched = client.fetch(uids, ["RFC822.SIZE", "FLAGS", "BODY.PEEK[]"])
        body = fetched[uids[0]][b"BODY[]"]
        assert b"IHE_XDM.ZIP" in body and b"X-MSS-CODECDA: 11488-4" in body
        client.add_flags(uids, [b"\\Seen"])
        assert client.search(["UNSEEN"]) == []


def smtp_with_certificate(lab: Lab, common_name: str) -> smtplib.SMTP:
    """An SMTP session upgraded with STARTTLS, presenting a client certificate of this CN from the test CA."""
    cert = client_certificate(lab.pki_dir, common_name)
    context = lab.tls_context()
    context.load_cert_chain(cert.cert_path, cert.key_path)
    client = smtp(lab, tls=False)
    client.starttls(context=context)
    client.ehlo()
    return client


def test_application_mailbox_opens_with_its_certificate(lab: Lab) -> None:
    with smtp_with_certificate(lab, "MSS-APP-DPI") as client:
        client.auth("EXTERNAL", lambda challenge=None: APP_MAILBOX)
        client.send_message(letter(sender=APP_MAILBOX))
    with smtp_with_certificate(lab, "ANOTHER-APP") as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("EXTERNAL", lambda challenge=None: APP_MAILBOX)
        assert refused.value.smtp_code == 535


def _refused_smtp(lab: Lab, address: str, token: str) -> Any:
    with smtp(lab) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.auth("XOAUTH2", lambda challenge=None: xoauth2(address, token))
    return refused.value


def test_revoked_foreign_and_forged_tokens_are_refused(lab: Lab, request: pytest.FixtureRequest) -> None:
    tokens = lab.psc_token(CLAIRE_ID)
    foreign = _refused_smtp(lab, DAVID, tokens.access_token)  # Claire's token for David's mailbox
    assert (foreign.smtp_code, foreign.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    forged = _refused_smtp(lab, CLAIRE, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
    assert forged.smtp_code == 535
    with lab.http() as http:
        assert http.post(lab.url("psc") + REVOKE_PATH, auth=CLIENT,
                         data={"token": tokens.access_token}).status_code == 200
    assert _refused_smtp(lab, CLAIRE, tokens.access_token).smtp_code == 535
    imap = imaplib.IMAP4("127.0.0.1", lab.listener_ports("mssante")["imap"])
    imap.starttls(ssl_context=lab.tls_context())
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.authenticate("XOAUTH2", lambda _: xoauth2(CLAIRE, tokens.access_token).encode())
    imap.logout()
    reasons = [a.reason for s in sessions(lab, request.node.name, "SMTP") for a in MssNotes.read(s).auth]
    assert any("holds no mailbox" in r for r in reasons) and any("not active" in r for r in reasons)


def test_tls_is_required_before_authentication(lab: Lab) -> None:
    with smtp(lab, tls=False) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        code, text = client.docmd("AUTH", "XOAUTH2 " + base64.b64encode(b"x").decode())
        assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")
    imap = imaplib.IMAP4("127.0.0.1", lab.listener_ports("mssante")["imap"])
    assert "LOGINDISABLED" in imap.capabilities and "AUTH=XOAUTH2" not in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        imap.authenticate("XOAUTH2", lambda _: b"x")
    imap.logout()


def test_trust_space_and_sender_ownership(lab: Lab) -> None:
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as outside:
            client.send_message(letter(to="someone@gmail.example.com"))
        assert outside.value.recipients["someone@gmail.example.com"][0] == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
            client.send_message(letter(to="nobody@medecin.mssante.test"))
        assert unknown.value.recipients["nobody@medecin.mssante.test"] == (550, b"5.1.1 No such MSSante mailbox")
        with pytest.raises(smtplib.SMTPSenderRefused) as spoofed:
            client.send_message(letter(sender=DAVID))
        assert spoofed.value.smtp_code == 553
        assert client.send_message(letter(to="285046938321480@patient.mssante.fr", X_MSS_MES="FIN")) == {}


def test_faults_busy_mailbox_full_and_drop(lab: Lab, request: pytest.FixtureRequest) -> None:
    mss = lab.clients["mssante"]
    from esante.simulators.core.faults import FaultRule

    mss.set_faults([FaultRule(kind="service_fault", fault_code="server_busy", path="/smtp", count=1)])
    with pytest.raises(smtplib.SMTPConnectError) as busy:
        smtplib.SMTP("127.0.0.1", lab.listener_ports("mssante")["smtp"], timeout=10)
    assert busy.value.smtp_code == 421
    mss.set_faults([FaultRule(kind="service_fault", fault_code="mailbox_full", path="/smtp", count=1)])
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as full:
        client.send_message(letter())
    assert full.value.recipients[DAVID][0] == 452
    mss.set_faults([FaultRule(kind="drop", path="/smtp", count=1)])
    client = smtp_as(lab, CLAIRE, CLAIRE_ID)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.send_message(letter())
    outcomes = [(s.status, s.outcome) for s in sessions(lab, request.node.name, "SMTP")]
    assert (421, "answered") in outcomes and (452, "answered") in outcomes and outcomes[-1][1] == "dropped"


def test_message_findings_are_evidence(lab: Lab, request: pytest.FixtureRequest) -> None:
    msg = letter(to="285046938321480@patient.mssante.fr")
    del msg["X-MSS-NIL"]
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client:
        client.send_message(msg)
    session = sessions(lab, request.node.name, "SMTP")[0]
    assert session.notes["messages"][0]["findings"][0]["rule"] == "headers.nil"  # the evidence keeps the JSON keys
    found = MssNotes.read(session).messages[0].findings
    assert {(f.rule, f.requirement, f.location) for f in found} == {
        ("headers.nil", "MSS-HDR-01", "X-MSS-NIL"), ("headers.mes_fin", "MSS-HDR-02", "X-MSS-MES")}


def test_an_expired_token_is_refused(lab: Lab) -> None:
    from esante.simulators.core.faults import FaultRule
    from esante.simulators.psc.protocol import TOKEN_PATH

    lab.clients["psc"].set_faults([FaultRule(kind="behaviour", fault_code="short_lifetimes", path=TOKEN_PATH)])
    token = lab.psc_token(CLAIRE_ID).access_token  # lives 2 seconds
    time.sleep(2.2)
    assert _refused_smtp(lab, CLAIRE, token).smtp_code == 535


def test_token_expiry_mid_session_ends_the_imap_session(lab: Lab, request: pytest.FixtureRequest) -> None:
    from esante.simulators.core.faults import FaultRule

    lab.clients["mssante"].set_faults([FaultRule(kind="behaviour", fault_code="token_expires_mid_session",
                                                     path="/imap", count=1)])
    token = lab.psc_token(DAVID_ID).access_token
    imap = imaplib.IMAP4("127.0.0.1", lab.listener_ports("mssante")["imap"])
    imap.starttls(ssl_context=lab.tls_context())
    imap.authenticate("XOAUTH2", lambda _: xoauth2(DAVID, token).encode())
    with pytest.raises(imaplib.IMAP4.abort, match="expired"):
        imap.select("INBOX")
    assert MssNotes.read(sessions(lab, request.node.name, "IMAP")[0]).token_expired_mid_session is True


def test_listeners_live_and_die_with_the_http_server(tmp_path: Path) -> None:
    """The core hook: ServerHandle starts the simulator's own listeners before serving and stops them after."""
    import socket

    from esante.simulators.core.app import create_app
    from esante.simulators.core.runtime import SimulatorSettings
    from esante.simulators.core.server import ServerHandle
    from esante.simulators.dataset import load_dataset
    from esante.simulators.mssante import MssanteSimulator

    simulator = MssanteSimulator(load_dataset())
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite")
    with ServerHandle(create_app(simulator, settings)):
        assert simulator.mail is not None
        port = simulator.mail.smtp_port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            assert connection.recv(100).startswith(b"220 ")
    assert simulator.mail is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_session_transcripts_are_bounded() -> None:
    from esante.simulators.core.journal import Session
    from esante.simulators.core.notes import Notes

    session = Session(None, "SMTP", None, None, None, Notes(), limit=10)  # type: ignore[arg-type]
    session.heard(b"0123456789ABCDEF")
    assert bytes(session.client_bytes) == b"0123456789" and session.truncated


def test_starttls_unavailable_keeps_tls_required(lab: Lab) -> None:
    from esante.simulators.core.faults import FaultRule

    lab.clients["mssante"].set_faults([FaultRule(kind="behaviour", fault_code="starttls_unavailable",
                                                     path="/smtp")])
    with smtplib.SMTP("127.0.0.1", lab.listener_ports("mssante")["smtp"], timeout=10) as client:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            client.starttls(context=lab.tls_context())
        assert refused.value.smtp_code == 454
        assert client.docmd("MAIL", f"FROM:<{CLAIRE}>")[0] == 530
