"""A lab for the MSSanté tests: PSC and MSSanté served over HTTPS from this process, introduced to each other,
with helpers to obtain a professional's PSC access token (playing the browser) and to reach the mail ports."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from lxml import etree, html

from esante.harness.environment import LocalEnvironment
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import TestCA, client_ssl_context
from esante.simulators.psc.protocol import AUTHORIZE_PATH, TOKEN_PATH

CLIENT = ("esante-reference-mss", "reference-mss-secret-not-for-production")
REDIRECT = "http://127.0.0.1:9/mss/callback"


@dataclass
class Lab:
    env: LocalEnvironment
    pki_dir: Path

    @property
    def ca_pem(self) -> bytes:
        return TestCA.load_or_create(self.pki_dir).ca_pem

    def http(self) -> httpx.Client:
        return httpx.Client(verify=client_ssl_context(self.ca_pem), timeout=10)

    def tls(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca_pem)

    def ports(self) -> tuple[int, int]:
        """(SMTP, IMAP) as the autoconfig document gives them."""
        with self.http() as http:
            xml = etree.fromstring(http.get(self.env.endpoints["mssante"] + "/mail/config-v1.1.xml").content)
        return (int(xml.findtext(".//outgoingServer/port")), int(xml.findtext(".//incomingServer/port")))

    def token(self, national_id: str) -> dict[str, str]:
        """A PSC access token for this professional, through the code flow (the test plays the browser)."""
        psc = self.env.endpoints["psc"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        with self.http() as http:
            page = http.get(psc + AUTHORIZE_PATH, params={
                "response_type": "code", "client_id": CLIENT[0], "redirect_uri": REDIRECT, "scope": "openid scope_all",
                "acr_values": "eidas1", "state": secrets.token_hex(16), "nonce": secrets.token_hex(32),
                "code_challenge": challenge, "code_challenge_method": "S256"})
            form = html.fromstring(page.text).forms[0]
            fields = dict(form.fields) | {"national_id": national_id}
            answer = http.post(urljoin(psc, form.action), data=fields)
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            tokens = http.post(psc + TOKEN_PATH, auth=CLIENT, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier})
            tokens.raise_for_status()
            return tokens.json()


def open_lab(tmp: Path) -> Lab:
    env = LocalEnvironment(["psc", "mssante"], store=EvidenceStore(tmp / "evidence.sqlite"), pki_dir=tmp / "pki")
    return Lab(env, tmp / "pki")


def xoauth2(address: str, token: str) -> str:
    return f"user={address}\x01auth=Bearer {token}\x01\x01"
