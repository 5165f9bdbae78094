"""Client authentication at the token endpoint by the one method the client used (RFC 6749 §2.3): a secret
(HTTP Basic or in the form), a JWT assertion signed with the secret (``client_secret_jwt``) or with the client's
registered key (``private_key_jwt``, RFC 7523 and OpenID Connect Core §9), or a TLS client certificate
(``tls_client_auth``, RFC 8705 §2), against the client's registration; in Keycloak's wording.

The keys a client signs with (:func:`client_keys`) also verify its request objects (:mod:`.oidc`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey, RSAKey

from esante.simulators.core.pki import common_name_of_subject, subject_of_der
from esante.simulators.dataset.models import OidcClient
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.requests import basic_credentials, is_basic, secrets_equal

#: RFC 7523 §2.2: the client_assertion_type of a JWT client assertion.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INVALID_CREDENTIALS = "Invalid client or Invalid client credentials"
#: Every method this kit authenticates by: what a server's discovery document may advertise.
AUTH_METHODS: Final = ("private_key_jwt", "client_secret_basic", "client_secret_post", "tls_client_auth",
                       "client_secret_jwt")
#: What each JWT method is signed with (RFC 7518 §3.1): the client's RSA key, or its secret (HMAC).
RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: OidcClient
    method: str
    cert_thumbprint: str | None  # x5t#S256 of the TLS client certificate, when one was presented
    cert_subject: str | None
    cert_der: bytes | None = None


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
                        used_jtis: MutableMapping[str, float]) -> AuthenticatedClient:
    """Identify the client and check its credentials as registered; ``registered`` raises KeyError for an
    unknown client; ``audiences`` are the accepted ``aud`` of an assertion; ``used_jtis`` the assertions seen
    (jti: expiry), which the caller forgets once expired."""
    method, client_id = _method_of(call.form, call.authorization)
    client = _registration(registered, client_id)
    if method not in client.auth_methods:
        raise OAuthError("invalid_client", f"client {client_id} is not registered for {method}", 401)
    subject = subject_of_der(call.cert_der) if call.cert_der else None
    if method == "client_secret_basic":
        _check_secret(client, basic_credentials(call.authorization or "")[1])
    elif method == "client_secret_post":
        _check_secret(client, call.form.get("client_secret", ""))
    elif method in ("private_key_jwt", "client_secret_jwt"):
        _check_assertion(client, method, call.form.get("client_assertion", ""), audiences, used_jtis)
        if call.form.get("client_id") not in (None, client.client_id):
            raise OAuthError("invalid_client", "client_id differs from the client_assertion's sub", 401)
    elif common_name_of_subject(subject) != client.tls_client_auth_cn:
        raise OAuthError("invalid_client", "tls_client_auth: no client certificate, or its CN is not the one "
                                           f"registered for {client_id}", 401)
    return AuthenticatedClient(client, method, cert_thumbprint(call.cert_der), subject, call.cert_der)


def _method_of(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if is_basic(authorization):
        return "client_secret_basic", basic_credentials(str(authorization))[0]
    if form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE:
        header, claims = unverified_jwt(form.get("client_assertion", ""), "client_assertion")
        method = "client_secret_jwt" if header.get("alg") in HMAC_ALGORITHMS else "private_key_jwt"
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        return method, subject or form.get("client_id") or ""
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


def _json_object(part: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def unverified_jwt(token: str, name: str, status: int = 401) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a JWS before its signature is checked, only to find whose key checks it; a
    ``name`` that is not a JWT of two JSON objects is ``invalid_client`` (401) or, with status 400, a request's
    ``invalid_request``."""
    try:
        header, payload = token.split(".")[:2]
        return _json_object(header), _json_object(payload)
    except ValueError:  # too few parts, bad base64, bad JSON or not an object (all ValueErrors)
        error = "invalid_client" if status == 401 else "invalid_request"
        raise OAuthError(error, f"{name} is not a JWT", status) from None


def client_keys(client: OidcClient, method: str) -> tuple[OctKey | RSAKey, tuple[str, ...]]:
    """The key a client signs with and its algorithms: its secret (HMAC) or its registered RSA public key."""
    if method == "client_secret_jwt":
        return OctKey.import_key(client.secret or ""), HMAC_ALGORITHMS
    return RSAKey.import_key(client.public_key_pem or ""), RSA_ALGORITHMS


def verified_claims(token: str, key: OctKey | RSAKey, algorithms: tuple[str, ...]) -> dict[str, Any] | None:
    """The claims of a JWS that verifies with ``key`` under one of ``algorithms``, else None (nothing leaks)."""
    try:
        return dict(jwt.decode(token, key, algorithms=list(algorithms)).claims)
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _check_assertion(client: OidcClient, method: str, assertion: str, audiences: tuple[str, ...],
                     used_jtis: MutableMapping[str, float]) -> None:
    """RFC 7523 §3: signed by the client's key (or secret), iss = sub = client_id, our endpoint as audience,
    not expired, and its jti never seen before (a captured assertion cannot be replayed)."""
    try:
        claims = verified_claims(assertion, *client_keys(client, method))
    except (JoseError, ValueError, TypeError):  # a registered key that does not import
        claims = None
    if claims is None:
        raise OAuthError("invalid_client", "client_assertion signature does not verify", 401)
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise OAuthError("invalid_client", "client_assertion iss and sub must be the client_id", 401)
    audience = claims.get("aud")
    named = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):
        raise OAuthError("invalid_client", "client_assertion aud is not this token endpoint", 401)
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or expires < time.time():
        raise OAuthError("invalid_client", "client_assertion is expired or has no exp", 401)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or jti in used_jtis:
        raise OAuthError("invalid_client", "client_assertion has no jti, or a jti already used", 401)
    used_jtis[jti] = float(expires)
