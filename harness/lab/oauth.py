"""The OAuth 2 authorisation code flow with PKCE (RFC 6749 §4.1, RFC 7636), as a registered client runs it against
a lab's authorisation server (Pro Santé Connect, Mon espace santé): the user's browser — played by the harness's,
which never leaves the simulators — fills the server's page, and the code is redeemed with the client's secret
(HTTP Basic)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from esante.harness.browser import Browser
from esante.simulators.core.pki import client_ssl_context


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


@dataclass(frozen=True, slots=True)
class Client:
    """A client as the authorisation server registered it."""

    client_id: str
    secret: str
    redirect_uri: str


def code_flow(base_url: str, ca_pem: bytes | None, client: Client, *, authorize_path: str, token_path: str,
              query: dict[str, str], page: dict[str, str], timeout: float = 10.0) -> TokenSet:
    """Send the user to ``authorize_path`` with ``query`` (plus the client, redirect URI, state and PKCE S256),
    fill the server's page with ``page``, and redeem the code the browser lands back with."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    asked = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
             "state": secrets.token_urlsafe(24), "code_challenge": challenge, "code_challenge_method": "S256",
             **query}
    browser = Browser({"server": base_url}, ca_pem, timeout=timeout)
    try:
        trip = browser.visit(f"{base_url}{authorize_path}?{urlencode(asked)}", page)
    finally:
        browser.close()
    answer = parse_qs(urlsplit(trip.landed or "").query)
    if "code" not in answer:
        raise TokenRefused(trip.stopped or f"{base_url} answered {trip.landed} without a code: {answer.get('error')}")
    verify = client_ssl_context(ca_pem) if ca_pem is not None else True
    with httpx.Client(verify=verify, timeout=timeout) as http:
        response = http.post(f"{base_url}{token_path}", auth=(client.client_id, client.secret), data={
            "grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier})
    if response.status_code != 200:
        raise TokenRefused(f"the token endpoint answered HTTP {response.status_code}: {response.text[:300]}")
    return TokenSet.model_validate(response.json())
