"""A Pro Santé Connect access token from a running lab, the way a relying party gets one: the authorisation
code flow with PKCE (RFC 7636), the professional signing in on the federator's login page — played by the
harness's browser, which never leaves the simulators — and the code redeemed with the client's registered
secret (HTTP Basic). What a person needs to try a mail client by hand (``esante token``), and what the tests
and benchmarks use instead of writing the flow again.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from esante.harness.browser import Browser
from esante.simulators.core.pki import client_ssl_context
from esante.simulators.dataset import load_dataset
from esante.simulators.psc.protocol import AUTHORIZE_PATH, TOKEN_PATH


class TokenSet(BaseModel):
    """The token endpoint's answer (RFC 6749 §5.1), as far as a person or a test needs it."""

    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: str
    expires_in: int | None = None
    refresh_token: str | None = None
    id_token: str | None = None


class TokenRefused(RuntimeError):
    """The flow did not end with a token: the message says where it stopped."""


def _national_id(professional: str, dataset: str) -> str:
    """A data-set id (PS001) as the professional's national id; anything else is taken as a national id."""
    known = {p.id: p.national_id for p in load_dataset(dataset).professionals}
    return known.get(professional, professional)


def psc_token(psc_url: str, ca_pem: bytes | None, professional: str, *, client_id: str = "esante-reference-mss",
              dataset: str = "default", timeout: float = 10.0) -> TokenSet:
    """Sign ``professional`` in at the lab's PSC as the registered client ``client_id``; return its tokens."""
    client = load_dataset(dataset).oidc_client(client_id)
    redirect_uri = client.redirect_uris[0]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "scope": "openid scope_all", "acr_values": "eidas1", "state": secrets.token_hex(16),
             "nonce": secrets.token_hex(32), "code_challenge": challenge, "code_challenge_method": "S256"}
    browser = Browser({"psc": psc_url}, ca_pem, timeout=timeout)
    try:
        trip = browser.visit(f"{psc_url}{AUTHORIZE_PATH}?{urlencode(query)}",
                             {"national_id": _national_id(professional, dataset), "channel": "MOBILE"})
    finally:
        browser.close()
    answer = parse_qs(urlsplit(trip.landed or "").query)
    if "code" not in answer:
        raise TokenRefused(trip.stopped or f"PSC answered {trip.landed} without a code: {answer.get('error')}")
    verify = client_ssl_context(ca_pem) if ca_pem is not None else True
    with httpx.Client(verify=verify, timeout=timeout) as http:
        response = http.post(f"{psc_url}{TOKEN_PATH}", auth=(client_id, client.secret or ""), data={
            "grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": redirect_uri,
            "code_verifier": verifier})
    if response.status_code != 200:
        raise TokenRefused(f"the token endpoint answered HTTP {response.status_code}: {response.text[:300]}")
    return TokenSet.model_validate(response.json())
