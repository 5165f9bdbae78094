"""What the reference relying party checks in Pro Santé Connect's answers, kept free of I/O.

PKCE values, the ID token's signature and claims (OpenID Connect Core §3.1.3.7, at_hash §3.1.3.8), and the
certificate binding
of an exchanged token (RFC 8705): pure functions, so that each rule can be unit-tested on locally signed
tokens, and so that the client (:mod:`.client`) only decides *which* rules a defect switches off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ACR = "eidas1"
SIGNING_ALGORITHMS = ["RS256"]  # PSC's realm signs with RS256; anything else (and "none") is refused
CLOCK_LEEWAY = 60.0  # seconds of clock difference tolerated on exp and iat


class PscUnavailable(Exception):
    """PSC could not be reached, or answered 5xx, after the retry."""


class PscRefused(Exception):
    """An answer the software must not trust (tampered response, invalid ID token)."""


class PscError(Exception):
    """PSC answered an OAuth error (``error`` is its code)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


# -- PKCE (RFC 7636) ---------------------------------------------------------------------------------------
def new_verifier() -> str:
    """A code verifier of 64 base64url characters (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


# -- JWTs ----------------------------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(part: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError as exc:  # binascii.Error and JSONDecodeError are both ValueErrors
        raise ValueError(f"not base64url JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def jwt_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before verification only to pick the key (``kid``)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a signed JWT (three dot-separated parts expected)")
    return _b64json(parts[0])


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload without checking the signature: only for a token whose signature does not concern us (the
    API token we pass on) or under the ``psc_no_signature_check`` defect."""
    jwt_header(token)
    return _b64json(token.split(".")[1])


def verified_claims(token: str, keys: KeySet) -> dict[str, Any]:
    """The claims of a token whose RS256 signature verifies with the key of its ``kid``; PscRefused otherwise."""
    try:
        return dict(jwt.decode(token, keys, algorithms=SIGNING_ALGORITHMS).claims)
    except (JoseError, ValueError) as exc:
        raise PscRefused(f"the ID token's signature does not verify with PSC's keys ({exc})") from None


@dataclass(frozen=True, slots=True)
class IdTokenRules:
    """What an ID token must say. ``nonce`` is None where none was sent (CIBA, refresh); ``access_token`` the
    one answered beside it, whose hash the ID token's ``at_hash`` must be when present. The flags exist so that
    a named defect can switch one rule off, and are all on in a correct client."""

    issuer: str
    client_id: str
    nonce: str | None = None
    access_token: str | None = None
    check_audience: bool = True
    check_nonce: bool = True
    check_acr: bool = True
    check_at_hash: bool = True


def check_id_token_claims(claims: dict[str, Any], rules: IdTokenRules, now: float) -> None:
    """OpenID Connect Core §3.1.3.7 (the signature being already checked), plus PSC's eidas1 level."""
    if claims.get("iss") != rules.issuer:
        raise PscRefused(f"the ID token's iss {claims.get('iss')!r} is not PSC's issuer {rules.issuer!r}")
    if rules.check_audience:
        _check_audience(claims, rules.client_id)
    _check_times(claims, now)
    if rules.nonce is not None and rules.check_nonce and claims.get("nonce") != rules.nonce:
        raise PscRefused("the ID token's nonce is not the one sent for this sign-in (replayed or injected token)")
    if rules.check_acr and claims.get("acr") != ACR:
        raise PscRefused(f"the ID token's acr is {claims.get('acr')!r}: a PSC sign-in must reach {ACR}")
    if rules.check_at_hash and rules.access_token is not None and "at_hash" in claims and \
            claims["at_hash"] != at_hash(rules.access_token):
        raise PscRefused("the ID token's at_hash is not the hash of the access token answered with it "
                         "(a substituted access token)")


def at_hash(access_token: str) -> str:
    """OpenID Connect Core §3.1.3.6 for RS256: base64url of the left half of the token's SHA-256."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def _check_audience(claims: dict[str, Any], client_id: str) -> None:
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise PscRefused(f"the ID token is issued to {audience!r}, not to this software ({client_id})")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise PscRefused(f"the ID token's authorized party is {azp!r}, not this software ({client_id})")
    if len(audiences) > 1 and azp is None:
        raise PscRefused("the ID token names several audiences and no authorized party (azp)")


def _check_times(claims: dict[str, Any], now: float) -> None:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise PscRefused("the ID token has no expiry (exp)")
    if exp < now - CLOCK_LEEWAY:
        raise PscRefused(f"the ID token expired {now - exp:.0f} s ago")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise PscRefused("the ID token has no issue time (iat)")
    if iat > now + CLOCK_LEEWAY:
        raise PscRefused(f"the ID token is issued {iat - now:.0f} s in the future")


# -- certificate-bound tokens (RFC 8705) -------------------------------------------------------------------
def certificate_thumbprint(cert_pem: bytes) -> str:
    """``x5t#S256``: base64url SHA-256 of the certificate's DER encoding."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return _b64url(hashlib.sha256(der).digest())


def bound_thumbprint(answer: dict[str, Any]) -> str | None:
    """The ``cnf.x5t#S256`` of an exchanged token: in the token answer itself, else in the (JWT) access token."""
    cnf = answer.get("cnf")
    if not isinstance(cnf, dict):
        try:
            cnf = unverified_claims(str(answer.get("access_token", ""))).get("cnf")
        except ValueError:
            return None
    value = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    return value if isinstance(value, str) else None
