"""Client authentication at the token endpoint by the one method the client used (RFC 6749 §2.3): a secret
(HTTP Basic or in the form), a signed JWT assertion (``private_key_jwt``, RFC 7523) or a TLS client certificate
(``tls_client_auth``, RFC 8705 §2), against the client's registration; in Keycloak's wording.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from esante.simulators.core.pki import common_name_of_subject, subject_of_der
from esante.simulators.dataset.models import OidcClient
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.requests import basic_credentials, is_basic, secrets_equal

#: RFC 7523 §2.2: the client_assertion_type of a JWT client assertion.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INVALID_CREDENTIALS = "Invalid client or Invalid client credentials"


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: OidcClient
    method: str
    cert_thumbprint: str | None  # x5t#S256 of the TLS client certificate, when one was presented
    cert_subject: str | None


@dataclass(frozen=True, slots=True)
class ClientCall:
    """What a token-endpoint call presents to authenticate: its form, Authorization header and TLS certificate."""

    form: dict[str, str]
    authorization: str | None
    cert_der: bytes | None


def cert_thumbprint(der: bytes | None) -> str | None:
    """RFC 8705 §3.1 ``x5t#S256``: base64url SHA-256 of the DER certificate."""
    if not der:
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def authenticate_client(call: ClientCall, registered: Callable[[str], OidcClient], audiences: tuple[str, ...],
                        used_jtis: set[str]) -> AuthenticatedClient:
    """Identify the client and check its credentials as registered; ``registered`` raises KeyError for an
    unknown client; ``audiences`` are the accepted ``aud`` of an assertion; ``used_jtis`` the assertions seen."""
    method, client_id = _method_of(call.form, call.authorization)
    client = _registration(registered, client_id)
    if method not in client.auth_methods:
        raise OAuthError("invalid_client", f"client {client_id} is not registered for {method}", 401)
    subject = subject_of_der(call.cert_der) if call.cert_der else None
    if method == "client_secret_basic":
        _check_secret(client, basic_credentials(call.authorization or "")[1])
    elif method == "client_secret_post":
        _check_secret(client, call.form.get("client_secret", ""))
    elif method == "private_key_jwt":
        _check_assertion(client, call.form.get("client_assertion", ""), audiences, used_jtis)
        if call.form.get("client_id") not in (None, client.client_id):
            raise OAuthError("invalid_client", "client_id differs from the client_assertion's sub", 401)
    elif common_name_of_subject(subject) != client.tls_client_auth_cn:
        raise OAuthError("invalid_client", "tls_client_auth: no client certificate, or its CN is not the one "
                                           f"registered for {client_id}", 401)
    return AuthenticatedClient(client, method, cert_thumbprint(call.cert_der), subject)


def _method_of(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if is_basic(authorization):
        return "client_secret_basic", basic_credentials(str(authorization))[0]
    if form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE:
        claims = _unverified_claims(form.get("client_assertion", ""))
        return "private_key_jwt", str(claims.get("sub") or form.get("client_id") or "")
    if "client_secret" in form:
        return "client_secret_post", form.get("client_id", "")
    if form.get("client_id"):
        return "tls_client_auth", form["client_id"]
    raise OAuthError("invalid_client", "no client authentication", 401)


def _registration(registered: Callable[[str], OidcClient], client_id: str) -> OidcClient:
    try:
        return registered(client_id)
    except KeyError:
        raise OAuthError("invalid_client", INVALID_CREDENTIALS, 401) from None


def _check_secret(client: OidcClient, secret: str) -> None:
    if not client.secret or not secret or not secrets_equal(secret, client.secret):
        raise OAuthError("invalid_client", INVALID_CREDENTIALS, 401)


def _unverified_claims(token: str) -> dict[str, Any]:
    """The claims of an assertion before its signature is checked: only to find whose key checks it."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None


def _check_assertion(client: OidcClient, assertion: str, audiences: tuple[str, ...], used_jtis: set[str]) -> None:
    """RFC 7523 §3: signed by the client's registered key, iss = sub = client_id, our endpoint as audience,
    not expired, and its jti never seen before (a captured assertion cannot be replayed)."""
    try:
        key = RSAKey.import_key(client.public_key_pem or "")
        claims = jwt.decode(assertion, key).claims
    except (JoseError, ValueError, TypeError):
        raise OAuthError("invalid_client", "client_assertion signature does not verify", 401) from None
    audience = claims.get("aud")
    audience_list = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise OAuthError("invalid_client", "client_assertion iss and sub must be the client_id", 401)
    if not set(audience_list) & set(audiences):
        raise OAuthError("invalid_client", "client_assertion aud is not this token endpoint", 401)
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < time.time():
        raise OAuthError("invalid_client", "client_assertion is expired or has no exp", 401)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or jti in used_jtis:
        raise OAuthError("invalid_client", "client_assertion has no jti, or a jti already used", 401)
    used_jtis.add(jti)
