"""Fuzzing MSSanté's mail servers over real sockets (tests/fuzz.py has the HTTP property; this is its mail form):
for any stream of SMTP or IMAP commands, arguments, literals, SASL payloads and MIME bodies, every command is
answered in the protocol's own form (an SMTP reply with its enhanced status code, an IMAP tagged answer or a BYE)
within :data:`~tests.fuzz.BOUND_SECONDS`, and the session is journaled when it ends. The stall outsiders found
(one message freezing every mail session for 13 s) is the first regression example."""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from esante.harness.lab import Lab, xoauth2
from tests.fuzz import AWKWARD, BOUND_SECONDS, TEXT
from tests.mssante_lab import (
    CLAIRE,
    CLAIRE_ID,
    DAVID,
    DAVID_ID,
    b64,
    clean_fixture,  # noqa: F401 - the fixtures
    lab_fixture,  # noqa: F401
    oauthbearer,
    ports,
    structured_letter,
    wire,
)

SMTP_REPLY = re.compile(rb"^([2-5]\d\d)([ -])(.*)\r\n$", re.S)
ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")


def _line(text: str) -> bytes:
    """One command line: what a client can put between CRLFs (a bare LF now and then, which servers must bear)."""
    return text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")


class Wire:
    """A mail connection spoken by hand, every read bounded: the property's clock."""

    def __init__(self, port: int) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(("127.0.0.1", port),
                                                                          timeout=BOUND_SECONDS)
        self.buffer = b""

    def line(self) -> bytes:
        deadline = time.monotonic() + BOUND_SECONDS
        while b"\r\n" not in self.buffer:
            assert time.monotonic() < deadline, f"no answer within {BOUND_SECONDS} s; got {self.buffer[:200]!r}"
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError(self.buffer)
            self.buffer += data
        found, _, self.buffer = self.buffer.partition(b"\r\n")
        return found + b"\r\n"

    def tls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()


# -- SMTP --------------------------------------------------------------------------------------------------------

def smtp_reply(wire_: Wire, *, exempt: bool = False) -> int:
    """Read one (possibly multi-line) reply; each line in RFC 5321's form, a refusal (4xx, 5xx) with its RFC 2034
    enhanced code, unless ``exempt`` (RFC 2034 section 3: the greeting and any answer to HELO or EHLO)."""
    while True:
        line = wire_.line()
        match = SMTP_REPLY.match(line)
        assert match, line
        code = int(match.group(1))
        assert code < 400 or exempt or ENHANCED.match(match.group(3)), line
        if match.group(2) == b" ":
            return code


def smtp_command(wire_: Wire, line: bytes) -> int:
    wire_.sock.sendall(line + b"\r\n")
    return smtp_reply(wire_, exempt=line[:4].upper() in (b"EHLO", b"HELO"))


def dot_stuffed(body: bytes) -> bytes:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b"\r\n.\r\n"


SMTP_VERBS = st.sampled_from(["EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "EXPN", "HELP",
                              "AUTH", "BDAT", "STARTTLS", "ETRN", "XCLIENT", "mail", "ehlo", ""])
SMTP_ARGS = st.sampled_from([f"FROM:<{CLAIRE}>", f"TO:<{DAVID}>", "FROM:<>", "TO:<postmaster>", "FROM:<a@b",
                             f"FROM:<{CLAIRE}> SIZE=999999999999999", f"FROM:<{CLAIRE}> BODY=8BITMIME SMTPUTF8",
                             f"TO:<{DAVID}> NOTIFY=SUCCESS ORCPT=rfc822;x", "XOAUTH2", "OAUTHBEARER =", "EXTERNAL",
                             "PLAIN AGNsYWlyZQBwYXNz", "XOAUTH2 " + "A" * 3000, "client.test", "[127.0.0.1]",
                             "10 LAST"]) | TEXT
SMTP_LINES = st.lists(st.tuples(SMTP_VERBS, SMTP_ARGS).map(lambda c: _line(f"{c[0]} {c[1]}".strip())) |
                      st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                      min_size=1, max_size=8)


def _smtp_session(lab: Lab, lines: list[bytes], *, tls: bool, token: str | None = None,
                  body: bytes | None = None) -> None:
    """Play ``lines`` (after STARTTLS and AUTH when asked); a 354 is followed by ``body``. The server may end
    the session, but only after saying so (221 or 421)."""
    wire_ = Wire(ports(lab)[0])
    try:
        assert smtp_reply(wire_, exempt=True) == 220
        if tls:
            assert smtp_command(wire_, b"EHLO fuzz.test") == 250
            assert smtp_command(wire_, b"STARTTLS") == 220
            wire_.tls(lab.tls_context())
        if token is not None:
            assert smtp_command(wire_, b"EHLO fuzz.test") == 250
            assert smtp_command(wire_, b"AUTH XOAUTH2 " + b64(xoauth2(CLAIRE, token)).encode()) == 235
        for line in lines:
            code = smtp_command(wire_, line)
            if code == 354:
                code = smtp_command(wire_, dot_stuffed(body or b"Subject: x\r\n\r\nx")[:-2])
            if code == 220 and line.upper().startswith(b"STARTTLS"):  # the server now waits for a handshake
                wire_.tls(lab.tls_context())
            if code in (221, 421):
                return
    finally:
        wire_.close()


