"""Mail software nobody here wrote, each through a whole round on the MSSanté servers: STARTTLS, a login with a
PSC token, an IHE XDM letter sent as Claire (PS001), read as David (PS002), byte for byte. Each SASL form (the
initial response on the command line, or after an empty challenge) and each mechanism (XOAUTH2, OAUTHBEARER,
EXTERNAL with an application certificate).

Python's smtplib and imaplib, IMAPClient, imap-tools, aiosmtplib and aioimaplib (PyPI); Debian's msmtp and curl
(skipped, saying why, where they are not installed: ``.ci/run`` installs them)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import shutil
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import aioimaplib
import aiosmtplib
import pytest
from imap_tools import MailBoxStartTls
from imapclient import IMAPClient

from esante.harness.lab import Lab, xoauth2
from esante.harness.reference.parts import client_certificate
from tests.mssante_lab import (
    APP_MAILBOX,
    CLAIRE,
    CLAIRE_ID,
    DAVID,
    DAVID_ID,
    clean_fixture,  # noqa: F401 - the fixtures
    lab_fixture,  # noqa: F401
    oauthbearer,
    ports,
    structured_letter,
    wire,
)

XDM = "IHE_XDM.ZIP"


def archive(raw: bytes) -> bytes:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = next(p for p in msg.iter_attachments() if p.get_filename() == XDM)  # type: ignore[attr-defined]
    return part.get_payload(decode=True)


def assert_received(sent: EmailMessage, raw: bytes) -> None:
    """What David reads is what Claire sent, with the operator's trace field on top."""
    assert raw.startswith(b"Received: from ")
    assert email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"].strip() == sent["Message-ID"]
    assert archive(raw) == archive(wire(sent))


def smtplib_send(lab: Lab, mechanism: str, *, initial: bool) -> EmailMessage:
    sent = structured_letter()
    token = lab.psc_token(CLAIRE_ID).access_token
    response = xoauth2(CLAIRE, token) if mechanism == "XOAUTH2" else oauthbearer(CLAIRE, token)
    with smtplib.SMTP("127.0.0.1", ports(lab)[0], timeout=30) as client:
        client.starttls(context=lab.tls_context())
        client.ehlo()
        client.auth(mechanism, lambda challenge=None: response, initial_response_ok=initial)
        client.send_message(sent)
    return sent


def imaplib_read(lab: Lab, mechanism: str) -> bytes:
    """The newest INBOX message, read with imaplib (AUTHENTICATE, then the response after ``+``)."""
    token = lab.psc_token(DAVID_ID).access_token
    response = xoauth2(DAVID, token) if mechanism == "XOAUTH2" else oauthbearer(DAVID, token)
    imap = imaplib.IMAP4("127.0.0.1", ports(lab)[1], timeout=30)
    imap.starttls(ssl_context=lab.tls_context())
    assert imap.authenticate(mechanism, lambda _: response.encode())[0] == "OK"
    _, count = imap.select("INBOX")
    _, data = imap.fetch(count[0].decode(), "(BODY.PEEK[])")
    imap.logout()
    return data[0][1]


@pytest.mark.parametrize("initial", [True, False], ids=["initial-response", "two-step"])
@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_smtplib_and_imaplib(lab: Lab, mechanism: str, initial: bool) -> None:
    sent = smtplib_send(lab, mechanism, initial=initial)
    assert_received(sent, imaplib_read(lab, mechanism))


@pytest.mark.parametrize("initial", [True, False], ids=["initial-response", "two-step"])
def test_smtplib_external_with_the_application_certificate(lab: Lab, initial: bool) -> None:
    cert = client_certificate(lab.pki_dir, "MSS-APP-DPI")
    context = lab.tls_context()
    context.load_cert_chain(cert.cert_path, cert.key_path)
    sent = structured_letter(sender=APP_MAILBOX)
    with smtplib.SMTP("127.0.0.1", ports(lab)[0], timeout=30) as client:
        client.starttls(context=context)
        client.ehlo()
        client.auth("EXTERNAL", lambda challenge=None: APP_MAILBOX, initial_response_ok=initial)
        client.send_message(sent)
    imap = imaplib.IMAP4("127.0.0.1", ports(lab)[1], timeout=30)
    imap.starttls(ssl_context=context)
    assert imap.authenticate("EXTERNAL", lambda _: APP_MAILBOX.encode())[0] == "OK"
    imap.logout()
    assert_received(sent, imaplib_read(lab, "XOAUTH2"))


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_imapclient(lab: Lab, mechanism: str) -> None:
    sent = smtplib_send(lab, "XOAUTH2", initial=True)
    token = lab.psc_token(DAVID_ID).access_token
    with IMAPClient("127.0.0.1", port=ports(lab)[1], ssl=False, timeout=30) as client:
        client.starttls(lab.tls_context())
        if mechanism == "XOAUTH2":
            client.oauth2_login(DAVID, token)
        else:
            client.oauthbearer_login(DAVID, token)
        client.select_folder("INBOX")
        [uid] = client.search(["HEADER", "Message-ID", str(sent["Message-ID"])])
        fetched = client.fetch([uid], ["BODY.PEEK[]", "ENVELOPE", "BODYSTRUCTURE"])[uid]
        assert fetched[b"ENVELOPE"].subject.decode() == sent["Subject"]
        assert fetched[b"BODYSTRUCTURE"].is_multipart
        client.add_flags([uid], [b"\\Seen"])
        assert uid not in client.search(["UNSEEN"])
    assert_received(sent, fetched[b"BODY[]"])


