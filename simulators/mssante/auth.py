"""Authentication as MSSanté does it: a Pro Santé Connect access token (SASL XOAUTH2 or OAUTHBEARER, RFC 7628,
read by the mail kit's :mod:`~esante.simulators.kits.mail.sasl`) for personal and organisational mailboxes, the
software's client certificate (SASL EXTERNAL over TLS) for application mailboxes.

Tokens are validated the way a resource server of the PSC realm does: by introspection at PSC's introspection
endpoint (RFC 7662) with the messaging servers' own registered client (``esante-mssante-server`` in
``oidc_clients.yaml``, a ``resource_server``). Introspection, not only the JWKS, because a revoked or logged-out
token still carries a valid signature. The token's ``SubjectNameID`` must hold the mailbox named by the client.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from esante.simulators.core.pki import client_ssl_context
from esante.simulators.core.runtime import Peer
from esante.simulators.psc.protocol import INTROSPECT_PATH

SERVER_CLIENT_ID = "esante-mssante-server"
SERVER_CLIENT_SECRET = "mssante-server-secret-not-for-production"  # test value, public on purpose (data set)


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
