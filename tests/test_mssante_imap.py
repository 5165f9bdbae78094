"""The MSSanté IMAP server as RFC 3501 and its extensions define it: per-session views of a shared mailbox,
FETCH and SEARCH checked against the RFC's own example message (``vectors/mssante/rfc3501_example.eml``, its
ENVELOPE is RFC 3501 §7.4.2's, byte for byte), special-use folders, literals, and hostile input answered BAD with
the session kept, no other session waiting. Independent parsers (IMAPClient's) read what the server writes."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from esante.harness.lab import Lab
from tests.mssante_lab import (
    CLAIRE,
    CLAIRE_ID,
    DAVID,
    DAVID_ID,
    RawImap,
    clean_fixture,  # noqa: F401 - the fixtures
    lab_fixture,  # noqa: F401
    ports,
    smtp_as,
    structured_letter,
)

EXAMPLE = (Path(__file__).parent / "vectors" / "mssante" / "rfc3501_example.eml").read_bytes()
#: RFC 3501 §7.4.2, the example ENVELOPE (its line breaks are the RFC's layout, not the protocol's)
RFC_ENVELOPE = (b'ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
                b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
                b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
                b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
                b'"<B27397-0100000@cac.washington.edu>")')
#: RFC 3501 §7.4.2's example BODY, with this message's sizes (the RFC's counts are of its own text)
RFC_BODY = re.compile(rb'BODY \(\("text" "plain" \("charset" "US-ASCII"\) NIL NIL "7BIT" 1150 23\)'
                      rb'\("text" "plain" \("charset" "US-ASCII" "name" "cc.diff"\) '
                      rb'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 3260 42\) "mixed"\)',
                      re.IGNORECASE)


def appended(lab: Lab) -> RawImap:
    """David's session, the RFC's example message appended to INBOX (message 2, after the seeded one)."""
    imap = RawImap(lab)
    imap.send(b"a0 APPEND INBOX {%d+}\r\n" % len(EXAMPLE) + EXAMPLE + b"\r\n")
    assert b"a0 OK [APPENDUID " in imap.tagged(b"a0")
    assert b"* 2 EXISTS" in imap.command(b"a1 SELECT INBOX")
    return imap


def test_fetch_answers_as_the_rfc_examples(lab: Lab) -> None:
    imap = appended(lab)
    answer = imap.command(b"a2 FETCH 2 (ENVELOPE BODY)")
    assert RFC_ENVELOPE in answer and RFC_BODY.search(answer)
    assert b"\\Seen" not in imap.command(b"a3 FETCH 2 (FLAGS BODY.PEEK[1]<0.20> BODY.PEEK[2.MIME])")
    parts = imap.command(b"a4 FETCH 2 (BODY[1]<0.20>)")  # not a PEEK: \Seen is set, and said (§6.4.5)
    assert b"BODY[1]<0> {20}\r\nLine 01 of the minut" in parts and b"FLAGS (\\Recent \\Seen)" in parts
    fields = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: Terry Gray <gray@cac.washington.edu>\r\n\r\n"
    headers = imap.command(b"a5 FETCH 2 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])")  # §6.4.5's example
    assert b"BODY[HEADER.FIELDS (DATE FROM)] {%d}\r\n" % len(fields) + fields in headers
    not_from = imap.command(b"a6 FETCH 2 (BODY.PEEK[HEADER.FIELDS.NOT (FROM TO CC)] RFC822.SIZE)")
    assert b"Subject: IMAP4rev1" in not_from and b"From:" not in not_from and b"RFC822.SIZE 5086" in not_from
    text = imap.command(b"a7 FETCH 2 (RFC822.TEXT)")
    assert text.count(b"------=_NextPart") == 3
    for macro, items in ((b"ALL", (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE")),
                         (b"FAST", (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE")),
                         (b"FULL", (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY ("))):
        answer = imap.command(b"m " + b"FETCH 2 " + macro)
        assert all(item in answer for item in items), (macro, answer)
    imap.close()


def test_an_independent_parser_reads_envelope_and_bodystructure(lab: Lab) -> None:
    with IMAPClient("127.0.0.1", port=ports(lab)[1], ssl=False, timeout=30) as client:
        client.starttls(lab.tls_context())
        client.oauth2_login(DAVID, lab.psc_token(DAVID_ID).access_token)
        client.append("INBOX", EXAMPLE)
        client.select_folder("INBOX")
        [uid] = client.search(["SUBJECT", "IMAP4rev1 WG"])
        found = client.fetch([uid], ["ENVELOPE", "BODYSTRUCTURE"])[uid]
        envelope, structure = found[b"ENVELOPE"], found[b"BODYSTRUCTURE"]
        assert envelope.date.year == 1996 and envelope.message_id == b"<B27397-0100000@cac.washington.edu>"
        assert [(a.name, a.mailbox) for a in envelope.cc] == [(None, b"minutes"), (b"John Klensin", b"KLENSIN")]
        assert structure.is_multipart and structure[0][1][:2] == (b"text", b"plain")
        seeded = client.fetch(client.search(["HEADER", "X-MSS-CODECDA", "11488-4"]), ["BODYSTRUCTURE"])
        [zip_part] = [p for p in next(iter(seeded.values()))[b"BODYSTRUCTURE"][0] if p[0] == b"application"]
        assert zip_part[8] == (b"attachment", (b"filename", b"IHE_XDM.ZIP"))  # RFC 3501 body-fld-dsp


def test_search_keys(lab: Lab) -> None:
    imap = appended(lab)
    for criteria, expected in ((b"FROM gray SUBJECT minutes", b"2"), (b"HEADER Message-Id B27397", b"2"),
                               (b"NOT FROM gray", b"1"), (b"OR FROM claire FROM gray", b"1 2"),
                               (b"SENTBEFORE 1-Jan-2000", b"2"), (b"SENTSINCE 1-Jan-2000", b"1"),
                               (b"SINCE 1-Jan-2000 2", b"2"), (b"2:*", b"2"), (b"LARGER 4000", b"2"),
                               (b'BODY "Line 01 of the minutes"', b"2"), (b"TEXT Klensin", b"2"), (b"UNSEEN", b"1 2"),
                               (b"CHARSET UTF-8 SUBJECT XDM", b"1")):
        answer = imap.command(b"s SEARCH " + criteria)
        assert answer.startswith(b"* SEARCH" + (b" " + expected if expected else b"") + b"\r\n"), (criteria, answer)
    uids = imap.command(b"u UID SEARCH ALL").split(b"\r\n")[0].split()[2:]
    assert imap.command(b"u2 UID SEARCH UID " + uids[-1]).startswith(b"* SEARCH " + uids[-1])
    imap.close()


def test_two_sessions_on_one_mailbox(lab: Lab) -> None:
    """RFC 3501 §5.5 and §7.4.1: a session keeps its numbers until it is told of an expunge, and is told."""
    first, second = appended(lab), RawImap(lab)
    assert b"* 2 EXISTS" in second.command(b"b1 SELECT INBOX")
    uid_1 = re.search(rb"UID (\d+)", second.command(b"b2 FETCH 1 (UID)")).group(1)  # type: ignore[union-attr]
    first.command(b"a2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert b"* 1 EXPUNGE" in first.command(b"a3 EXPUNGE")
    still = second.command(b"b3 FETCH 1 (UID)")  # not yet told: message 1 is still the one it knew
    assert b"UID " + uid_1 + b")" in still
    told = second.command(b"b4 NOOP")
    assert b"* 1 EXPUNGE" in told
    assert b"UID " + uid_1 not in second.command(b"b5 FETCH 1 (UID)")
    assert b"BAD" in second.command(b"b6 STORE 2 +FLAGS (\\Flagged)")  # past the end of its view now
    with smtp_as(lab, CLAIRE, CLAIRE_ID) as smtp:
        smtp.send_message(structured_letter())
    assert b"* 2 EXISTS" in second.command(b"b7 NOOP")
    first.close()
    second.close()


def test_new_mail_wakes_an_idle_client(lab: Lab) -> None:
    with IMAPClient("127.0.0.1", port=ports(lab)[1], ssl=False, timeout=30) as client:
        client.starttls(lab.tls_context())
        client.oauthbearer_login(DAVID, lab.psc_token(DAVID_ID).access_token)
        client.select_folder("INBOX")
        client.idle()
        with smtp_as(lab, CLAIRE, CLAIRE_ID) as smtp:
            smtp.send_message(structured_letter())
        responses = client.idle_check(timeout=10)
        client.idle_done()
    assert (2, b"EXISTS") in responses


def test_special_use_folders_append_to_sent_and_move_to_trash(lab: Lab) -> None:
    with IMAPClient("127.0.0.1", port=ports(lab)[1], ssl=False, timeout=30) as client:
        client.starttls(lab.tls_context())
        client.oauth2_login(DAVID, lab.psc_token(DAVID_ID).access_token)
        assert {b"SPECIAL-USE", b"MOVE", b"UIDPLUS", b"IDLE", b"NAMESPACE", b"UNSELECT", b"CHILDREN"} <= \
            set(client.capabilities())
        folders = {name: set(flags) for flags, _, name in client.list_folders()}
        assert {b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Archive"} == \
            {f for flags in folders.values() for f in flags if f in (b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Archive")}
        assert client.find_special_folder(b"\\Sent") == "Sent"
        answer = client.append("Sent", structured_letter(sender=DAVID, to=CLAIRE).as_bytes(), flags=[b"\\Seen"])
        assert b"[APPENDUID " in answer
        assert client.folder_status("Sent", [b"MESSAGES"])[b"MESSAGES"] == 1
        client.select_folder("INBOX")
        [uid] = client.search(["ALL"])
        client.move([uid], "Trash")
        assert client.search(["ALL"]) == []
        assert client.folder_status("Trash", [b"MESSAGES", b"UNSEEN"]) == {b"MESSAGES": 1, b"UNSEEN": 1}
        assert client.namespace().personal == (("", "/"),)


def test_literals_both_kinds(lab: Lab) -> None:
    imap = RawImap(lab)
    imap.send(b"a1 EXAMINE {5}\r\n")
    assert imap.until(b"\r\n").startswith(b"+ ")  # a synchronising literal: the server says go on
    imap.send(b"INBOX\r\n")
    assert b"a1 OK [READ-ONLY]" in imap.tagged(b"a1")
    assert b"a2 OK" in imap.command(b"a2 STATUS {5+}\r\nINBOX (MESSAGES UIDNEXT UNSEEN)")
    imap.close()


def test_hostile_input_is_answered_bad_and_the_session_kept(lab: Lab) -> None:
    imap, other = RawImap(lab), RawImap(lab)
    other.command(b"o1 SELECT INBOX")
    waits: list[float] = []
    done = threading.Event()

    def watch() -> None:  # another session's NOOP, all along
        while not done.is_set():
            started = time.perf_counter()
            other.command(b"o NOOP")
            waits.append(time.perf_counter() - started)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert imap.command(b"h1 NOOP " + b"x" * 70_000).startswith(b"h1 BAD Command line too long")
        assert imap.command(b"h2 SEARCH " + b"(" * 15_000 + b"ALL" + b")" * 15_000).startswith(
            b"h2 BAD Parentheses nested too deep")
        assert imap.command(b"h3 SELECT INBOX").endswith(b"h3 OK [READ-WRITE] Selected mailbox.\r\n")
        assert imap.command(b"h4 FETCH 99 (UID)").startswith(b"h4 BAD Invalid message sequence number")
        assert b"h5 BAD" in imap.command(b"h5 UNKNOWN-COMMAND")
        imap.send(b"h6 APPEND INBOX {4294967296+}\r\n")  # 4 GiB promised: refused, nothing read nor kept
        assert b"h6 BAD [TOOBIG]" in imap.tagged(b"h6")
    finally:
        done.set()
        watcher.join()
    assert max(waits) < 1.0, f"another session waited {max(waits):.3f} s"  # it was 12 s on the event loop
    imap.close()
    other.close()


def test_tls_comes_before_any_authentication(lab: Lab) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", ports(lab)[1]), timeout=10) as plain:
        greeting = plain.recv(1000)
        assert b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting and b"AUTH=" not in greeting
        plain.sendall(b"a1 AUTHENTICATE XOAUTH2 " + b"eA==" + b"\r\n")
        assert plain.recv(1000).startswith(b"a1 NO [PRIVACYREQUIRED]")
    imap = RawImap(lab)
    assert imap.command(b"a2 ENABLE UTF8=ACCEPT").startswith(b"* ENABLED\r\na2 OK")
    assert imap.command(b"a3 ID NIL").startswith(b'* ID ("name"')
    assert b"a4 OK" in imap.command(b"a4 LOGOUT")
    imap.close()


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_a_refused_token_gets_the_error_challenge_first(lab: Lab, mechanism: str) -> None:
    """RFC 7628 §3.2.2: ``+ <base64 JSON error>``, the client answers, then ``NO [AUTHENTICATIONFAILED]``."""
    import base64
    import json
    import socket

    from esante.harness.lab import xoauth2
    from tests.mssante_lab import b64, oauthbearer

    plain = socket.create_connection(("127.0.0.1", ports(lab)[1]), timeout=10)
    plain.recv(1000)
    plain.sendall(b"a1 STARTTLS\r\n")
    plain.recv(1000)
    with lab.tls_context().wrap_socket(plain, server_hostname="localhost") as tls:
        response = (xoauth2 if mechanism == "XOAUTH2" else oauthbearer)(DAVID, "forged.token.value")
        tls.sendall(f"a2 AUTHENTICATE {mechanism} {b64(response)}\r\n".encode())
        challenge = tls.recv(1000)
        assert challenge.startswith(b"+ ")
        error = json.loads(base64.b64decode(challenge[2:].strip()))
        assert error["status"] == ("invalid_token" if mechanism == "OAUTHBEARER" else "401")
        tls.sendall(b"AQ==\r\n")  # ^A, as the RFC's client says it gave up
        assert tls.recv(1000).startswith(b"a2 NO [AUTHENTICATIONFAILED]")
