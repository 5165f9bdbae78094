"""Authentication as MSSanté does it: a Pro Santé Connect access token (SASL XOAUTH2 or OAUTHBEARER, RFC 7628)
for personal and organisational mailboxes, the software's client certificate (SASL EXTERNAL over TLS) for
application mailboxes.

Tokens are validated the way a resource server of the PSC realm does: by introspection at PSC's introspection
endpoint (RFC 7662) with the messaging servers' own registered client (``esante-mssante-server`` in
``oidc_clients.yaml``, a ``resource_server``). Introspection, not only the JWKS, because a revoked or logged-out
token still carries a valid signature. The token's ``SubjectNameID`` must hold the mailbox named by the client.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import httpx

from esante.simulators.core.pki import client_ssl_context
from esante.simulators.core.runtime import Peer
from esante.simulators.psc.protocol import INTROSPECT_PATH

SERVER_CLIENT_ID = "esante-mssante-server"
SERVER_CLIENT_SECRET = "mssante-server-secret-not-for-production"  # test value, public on purpose (data set)


class SaslError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Credentials:
    mechanism: str
    user: str  # the mailbox address the client asks to open
    token: str | None = None


def _b64(data: str) -> str:
    try:
        return base64.b64decode(data.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SaslError("the SASL response is not base64 of UTF-8 text") from None


def parse_xoauth2(response: str) -> Credentials:
    """``user=<address>^Aauth=Bearer <token>^A^A`` (Google's XOAUTH2)."""
    fields = dict(p.split("=", 1) for p in _b64(response).split("\x01") if "=" in p)
    auth = fields.get("auth", "")
    if not fields.get("user") or not auth.lower().startswith("bearer "):
        raise SaslError("XOAUTH2 needs user= and auth=Bearer <token>")
    return Credentials("XOAUTH2", fields["user"].strip(), auth[7:].strip())


def parse_oauthbearer(response: str) -> Credentials:
    """RFC 7628: GS2 header ``n,a=<address>,`` then ``^A``-separated key=value pairs with ``auth=Bearer <token>``."""
    text = _b64(response)
    gs2, _, rest = text.partition("\x01")
    parts = gs2.split(",")
    if len(parts) < 3 or parts[0] not in ("n", "y"):
        raise SaslError("OAUTHBEARER needs a GS2 header 'n,a=<authzid>,'")
    authzid = next((p[2:] for p in parts[1:] if p.startswith("a=")), "")
    fields = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
    auth = fields.get("auth", "")
    if not authzid or not auth.lower().startswith("bearer "):
        raise SaslError("OAUTHBEARER needs a=<address> and auth=Bearer <token>")
    return Credentials("OAUTHBEARER", authzid.replace("=2C", ",").replace("=3D", "="), auth[7:].strip())


def parse_external(response: str) -> Credentials:
    """SASL EXTERNAL (RFC 4422 A): the authorisation identity, the mailbox; empty (``=``) is refused here
    because an application certificate may hold several mailboxes."""
    user = _b64(response) if response.strip() not in ("", "=") else ""
    if not user:
        raise SaslError("EXTERNAL needs the mailbox address as authorisation identity")
    return Credentials("EXTERNAL", user.strip())


PARSERS = {"XOAUTH2": parse_xoauth2, "OAUTHBEARER": parse_oauthbearer, "EXTERNAL": parse_external}


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    active: bool
    national_id: str | None = None
    reason: str = ""
    expires: float | None = None


def introspect(peer: Peer | None, token: str) -> TokenVerdict:
    """Ask PSC whether the token is active and whose it is (blocking: call it off the event loop)."""
    if peer is None:
        return TokenVerdict(False, reason="no Pro Santé Connect peer is configured: tokens cannot be checked")
    verify = client_ssl_context(peer.ca_pem.encode()) if peer.ca_pem else True
    try:
        with httpx.Client(base_url=peer.url.rstrip("/"), verify=verify, timeout=10) as http:
            answer = http.post(INTROSPECT_PATH, data={"token": token}, auth=(SERVER_CLIENT_ID, SERVER_CLIENT_SECRET))
    except httpx.HTTPError as exc:
        return TokenVerdict(False, reason=f"Pro Santé Connect unreachable: {type(exc).__name__}")
    if answer.status_code != 200:
        return TokenVerdict(False, reason=f"introspection answered HTTP {answer.status_code}")
    data = answer.json()
    if not data.get("active"):
        return TokenVerdict(False, reason="token not active (expired, revoked or not issued by Pro Santé Connect)")
    if data.get("token_type") != "Bearer" or not data.get("SubjectNameID"):
        return TokenVerdict(False, reason="not a Pro Santé Connect access token")
    return TokenVerdict(True, str(data["SubjectNameID"]), "", float(data.get("exp", 0)))
