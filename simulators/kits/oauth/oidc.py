"""What OpenID Connect adds to an OAuth authorization request and to the tokens answered: the request object
passed by value (Core §6.1; by reference, §6.2, is not served: ``request_uri_not_supported``), the ``claims``
parameter (§5.5) and the ``at_hash`` of an ID token issued beside an access token (§3.1.3.6)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Final

from joserfc.errors import JoseError

from esante.simulators.dataset.models import OidcClient
from esante.simulators.kits.oauth.clients import HMAC_ALGORITHMS, client_keys, unverified_jwt, verified_claims
from esante.simulators.kits.oauth.errors import OAuthError

#: The members of a ``claims`` request (§5.5): where the claims asked for are to be returned.
CLAIMS_TARGETS: Final = ("userinfo", "id_token")
#: What a request object may be signed with: the client's RSA key, its secret, or nothing (Keycloak's "any").
REQUEST_OBJECT_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", *HMAC_ALGORITHMS, "none")
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` (or ``c_hash``): base64url of the left half of the hash of ``value`` that ``alg`` uses."""
    digest = _HASHES[alg[-3:]](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def requested_claims(form: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The ``claims`` parameter: a JSON object whose ``userinfo`` and ``id_token`` members are objects."""
    raw = form.get("claims")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or any(not isinstance(value.get(k, {}), dict) for k in CLAIMS_TARGETS):
        raise OAuthError("invalid_request", "Invalid parameter: claims")
    return {k: value[k] for k in CLAIMS_TARGETS if k in value}


def with_request_object(form: dict[str, str], client: OidcClient) -> dict[str, str]:
    """The authorization request's parameters with those of its request object, which take precedence
    (§6.3.3); its ``client_id`` and ``response_type``, when present, must be the request's own."""
    if "request_uri" in form:
        raise OAuthError("request_uri_not_supported", "Request URI is not supported: pass the request object "
                                                      "by value (request)")
    if "request" not in form:
        return form
    claims = _request_claims(form["request"], client)
    for name in ("client_id", "response_type"):
        if name in claims and claims[name] != form.get(name):
            raise OAuthError("invalid_request_object", f"the request object's {name} is not the request's")
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()
              if k not in ("iss", "aud", "exp", "iat", "nbf", "jti")}
    return {k: v for k, v in form.items() if k != "request"} | values


def _request_claims(token: str, client: OidcClient) -> dict[str, Any]:
    """A request object's claims: unsigned (alg none, no signature), or verified with the client's key."""
    header, claims = unverified_jwt(token, "request", 400)
    alg = header.get("alg")
    if alg not in REQUEST_OBJECT_ALGORITHMS:
        raise OAuthError("invalid_request_object", f"request object signed with {alg!r}, not accepted")
    if alg == "none":
        if token.count(".") != 2 or not token.endswith("."):
            raise OAuthError("invalid_request_object", "an unsigned request object has no signature")
        return claims
    method = "client_secret_jwt" if alg in HMAC_ALGORITHMS else "private_key_jwt"
    try:
        verified = verified_claims(token, *client_keys(client, method))
    except (JoseError, ValueError, TypeError):  # no secret or no key registered to check it with
        verified = None
    if verified is None:
        raise OAuthError("invalid_request_object", "the request object's signature does not verify")
    return verified
