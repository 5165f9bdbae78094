"""The MSSanté submission server exact to the RFCs: EHLO keywords, enhanced status codes on every reply
(RFC 2034), STARTTLS once (RFC 3207), RFC 4954's two login forms and 501, RFC 7628's error challenge, the
``Received:`` trace field (RFC 5321 §4.4), a mailbox named twice delivered once; and hostile messages refused
for good (554 5.6.0, the reason said) while every other session goes on."""

from __future__ import annotations

import base64
import imaplib
import json
import re
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

from esante.harness.lab import Lab, xoauth2
from esante.simulators.mssante.notes import MssNotes
from tests.mssante_lab import (
    CLAIRE,
    CLAIRE_ID,
    DAVID,
    DAVID_ID,
    RawImap,
    clean_fixture,  # noqa: F401 - the fixtures
    lab_fixture,  # noqa: F401
    oauthbearer,
    ports,
    sessions,
    smtp_as,
    structured_letter,
)

REPLY = re.compile(rb"^(\d{3})[ -](.*)$")
ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3} ")


def plain_smtp(lab: Lab) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", ports(lab)[0], timeout=30)
    client.starttls(context=lab.tls_context())
    client.ehlo()
    return client


def test_ehlo_keywords_and_enhanced_codes_on_every_reply(lab: Lab, request: pytest.FixtureRequest) -> None:
    with smtplib.SMTP("127.0.0.1", ports(lab)[0], timeout=30) as client:
        client.ehlo()
        assert {"pipelining", "enhancedstatuscodes", "8bitmime", "size", "starttls"} <= set(client.esmtp_features)
        assert "auth" not in client.esmtp_features  # not before TLS
        assert client.docmd("MAIL", f"FROM:<{CLAIRE}>") == (530, b"5.7.0 Must issue a STARTTLS command first")
        client.starttls(context=lab.tls_context())
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["EXTERNAL", "OAUTHBEARER", "XOAUTH2"]
        assert "starttls" not in client.esmtp_features
        assert client.docmd("AUTH", "PLAIN AGNsYWlyZQBwYXNz")[0] == 504
        client.auth("XOAUTH2", lambda challenge=None: xoauth2(CLAIRE, lab.psc_token(CLAIRE_ID).access_token))
        client.noop()
        client.docmd("VRFY", CLAIRE)
        client.docmd("RSET")
        client.send_message(structured_letter())
    transcript = sessions(lab, request.node.name, "SMTP")[0].response_body.split(b"\r\n")
    replies = [REPLY.match(line) for line in transcript if line]
    codes = [(m.group(1), m.group(2)) for m in replies if m]
    ehlo = {b"smtp.mssante.test", b"HELP", b"8BITMIME", b"STARTTLS", b"PIPELINING", b"ENHANCEDSTATUSCODES"}
    ehlo_lines = [t for _, t in codes if t in ehlo or t.startswith((b"SIZE ", b"AUTH "))]
    assert len(ehlo_lines) == 14  # two EHLOs, before and after TLS
    without = [(c, t) for c, t in codes[1:]  # the greeting carries none (RFC 2034 §3), nor EHLO's lines
               if not c.startswith(b"3") and t not in ehlo_lines and not ENHANCED.match(t)]
    assert without == [] and len(codes) - len(ehlo_lines) > 10


def test_starttls_inside_tls_is_refused_and_the_session_goes_on(lab: Lab) -> None:
    with plain_smtp(lab) as client:
        assert client.docmd("STARTTLS") == (554, b"5.5.1 Error: TLS already active")
        assert client.noop() == (250, b"2.0.0 OK")


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER", "EXTERNAL"])
def test_undecodable_responses_get_501_in_both_forms(lab: Lab, mechanism: str) -> None:
    with plain_smtp(lab) as client:
        assert client.docmd("AUTH", f"{mechanism} not*base64") == (501, b"5.5.2 Cannot decode the response: "
                                                                        b"not base64")
        assert client.docmd("AUTH", mechanism)[0] == 334
        assert client.docmd("%%%")[0] == 501


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("initial", [True, False], ids=["initial-response", "two-step"])
def test_a_refused_token_gets_the_error_challenge_then_535(lab: Lab, mechanism: str, initial: bool) -> None:
    response = (xoauth2 if mechanism == "XOAUTH2" else oauthbearer)(CLAIRE, "forged.token.value")
    encoded = base64.b64encode(response.encode()).decode()
    with plain_smtp(lab) as client:
        if initial:
            code, challenge = client.docmd("AUTH", f"{mechanism} {encoded}")
        else:
            assert client.docmd("AUTH", mechanism) == (334, b"")
            code, challenge = client.docmd(encoded)
        assert code == 334
        assert json.loads(base64.b64decode(challenge))["status"] == ("invalid_token" if mechanism == "OAUTHBEARER"
                                                                     else "401")
        assert client.docmd("AQ==") == (535, b"5.7.8 Authentication credentials invalid")


