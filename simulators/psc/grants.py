"""The token endpoint's grants: authorization code (with PKCE), refresh, CIBA poll, token exchange (RFC 8693).

Each grant takes the authenticated client and the form, and answers the token response or raises
:class:`~esante.simulators.kits.oauth.errors.OAuthError` with the code the federator would answer, in
Keycloak's words.
"""

from __future__ import annotations

import time
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from esante.simulators.kits.oauth.clients import AuthenticatedClient
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.server import AuthorizationCode, CodeWording
from esante.simulators.psc.notes import TokenExchanged
from esante.simulators.psc.protocol import (
    CIBA_AUTO_APPROVAL_DELAY,
    GRANT_CIBA,
    GRANT_CODE,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_ACCESS,
)
from esante.simulators.psc.state import Session
from esante.simulators.psc.tokens import Issuer

#: Keycloak's answers to a code it does not redeem.
CODE_WORDING = CodeWording(
    unknown="Code not valid", reused="Code not valid", expired="Code is expired",
    redirect_uri="Incorrect redirect_uri", verifier_missing="PKCE code verifier not specified",
    verifier_unexpected="PKCE code verifier specified but challenge not present in authorization",
    verifier_failed="PKCE verification failed")


def redeem(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str], *, ciba_auto: bool,
           cert_der: bytes | None) -> dict[str, Any]:
    grant_type = form.get("grant_type", "")
    issuer.notes.grant_type = grant_type
    if grant_type not in auth.client.grant_types:
        if grant_type in KNOWN_GRANTS:
            raise OAuthError("unauthorized_client", f"client {auth.client.client_id} may not use {grant_type}")
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")
    if grant_type == GRANT_CIBA:
        return ciba_poll(issuer, auth, form, auto=ciba_auto)
    if grant_type == GRANT_TOKEN_EXCHANGE:
        return token_exchange(issuer, auth, form, cert_der)
    if grant_type not in _GRANTS:  # registered for the client, but not a grant this federator serves here
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")
    return _GRANTS[grant_type](issuer, auth, form)


def authorization_code(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """A code presented again revokes the tokens issued with it (RFC 6749 §4.1.2)."""
    state = issuer.state

    def replayed(code: AuthorizationCode) -> None:
        state.revoke(code.tokens)

    code = state.redeem(form, auth.client.client_id, CODE_WORDING, replayed)
    session = state.sessions[code.grant_id]
    answer = issuer.tokens(auth.client.client_id, session, code.pending.scope, nonce=code.pending.nonce,
                           thumbprint=auth.cert_thumbprint)
    with state.lock:
        code.tokens += [t.id for t in state.tokens.values() if t.grant_id == code.grant_id]
    return answer


def refresh(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    state = issuer.state
    token = state.refresh_token(form.get("refresh_token", ""))
    if token is None or token.client_id != auth.client.client_id:
        raise OAuthError("invalid_grant", "Invalid refresh token")
    session = state.sessions.get(token.grant_id)
    if "refresh_rejected" in issuer.behaviours or session is None or not session.active or not token.active:
        raise OAuthError("invalid_grant", "Session not active")
    if token.expires < time.time():
        raise OAuthError("invalid_grant", "Token is not active")
    scope = form.get("scope") or token.scope
    if not set(scope.split()) <= set(token.scope.split()):
        raise OAuthError("invalid_scope", "Requested scope exceeds the granted scope")
    return issuer.tokens(auth.client.client_id, session, scope, nonce=None, thumbprint=auth.cert_thumbprint)


def ciba_poll(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str], *, auto: bool) -> dict[str, Any]:
    """CIBA poll mode: ``authorization_pending`` until the professional answers on the e-CPS app."""
    state, now = issuer.state, time.time()
    with state.lock:
        request = state.ciba.get(form.get("auth_req_id", ""))
        if request is None or request.client_id != auth.client.client_id:
            raise OAuthError("invalid_grant", "Invalid auth_req_id")
        too_soon = request.last_poll is not None and now - request.last_poll < request.interval
        if not too_soon:  # the interval runs from the last poll answered, so a hasty client still gets through
            request.last_poll = now
        if request.status == "pending" and auto and now - request.created >= CIBA_AUTO_APPROVAL_DELAY:
            request.status = "denied" if request.deny else "approved"
    issuer.notes.ciba_status = request.status
    if request.expires < now:
        raise OAuthError("expired_token", "The auth_req_id has expired")
    if too_soon:
        raise OAuthError("slow_down", f"Polling faster than the {request.interval}-second interval")
    if request.status == "pending":
        raise OAuthError("authorization_pending", "The end-user authorization is pending")
    if request.status == "denied":
        raise OAuthError("access_denied", "The end-user denied the authorization request")
    if request.status == "redeemed":
        raise OAuthError("invalid_grant", "The auth_req_id was already used")
    with state.lock:
        request.status = "redeemed"
        session = Session(f"ciba-{request.auth_req_id[:12]}", request.national_id)
        state.sessions[session.sid] = session
    return issuer.tokens(auth.client.client_id, session, request.scope, nonce=None,
                         thumbprint=auth.cert_thumbprint)


def token_exchange(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str],
                   cert_der: bytes | None) -> dict[str, Any]:
    """RFC 8693 for the "API Pro Santé connectées": a PSC access token for a certificate-bound API token."""
    if auth.cert_thumbprint is None or cert_der is None:
        raise OAuthError("invalid_request", "token exchange requires mutual TLS with a structure certificate "
                                            "(RFC 8705)")
    if not _structure_certificate(issuer, cert_der):
        raise OAuthError("invalid_request", "the client certificate does not identify a known structure "
                                            "(OU must be its FINESS number)")
    if form.get("subject_token_type") != TOKEN_TYPE_ACCESS:
        raise OAuthError("invalid_request", f"subject_token_type must be {TOKEN_TYPE_ACCESS}")
    claims = issuer.keys.verify(form.get("subject_token", ""))
    token = issuer.state.access_token(str(claims.get("jti"))) if claims else None
    if token is None or not token.active or token.expires < time.time():
        raise OAuthError("invalid_request", "Invalid token: subject_token is not an active PSC access token")
    session = issuer.state.sessions.get(token.grant_id)
    if session is None or not session.active:
        raise OAuthError("invalid_request", "Invalid token: the professional's session is over")
    audience = form.get("audience") or auth.client.client_id
    access = issuer.access_token(auth.client.client_id, session, token.scope, thumbprint=auth.cert_thumbprint,
                                 now=time.time(), audience=audience)
    issuer.notes.issued = TokenExchanged(bound_to=auth.cert_thumbprint, audience=audience)
    return {"access_token": access, "issued_token_type": TOKEN_TYPE_ACCESS, "token_type": "Bearer",
            "expires_in": issuer.access_lifetime()}


def _structure_certificate(issuer: Issuer, cert_der: bytes) -> bool:
    """IGC-Santé structure certificates carry the structure's FINESS as OU."""
    try:
        subject = x509.load_der_x509_certificate(cert_der).subject
    except ValueError:
        return False
    units = {str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    return bool(units & {s.finess for s in issuer.dataset.structures})


_GRANTS = {GRANT_CODE: authorization_code, GRANT_REFRESH: refresh}
KNOWN_GRANTS = (*_GRANTS, GRANT_CIBA, GRANT_TOKEN_EXCHANGE)