@pytest.fixture
def tokens(lab: Lab) -> dict[str, str]:
    """One PSC token per professional for each test (each example must not sign in again; every test resets)."""
    return {CLAIRE: lab.psc_token(CLAIRE_ID).access_token, DAVID: lab.psc_token(DAVID_ID).access_token}


@given(lines=SMTP_LINES, tls=st.booleans())
@example(lines=[b"EHLO x", b"MAIL FROM:<a@b> SIZE=1e309", b"RCPT TO:<" + b"x" * 5000 + b">"], tls=False)
@example(lines=[b"AUTH XOAUTH2", b"*", b"AUTH OAUTHBEARER " + b"=" * 4000], tls=True)
def test_smtp_answers_any_command_stream_in_its_own_form(lab: Lab, lines: list[bytes], tls: bool) -> None:
    with journaled(lab):
        _smtp_session(lab, lines, tls=tls)


SASL_PAYLOADS = (st.binary(max_size=300).map(base64.b64encode) |
                 st.sampled_from([b"", b"=", b"*", b"!!!", b"AAAA====", b"A" * 9000]) |
                 st.tuples(TEXT, TEXT).map(lambda p: b64(oauthbearer(p[0], p[1])).encode()) |
                 st.tuples(TEXT, AWKWARD).map(lambda p: b64(xoauth2(p[0], p[1])).encode()))


@given(mechanism=st.sampled_from([b"XOAUTH2", b"OAUTHBEARER", b"EXTERNAL", b"PLAIN", b"LOGIN", b"xoauth2", b"X"]),
       payload=SASL_PAYLOADS, initial=st.booleans(), follow=st.lists(SASL_PAYLOADS, max_size=2))
def test_smtp_answers_any_sasl_payload(lab: Lab, mechanism: bytes, payload: bytes, initial: bool,
                                       follow: list[bytes]) -> None:
    """RFC 4954: an initial response or a 334 challenge answered, then whatever the client says next."""
    command = b"AUTH " + mechanism + (b" " + payload if initial else b"")
    with journaled(lab):
        _smtp_session(lab, [command, *([] if initial else [payload]), *follow, b"QUIT"], tls=True)


def _mime_bodies() -> st.SearchStrategy[bytes]:
    letter = wire(structured_letter())
    cut = st.integers(0, len(letter))
    return (cut.map(lambda n: letter[:n]) |
            st.tuples(cut, st.binary(min_size=1, max_size=200)).map(lambda p: letter[:p[0]] + p[1] + letter[p[0]:]) |
            st.tuples(st.sampled_from([b"Content-Type: ", b"Content-Transfer-Encoding: ", b"MIME-Version: ",
                                       b"Content-Disposition: ", b"From: ", b"To: ", b"Date: "]), TEXT).map(
                lambda p: p[0] + _line(p[1]) + b"\r\n" + letter) |
            st.sampled_from([b"", b"\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" * 200,
                             b"Content-Type: multipart/mixed\r\n\r\n" + b"x" * 70000,
                             letter.replace(b"base64", b"quoted-printable"),
                             letter.replace(b"boundary=", b"boundary=\"\"; x=")]))


@given(body=_mime_bodies())
def test_smtp_answers_any_mime_body(lab: Lab, tokens: dict[str, str], body: bytes) -> None:
    lines = [f"MAIL FROM:<{CLAIRE}>".encode(), f"RCPT TO:<{DAVID}>".encode(), b"DATA", b"QUIT"]
    with journaled(lab):
        _smtp_session(lab, lines, tls=True, token=tokens[CLAIRE], body=body)


# -- IMAP --------------------------------------------------------------------------------------------------------

IMAP_TAGGED = re.compile(rb"^(\S+) (OK|NO|BAD)( |\r\n)")


def imap_command(wire_: Wire, tag: bytes, parts: list[bytes]) -> bytes:
    """Send a command whose ``parts`` after the first are synchronizing literals; the tagged answer, or the BYE
    the server closed with."""
    wire_.sock.sendall(parts[0] + (b" {%d}\r\n" % len(parts[1]) if len(parts) > 1 else b"\r\n"))
    for index, literal in enumerate(parts[1:], start=2):
        line = wire_.line()
        if not line.startswith(b"+"):  # the literal refused: this is the command's answer
            return _until_tagged(wire_, tag, line)
        following = b" {%d}\r\n" % len(parts[index]) if index < len(parts) else b"\r\n"
        wire_.sock.sendall(literal + following)
    return _until_tagged(wire_, tag, wire_.line())


def _until_tagged(wire_: Wire, tag: bytes, line: bytes) -> bytes:
    while True:
        if line.startswith(b"* BYE"):
            return b"BYE"
        if line.startswith(b"+"):  # a SASL challenge (AUTHENTICATE without its response): cancel (RFC 3501)
            wire_.sock.sendall(b"*\r\n")
        elif not line.startswith(b"* "):  # not untagged data nor a continuation: the answer
            match = IMAP_TAGGED.match(line)
            assert match and match.group(1) == tag, line  # in the form, and to this command
            return match.group(2)
        line = wire_.line()


