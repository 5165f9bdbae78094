"""Redirection endpoints: which redirect URIs a registration allows (exact match, RFC 6749 §3.1.2; loopback on
any port, RFC 8252 §7.3) and how an authorization response or error reaches them (§4.1.2), in the response mode
the client asked for: the query (the code flow's default), the fragment (OAuth 2.0 Multiple Response Type
Encoding Practices §2) or a form the browser posts (OAuth 2.0 Form Post Response Mode)."""

from __future__ import annotations

from html import escape
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.responses import HTMLResponse, RedirectResponse, Response

from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The response modes served, the code flow's default first.
RESPONSE_MODES: Final = ("query", "fragment", "form_post")


def uri_registered(uri: str, registered: list[str]) -> bool:
    """Exact match, except that a loopback http URI matches on any port (RFC 8252 §7.3)."""
    if uri in registered:
        return True
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port_free = parts._replace(netloc=f"[{host}]" if ":" in host else host).geturl() \
            if parts.port is not None else None
    except ValueError:
        return False
    loopback = parts.scheme == "http" and host in LOOPBACK_HOSTS
    return loopback and port_free is not None and not parts.query and port_free in registered


def response_mode_of(form: dict[str, str]) -> str:
    """The response mode asked for (the query when none is), or ``invalid_request`` in Keycloak's words."""
    mode = form.get("response_mode") or RESPONSE_MODES[0]
    if mode not in RESPONSE_MODES:
        raise OAuthError("invalid_request", "Invalid parameter: response_mode")
    return mode


def redirect(uri: str, params: dict[str, str | None], mode: str = "query") -> Response:
    """The browser sent to ``uri`` with ``params`` (absent ones left out) in ``mode``, never cached: a 302 with
    them in the query or the fragment, or a page that posts them (form_post)."""
    present = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        return _form_post(uri, present)
    separator = "#" if mode == "fragment" else "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{separator}{urlencode(present)}", status_code=302, headers=NO_STORE)


def _form_post(uri: str, params: dict[str, str]) -> HTMLResponse:
    """OAuth 2.0 Form Post Response Mode §2: a page whose form the browser submits at once."""
    fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}"/>' for k, v in params.items())
    page = (f'<!DOCTYPE html><html><head><title>Submit This Form</title></head>'
            f'<body onload="javascript:document.forms[0].submit()">'
            f'<form method="post" action="{escape(uri)}">{fields}'
            f'<noscript><button type="submit">Continue</button></noscript></form></body></html>')
    return HTMLResponse(page, headers=NO_STORE)


def error_redirect(uri: str, error: OAuthError, state: str | None, iss: str | None = None,
                   mode: str = "query") -> Response:
    """The authorization error response (RFC 6749 §4.1.2.1), with ``iss`` when the server sends it (RFC 9207)."""
    return redirect(uri, {"error": error.error, "error_description": error.description, "state": state,
                          "iss": iss}, mode)