def test_received_trace_field_and_recipients_named_twice(lab: Lab, request: pytest.FixtureRequest) -> None:
    sent = structured_letter()
    twice = [DAVID, DAVID.replace("chu-fictif-paris", "CHU-FICTIF-PARIS"), DAVID.upper()]
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client:
        client.sendmail(CLAIRE, twice, sent.as_bytes())
    [message] = MssNotes.read(sessions(lab, request.node.name, "SMTP")[0]).messages
    assert message.to == [DAVID]
    imap = imaplib.IMAP4("127.0.0.1", ports(lab)[1], timeout=30)
    imap.starttls(ssl_context=lab.tls_context())
    imap.authenticate("XOAUTH2", lambda _: xoauth2(DAVID, lab.psc_token(DAVID_ID).access_token).encode())
    assert imap.select("INBOX")[1] == [b"2"]  # the seeded report, and this one once
    _, data = imap.fetch("2", "(BODY.PEEK[HEADER.FIELDS (RECEIVED)])")
    imap.logout()
    received = data[0][1].decode()
    assert re.match(r"Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby smtp\.mssante\.test \(esante MSSante ESMTP\) "
                    rf"with ESMTPSA id {message.queue_id}\r\n\tfor <{re.escape(DAVID)}>;\r\n\t\w{{3}}, ", received)


def _hostile(kind: str) -> bytes:
    head = f"From: {CLAIRE}\r\nTo: {DAVID}\r\nSubject: x\r\nX-MSS-NIL: T/1\r\nMessage-ID: <{kind}@x>\r\n"
    if kind == "parameters":  # 20,000 Content-Type parameters, folded: 300 kB
        return (head + "Content-Type: text/plain" + "".join(f";\r\n p{i}=v{i}" for i in range(20_000))
                + "\r\n\r\nbody\r\n").encode()
    nested = head.encode()  # 1,500 nested multiparts
    for level in range(1500):
        nested += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
    return nested + b"Content-Type: text/plain\r\n\r\nx\r\n" + b"".join(b"--b%d--\r\n" % i for i in range(1499, -1, -1))


@pytest.mark.parametrize(("kind", "reason"), [("parameters", "Content-Type field of"),
                                              ("nesting", "1500 multipart containers")])
def test_hostile_messages_are_refused_for_good_while_others_go_on(lab: Lab, kind: str, reason: str,
                                                                  request: pytest.FixtureRequest) -> None:
    other_smtp, other_imap = smtp_as(lab, CLAIRE, CLAIRE_ID), RawImap(lab)
    waits: list[float] = []
    done = threading.Event()

    def watch() -> None:  # other sessions, SMTP and IMAP, all along
        while not done.is_set():
            started = time.perf_counter()
            other_smtp.noop()
            other_imap.command(b"o NOOP")
            waits.append(time.perf_counter() - started)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with smtp_as(lab, CLAIRE, CLAIRE_ID) as client, pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(CLAIRE, [DAVID], _hostile(kind))
    finally:
        done.set()
        watcher.join()
    assert refused.value.smtp_code == 554 and refused.value.smtp_error.startswith(b"5.6.0 Message refused: ")
    assert reason.encode() in refused.value.smtp_error
    assert max(waits) < 1.0, f"another session waited {max(waits):.3f} s"  # it was 12 s on the event loop
    other_smtp.quit()
    other_imap.close()
    refusals = [r for s in sessions(lab, request.node.name, "SMTP") for r in MssNotes.read(s).refused]
    assert [r.reply for r in refusals] == ["554"] and reason in refusals[0].reason


def test_a_message_with_a_hostile_archive_is_judged_not_refused(lab: Lab, request: pytest.FixtureRequest) -> None:
    """A zip bomb inside a well-formed message is a finding (the software sent it), read in a worker process."""
    from pathlib import Path

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["X-MSS-NIL"] = CLAIRE, DAVID, "XDM/1.0/DDM+Bombe", "T/1"
    msg.set_content("x")
    bomb = (Path(__file__).parent / "vectors" / "mssante" / "bomb.zip").read_bytes()
    msg.add_attachment(bomb, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    started = time.perf_counter()
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as client:
        client.send_message(msg)
    assert time.perf_counter() - started < 5
    [message] = MssNotes.read(sessions(lab, request.node.name, "SMTP")[0]).messages
    assert message.archive_refused and "zip bomb" in message.archive_refused
