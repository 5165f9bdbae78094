"""Proof Key for Code Exchange (RFC 7636): the challenge of an authorization request and the verifier of the
token request."""

from __future__ import annotations

import base64
import hashlib
import re

from esante.simulators.kits.oauth.errors import OAuthError

_PKCE_VALUE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # §4.1: 43 to 128 unreserved characters


def check_pkce(method: str | None, challenge: str | None) -> None:
    """An authorization request's challenge: optional, but well formed when present (§4.2), in Keycloak's
    wording."""
    if challenge is None and method is None:
        return
    if method not in (None, "plain", "S256"):
        raise OAuthError("invalid_request", "Invalid parameter: code challenge method is not supported.")
    if challenge is None or not _PKCE_VALUE.match(challenge):
        raise OAuthError("invalid_request", "Invalid parameter: code_challenge")


def s256(verifier: str) -> str:
    """The S256 challenge of a verifier: BASE64URL(SHA256(verifier)) without padding (§4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def pkce_matches(method: str, challenge: str, verifier: str) -> bool:
    """Whether the token request's verifier answers the challenge (§4.6)."""
    if not _PKCE_VALUE.match(verifier):
        return False
    return (s256(verifier) if method == "S256" else verifier) == challenge