IMAP_VERBS = st.sampled_from(["CAPABILITY", "NOOP", "LOGOUT", "LOGIN", "AUTHENTICATE", "SELECT", "EXAMINE",
                              "LIST", "LSUB", "STATUS", "APPEND", "FETCH", "UID FETCH", "SEARCH", "UID SEARCH",
                              "STORE", "COPY", "MOVE", "EXPUNGE", "CLOSE", "ENABLE", "NAMESPACE", "ID",
                              "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "GETQUOTAROOT", "select", ""])
IMAP_ARGS = st.sampled_from(["INBOX", "\"INBOX\"", "\"\" *", "1:* (FLAGS BODY[])", "1:* BODY.PEEK[HEADER]",
                             "* (BODYSTRUCTURE)", "4294967296 FLAGS", "1 +FLAGS (\\Deleted)", "ALL", "CHARSET x ALL",
                             "SINCE 30-Feb-2024", "(((((((((((", "INBOX (MESSAGES UIDNEXT)", "XOAUTH2 =",
                             "PLAIN", "a b", "NIL", "\"unterminated"]) | TEXT.map(lambda t: t.replace("{", "("))
#: IDLE and a literal announced in the arguments wait for the client, as they must: literals are sent as parts.
IMAP_COMMANDS = st.lists(st.tuples(IMAP_VERBS, IMAP_ARGS, st.lists(st.binary(max_size=60), max_size=2)),
                         min_size=1, max_size=6)


def _imap_session(lab: Lab, commands: list[tuple[str, str, list[bytes]]], token: str | None) -> None:
    wire_ = Wire(ports(lab)[1])
    try:
        assert wire_.line().startswith(b"* OK")
        assert imap_command(wire_, b"s0", [b"s0 STARTTLS"]) == b"OK"
        wire_.tls(lab.tls_context())
        if token is not None:
            answer = imap_command(wire_, b"s1", [b"s1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(DAVID, token)).encode()])
            assert answer == b"OK"
        for number, (verb, argument, literals) in enumerate(commands):
            tag = b"f%d" % number
            if imap_command(wire_, tag, [_line(f"{tag.decode()} {verb} {argument}".rstrip()), *literals]) == b"BYE":
                return
    finally:
        wire_.close()


@given(commands=IMAP_COMMANDS, signed_in=st.booleans())
@example(commands=[("APPEND", "INBOX", [b"x" * 60, b"y"]), ("FETCH", "1:* BODY[]", [])], signed_in=True)
@example(commands=[("AUTHENTICATE", "XOAUTH2", [b"\x00" * 60])], signed_in=False)
@example(commands=[("SELECT", "INBOX", []), ("UID SEARCH", "ALL", [])], signed_in=True)  # untagged * OK lines
def test_imap_answers_any_command_stream_in_its_own_form(lab: Lab, tokens: dict[str, str],
                                                         commands: list[tuple[str, str, list[bytes]]],
                                                         signed_in: bool) -> None:
    with journaled(lab):
        _imap_session(lab, commands, tokens[DAVID] if signed_in else None)


# -- the journal -------------------------------------------------------------------------------------------------

class journaled:  # read as a phrase: ``with journaled(lab):``
    """The block's session(s) journaled once they end: at least one more exchange response within the bound."""

    def __init__(self, lab: Lab) -> None:
        self.store = lab.store

    def __enter__(self) -> None:
        self.since = self.store.last_seq()

    def __exit__(self, *failure: object) -> None:
        if failure[0] is not None:
            return
        deadline = time.monotonic() + BOUND_SECONDS
        while not self.store.records(kind="exchange.response", since=self.since):
            assert time.monotonic() < deadline, "the session was not journaled"
            time.sleep(0.05)


def test_one_hostile_message_does_not_stall_other_sessions(lab: Lab, tokens: dict[str, str]) -> None:
    """Outsiders' stall: one message froze every mail session for 13 s. While a hostile message is being
    checked, another session's NOOP is answered within the bound."""
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    hostile = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 5000
    sender = Wire(ports(lab)[0])
    try:
        assert smtp_reply(sender, exempt=True) == 220
        for line in (b"EHLO x", b"STARTTLS"):
            smtp_command(sender, line)
        sender.tls(lab.tls_context())
        smtp_command(sender, b"EHLO x")
        assert smtp_command(sender, b"AUTH XOAUTH2 " + b64(xoauth2(CLAIRE, tokens[CLAIRE])).encode()) == 235
        for line in (f"MAIL FROM:<{CLAIRE}>".encode(), f"RCPT TO:<{DAVID}>".encode()):
            assert smtp_command(sender, line) == 250
        assert smtp_command(sender, b"DATA") == 354
        sender.sock.sendall(dot_stuffed(hostile))
        started = time.monotonic()
        _smtp_session(lab, [b"NOOP", b"QUIT"], tls=False)
        assert time.monotonic() - started < BOUND_SECONDS
        assert smtp_reply(sender) in (250, 552, 554)
    finally:
        sender.close()
