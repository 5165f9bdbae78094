"""SASL for the mail servers, on pysasl: ``XOAUTH2`` (pysasl's), ``OAUTHBEARER`` (RFC 7628, added here: pysasl
has none) and ``EXTERNAL`` (pysasl's: the authorisation identity; the TLS client certificate is the server's to
check). Both the IMAP and the SMTP server read credentials through :func:`credentials`, from the *decoded*
client response, and send :func:`error_challenge` when a bearer token is refused (RFC 7628 §3.2.2; Google's
XOAUTH2 does the same) before the final failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from pysasl import SASLAuth
from pysasl.creds.external import ExternalCredentials, ExternalVerificationRequired
from pysasl.creds.server import ServerCredentials
from pysasl.exception import InvalidResponse
from pysasl.mechanism import ChallengeResponse, ServerChallenge, ServerMechanism
from pysasl.mechanism.external import ExternalMechanism
from pysasl.mechanism.oauth import OAuth2Mechanism

TOKEN_MECHANISMS: Final = ("XOAUTH2", "OAUTHBEARER")


class SaslError(ValueError):
    """The client's response is not what the mechanism defines; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a SASL exchange gave: the mailbox asked for and, for a bearer mechanism, the token."""

    mechanism: str
    user: str
    token: str | None = None


class BearerCredentials(ExternalCredentials):
    """OAUTHBEARER's credentials: verified by the server (the token), as pysasl's XOAUTH2 ones are."""


class OAuthBearerMechanism(ServerMechanism):
    """RFC 7628 ``OAUTHBEARER``: a GS2 header ``n,a=<authzid>,`` then ``^A``-separated ``key=value`` pairs, one of
    them ``auth=Bearer <token>``, ended by ``^A^A``."""

    def __init__(self) -> None:
        super().__init__(b"OAUTHBEARER")

    def server_attempt(self, responses: list[ChallengeResponse]) -> tuple[ServerCredentials, None]:
        if not responses:
            raise ServerChallenge(b"")
        try:
            text = responses[0].response.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidResponse() from None
        gs2, _, rest = text.partition("\x01")
        parts = gs2.split(",")
        authzid = next((p[2:] for p in parts[1:] if p.startswith("a=")), "")
        fields = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
        auth = fields.get("auth", "")
        if len(parts) < 3 or parts[0] not in ("n", "y") or not authzid or not auth.lower().startswith("bearer "):
            raise InvalidResponse()
        user = authzid.replace("=2C", ",").replace("=3D", "=")  # RFC 5801 §4 saslname
        return BearerCredentials(user, auth[7:].strip()), None


def mechanisms() -> SASLAuth:
    """The mechanisms a TLS session is offered."""
    return SASLAuth([OAuth2Mechanism(), OAuthBearerMechanism(), ExternalMechanism()])


def credentials(mechanism: str, response: bytes) -> Credentials:
    """The credentials in one decoded client response (initial or after an empty challenge)."""
    server = mechanisms().get_server(mechanism.encode())
    if server is None:
        raise SaslError(f"mechanism {mechanism} is not offered")
    try:
        found, _ = server.server_attempt([ChallengeResponse(b"", response)])
    except (InvalidResponse, UnicodeDecodeError):
        raise SaslError(_SHAPES.get(mechanism, "malformed SASL response")) from None
    except ServerChallenge:
        raise SaslError("an empty response") from None
    return _read(mechanism, found)


def _read(mechanism: str, found: ServerCredentials) -> Credentials:
    try:
        found.verify(None)  # pysasl hands an external token over this way
    except ExternalVerificationRequired as pending:
        token = pending.token
    else:  # pragma: no cover - every mechanism offered here needs external verification
        token = None
    user = found.authzid.strip()
    if not user:
        raise SaslError(f"{mechanism} names no mailbox (authorisation identity)")
    return Credentials(mechanism, user, token if mechanism in TOKEN_MECHANISMS else None)


_SHAPES = {
    "XOAUTH2": "XOAUTH2 needs user=<address>^Aauth=Bearer <token>^A^A",
    "OAUTHBEARER": "OAUTHBEARER needs a GS2 header n,a=<address>, and auth=Bearer <token>",
    "EXTERNAL": "EXTERNAL needs the mailbox address as authorisation identity",
}


def error_challenge(mechanism: str, scope: str = "") -> bytes | None:
    """What a refused bearer token gets before the failure (RFC 7628 §3.2.2, ``invalid_token``); the client
    answers it with ``^A`` (or anything), then the server fails the exchange. None for other mechanisms."""
    if mechanism not in TOKEN_MECHANISMS:
        return None
    status = "invalid_token" if mechanism == "OAUTHBEARER" else "401"
    return json.dumps({"status": status, "schemes": "Bearer", "scope": scope}).encode()
