"""Redirection endpoints: which redirect URIs a registration allows (exact match, RFC 6749 §3.1.2; loopback on
any port, RFC 8252 §7.3) and the redirect that carries an authorization response or error (§4.1.2)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.responses import RedirectResponse, Response

from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def uri_registered(uri: str, registered: list[str]) -> bool:
    """Exact match, except that a loopback http URI matches on any port (RFC 8252 §7.3)."""
    if uri in registered:
        return True
    try:
        parts = urlsplit(uri)
        port_free = parts._replace(netloc=parts.hostname or "").geturl() if parts.port is not None else None
    except ValueError:
        return False
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    return loopback and port_free is not None and not parts.query and port_free in registered


def redirect(uri: str, params: dict[str, str | None]) -> Response:
    """302 to ``uri`` with ``params`` added to its query (absent ones left out), never cached."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302, headers=NO_STORE)


def error_redirect(uri: str, error: OAuthError, state: str | None, iss: str | None = None) -> Response:
    """The authorization error response (RFC 6749 §4.1.2.1), with ``iss`` when the server sends it (RFC 9207)."""
    return redirect(uri, {"error": error.error, "error_description": error.description, "state": state, "iss": iss})
