"""What the MSSanté mail tests share: a lab of PSC and MSSanté (one per test module, every simulator reset and
filed under each test), the test professionals and their tokens, and the structured letter they send (written
by the reference candidate, which shares no code with the simulator)."""

from __future__ import annotations

import base64
import smtplib
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from esante.harness.lab import Lab, xoauth2
from esante.harness.reference.defects import Defects
from esante.harness.reference.mssante.mail import Document, letter
from esante.simulators.core.journal import Exchange, load_exchanges

CLAIRE, CLAIRE_ID = "claire.vasseur@medecin.mssante.test", "810999900011"  # PS001
DAVID, DAVID_ID = "david.benhamou@chu-fictif-paris.mssante.test", "810999900029"  # PS002
APP_MAILBOX = "dpi.integration@chu-fictif-paris.mssante.test"
P001 = Document("285046938321480", "1.2.250.1.213.1.4.10", "MOREAU", "CLAIRE", "1985-04-12", "Compte rendu",
                "11488-4")


@pytest.fixture(scope="module", name="lab")
def lab_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(["psc", "mssante"], workdir=tmp_path_factory.mktemp("mss"))
    yield lab
    lab.close()


@pytest.fixture(autouse=True, name="clean")
def clean_fixture(lab: Lab, request: pytest.FixtureRequest) -> Lab:
    for client in lab.clients.values():
        client.reset()
        client.set_context("mss-tests", request.node.name)
    return lab


def ports(lab: Lab) -> tuple[int, int]:
    """(SMTP, IMAP)."""
    found = lab.listener_ports("mssante")
    return found["smtp"], found["imap"]


def structured_letter(sender: str = CLAIRE, to: str = DAVID) -> EmailMessage:
    """An IHE XDM letter about P001, as the reference candidate writes it (CRLF line ends, as mail travels)."""
    return letter(sender, to, to_patient=False, document=P001, receipt=False, defects=Defects())


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def oauthbearer(address: str, token: str) -> str:
    """RFC 7628's initial client response."""
    return f"n,a={address},\x01auth=Bearer {token}\x01\x01"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def smtp_as(lab: Lab, address: str, national_id: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", ports(lab)[0], timeout=30)
    client.starttls(context=lab.tls_context())
    client.ehlo()
    token = lab.psc_token(national_id).access_token
    client.auth("XOAUTH2", lambda challenge=None: xoauth2(address, token))
    return client


def sessions(lab: Lab, case: str, method: str) -> list[Exchange]:
    time.sleep(0.2)  # a session is journaled when the server sees the connection close
    return [e for e in load_exchanges(lab.store, case_id=case) if e.method == method]


class RawImap:
    """An IMAP session spoken by hand (RFC 3501's examples, hostile input): STARTTLS, then SASL-IR XOAUTH2."""

    def __init__(self, lab: Lab, address: str = DAVID, national_id: str = DAVID_ID) -> None:
        plain = socket.create_connection(("127.0.0.1", ports(lab)[1]), timeout=10)
        self.buffer = b""
        self.sock: socket.socket = plain
        self.until(b"\r\n")
        assert self.command(b"t0 STARTTLS").endswith(b"t0 OK Ready to handshake.\r\n")
        self.sock = lab.tls_context().wrap_socket(plain, server_hostname="localhost")
        token = lab.psc_token(national_id).access_token
        answer = self.command(b"t1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(address, token)).encode())
        assert b"t1 OK" in answer, answer

    def until(self, end: bytes) -> bytes:
        while end not in self.buffer:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError(f"closed; got {self.buffer!r}")
            self.buffer += data
        found, _, self.buffer = self.buffer.partition(end)
        return found + end

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: bytes) -> bytes:
        """Send one command line and read up to its tagged answer."""
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.tagged(tag)

    def tagged(self, tag: bytes) -> bytes:
        answer = b""
        while True:
            line = self.until(b"\r\n")
            answer += line
            if line.startswith(tag + b" "):
                return answer

    def close(self) -> None:
        self.sock.close()

