"""OAuth 2.0 plumbing shared by the simulated authorization servers (Pro Santé Connect, Mon espace santé):
the RFC 6749 JSON error answer, form reading, HTTP Basic credentials, PKCE (RFC 7636) and redirect URI
matching (RFC 8252 §7.3 for loopback URIs).

Errors are answered the way Keycloak (and RFC 6749 §5.2) does: JSON ``{"error", "error_description"}``,
400 for request errors, 401 for client authentication failures and invalid bearer tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from fastapi import Request
from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FORM_FIELDS = 50
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


class OAuthError(Exception):
    """An OAuth error answer: ``error`` code (RFC 6749 / 6750 / 8693 / CIBA), description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            scheme = "Bearer" if self.error == "invalid_token" else "Basic"
            headers["WWW-Authenticate"] = f'{scheme} error="{self.error}", error_description="{self.description}"'
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=headers)



def basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
        client_id, secret = decoded.split(":", 1)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from None
    return unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1: both are form-urlencoded first



def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())



def check_pkce(method: str | None, challenge: str | None) -> None:
    """Authorization request: PKCE is optional, but when present it must be well formed (RFC 7636 §4.2)."""
    if challenge is None and method is None:
        return
    if method not in (None, "plain", "S256"):
        raise OAuthError("invalid_request", "Invalid parameter: code challenge method is not supported.")
    if challenge is None or not _PKCE_VALUE.match(challenge):
        raise OAuthError("invalid_request", "Invalid parameter: code_challenge")


def pkce_matches(method: str, challenge: str, verifier: str) -> bool:
    if not _PKCE_VALUE.match(verifier):
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    return verifier == challenge


def uri_registered(uri: str, registered: list[str]) -> bool:
    """Exact match, except that a loopback http URI matches on any port (RFC 8252 §7.3)."""
    if uri in registered:
        return True
    try:
        parts = urlsplit(uri)
        port_free = parts._replace(netloc=parts.hostname or "").geturl() if parts.port is not None else None
    except ValueError:
        return False
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    return loopback and port_free is not None and not parts.query and port_free in registered


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body as a dict; a repeated parameter is refused (RFC 6749 §3.2)."""
    if request.method == "GET":
        try:
            pairs = parse_qsl(request.url.query, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError as exc:
            raise OAuthError("invalid_request", f"unreadable query: {exc}") from None
    else:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_CONTENT_TYPE:
            raise OAuthError("invalid_request", f"the body must be {FORM_CONTENT_TYPE}")
        try:
            body = (await request.body()).decode("utf-8")
            pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            raise OAuthError("invalid_request", f"unreadable form: {exc}") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key} is repeated")
        form[key] = value
    return form
