"""Reading an OAuth request: the form (RFC 6749 §3.2: no repeated parameter), HTTP Basic client credentials
(§2.3.1), a bearer token (RFC 6750 §2.1 header, §2.2 form parameter), the response_type of an authorization
request and the grant_type of a token request."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Collection, Mapping
from urllib.parse import parse_qsl, unquote

from fastapi import Request

from esante.simulators.kits.oauth.errors import OAuthError

MAX_FORM_FIELDS = 50
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    """The query of a GET or the urlencoded body of a POST as a dict; a repeated parameter is refused."""
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


def basic_credentials(header: str) -> tuple[str, str]:
    """(client_id, secret) of an ``Authorization: Basic`` header; both are form-urlencoded first (§2.3.1)."""
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
        client_id, secret = decoded.split(":", 1)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from None
    return unquote(client_id), unquote(secret)


def is_basic(authorization: str | None) -> bool:
    return bool(authorization) and str(authorization).lower().startswith("basic ")


def secrets_equal(a: str, b: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(request: Request, form: dict[str, str] | None = None) -> str:
    """The access token presented: the ``Authorization: Bearer`` header, else the form's ``access_token``
    (when the endpoint accepts the form parameter); empty when there is none."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return (form or {}).get("access_token", "")


def response_type_of(form: dict[str, str], served: Collection[str], known: Collection[str]) -> str:
    """The response_type of an authorization request (RFC 6749 §3.1.1), in Keycloak's words: missing is
    ``invalid_request``, one the server knows but does not offer the client is ``unauthorized_client``, any
    other ``unsupported_response_type``."""
    response_type = form.get("response_type")
    if not response_type:
        raise OAuthError("invalid_request", "Missing parameter: response_type")
    if response_type in served:
        return response_type
    if " ".join(sorted(response_type.split())) in {" ".join(sorted(k.split())) for k in known}:
        raise OAuthError("unauthorized_client", "Client is not allowed to initiate browser login with given "
                                                f"response_type {response_type!r}")
    raise OAuthError("unsupported_response_type", "Unsupported response_type")


def grant_type_of(form: dict[str, str], allowed: Collection[str], known: Mapping[str, str]) -> str:
    """The grant_type of a token request (RFC 6749 §4.1.3, §5.2), in Keycloak's words: missing is
    ``invalid_request``; one the server knows (``known``: its refusal to a client not allowed it) but the client
    is not ``allowed`` is ``unauthorized_client``; any other ``unsupported_grant_type``."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "Missing form parameter: grant_type")
    if grant_type not in known:
        raise OAuthError("unsupported_grant_type", "Unsupported grant_type")
    if grant_type not in allowed:
        raise OAuthError("unauthorized_client", known[grant_type])
    return grant_type