def test_imap_tools(lab: Lab) -> None:
    sent = smtplib_send(lab, "OAUTHBEARER", initial=False)
    token = lab.psc_token(DAVID_ID).access_token
    with MailBoxStartTls("127.0.0.1", port=ports(lab)[1], ssl_context=lab.tls_context()).xoauth2(DAVID, token) as box:
        [found] = list(box.fetch(f'HEADER Message-ID "{sent["Message-ID"]}"', mark_seen=False))
        assert found.subject == sent["Subject"] and found.attachments[0].filename == XDM
        assert found.attachments[0].payload == archive(wire(sent))
        box.folder.set("Sent")  # a client saves what it sent: the special-use folders exist
        assert box.folder.exists("Trash") and box.folder.exists("Drafts")


async def _aioimaplib_starttls(client: aioimaplib.IMAP4, lab: Lab) -> None:
    """aioimaplib speaks implicit TLS only: STARTTLS is sent by hand, then the transport upgraded."""
    protocol = client.protocol
    answer = await protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop))
    assert answer.result == "OK"
    protocol.transport = await protocol.loop.start_tls(protocol.transport, protocol, lab.tls_context(),
                                                       server_hostname="localhost")


async def _aio_round(lab: Lab, sender_token: str, reader_token: str) -> tuple[EmailMessage, bytes]:
    sent = structured_letter()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=ports(lab)[0], start_tls=False, timeout=30)
    await smtp.connect()
    await smtp.starttls(tls_context=lab.tls_context())
    await smtp.auth_xoauth2(CLAIRE, sender_token)
    await smtp.send_message(sent)
    await smtp.quit()
    imap = aioimaplib.IMAP4(host="127.0.0.1", port=ports(lab)[1], timeout=30)
    await imap.wait_hello_from_server()
    await _aioimaplib_starttls(imap, lab)
    assert (await imap.xoauth2(DAVID, reader_token)).result == "OK"  # SASL-IR: the response on the line
    selected = await imap.select("INBOX")
    count = next(line.split()[0].decode() for line in selected.lines if line.endswith(b" EXISTS"))
    fetched = await imap.fetch(count, "(BODY.PEEK[])")
    await imap.logout()
    return sent, bytes(fetched.lines[1])


def test_aiosmtplib_and_aioimaplib(lab: Lab) -> None:
    tokens = lab.psc_token(CLAIRE_ID).access_token, lab.psc_token(DAVID_ID).access_token
    sent, raw = asyncio.run(_aio_round(lab, *tokens))
    assert_received(sent, raw)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package {name}; .ci/run installs it as root)")
    return found


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_msmtp(lab: Lab, mechanism: str, tmp_path: Path) -> None:
    msmtp = _tool("msmtp")
    sent = structured_letter()
    token = lab.psc_token(CLAIRE_ID).access_token
    (tmp_path / "token").write_text(token)
    run = subprocess.run([msmtp, "--host=127.0.0.1", f"--port={ports(lab)[0]}", "--tls=on", "--tls-starttls=on",
                          f"--tls-trust-file={lab.pki_dir / 'ca.crt.pem'}", "--tls-certcheck=off",
                          f"--auth={mechanism}", f"--user={CLAIRE}", f"--passwordeval=cat {tmp_path / 'token'}",
                          f"--from={CLAIRE}", DAVID], input=wire(sent), capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    assert_received(sent, imaplib_read(lab, "OAUTHBEARER"))


def test_curl_sends_and_reads(lab: Lab, tmp_path: Path) -> None:
    """curl's JWT is longer than its initial-response limit: it always logs in in two steps (OAUTHBEARER)."""
    curl = _tool("curl")
    sent = structured_letter()
    (tmp_path / "letter.eml").write_bytes(wire(sent))
    smtp, imap = ports(lab)
    common = ["--ssl-reqd", "--cacert", str(lab.pki_dir / "ca.crt.pem"), "--insecure", "--silent", "--show-error",
              "--max-time", "60"]
    send = subprocess.run([curl, f"smtp://127.0.0.1:{smtp}", *common, "--mail-from", CLAIRE, "--mail-rcpt", DAVID,
                           "--upload-file", str(tmp_path / "letter.eml"), "--user", CLAIRE,
                           "--oauth2-bearer", lab.psc_token(CLAIRE_ID).access_token], capture_output=True)
    assert send.returncode == 0, send.stderr.decode()
    token = lab.psc_token(DAVID_ID).access_token
    search = subprocess.run([curl, f"imap://127.0.0.1:{imap}/INBOX", *common, "--user", DAVID,
                             "--oauth2-bearer", token, "--request", f'SEARCH HEADER Message-ID "{sent["Message-ID"]}"'],
                            capture_output=True)
    assert search.returncode == 0, search.stderr.decode()
    [number] = search.stdout.decode().split()[2:]
    read = subprocess.run([curl, f"imap://127.0.0.1:{imap}/INBOX;MAILINDEX={number}", *common, "--user", DAVID,
                           "--oauth2-bearer", token], capture_output=True)
    assert read.returncode == 0, read.stderr.decode()
    assert_received(sent, read.stdout)


def test_the_autoconfig_points_at_the_servers_clients_use(lab: Lab) -> None:
    from xml.etree import ElementTree

    with lab.http() as http:
        config = ElementTree.fromstring(http.get(lab.url("mssante") + "/mail/config-v1.1.xml").content)
    servers = {s.get("type"): int(s.findtext("port") or 0) for s in config.iter()
               if s.tag in ("incomingServer", "outgoingServer")}
    assert servers == {"smtp": ports(lab)[0], "imap": ports(lab)[1]}
    assert {u.text for u in config.iter("username")} == {"%EMAILADDRESS%"}  # as the clients above log in
    assert {s.text for s in config.iter("socketType")} == {"STARTTLS"}
