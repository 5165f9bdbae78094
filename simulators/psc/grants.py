"""The token endpoint's grants: authorization code (with PKCE), refresh, client credentials, CIBA poll, token
exchange (RFC 8693).

Each grant takes the authenticated client and the form, and answers the token response or raises
:class:`~esante.simulators.kits.oauth.errors.OAuthError` with the code the federator would answer, in
Keycloak's words. :data:`GRANTS` is what the federator serves (its discovery document lists exactly these);
:data:`KEYCLOAK_REFUSALS` says how Keycloak refuses each grant it knows to a client not allowed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from esante.simulators.kits.oauth.clients import AuthenticatedClient
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.requests import grant_type_of
from esante.simulators.kits.oauth.server import AuthorizationCode, CodeWording, new_id
from esante.simulators.psc.notes import TokenExchanged
from esante.simulators.psc.protocol import (
    CIBA_AUTO_APPROVAL_DELAY,
    GRANT_CIBA,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_CODE,
    GRANT_DEVICE_CODE,
    GRANT_PASSWORD,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_ACCESS,
)
from esante.simulators.psc.state import Session
from esante.simulators.psc.tokens import Grant, Issuer

#: Keycloak's answers to a code it does not redeem.
CODE_WORDING = CodeWording(
    unknown="Code not valid", reused="Code not valid", expired="Code is expired",
    redirect_uri="Incorrect redirect_uri", verifier_missing="PKCE code verifier not specified",
    verifier_unexpected="PKCE code verifier specified but challenge not present in authorization",
    verifier_failed="PKCE verification failed")
#: Keycloak's refusal of a refresh bound to a certificate the client did not present (RFC 8705 §3).
UNBOUND_REFRESH = "Client Certification missing for MTLS HoK Token Binding"


def redeem(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    issuer.notes.grant_type = form.get("grant_type")
    grant_type = grant_type_of(form, set(auth.client.grant_types) & set(GRANTS), KEYCLOAK_REFUSALS)
    return GRANTS[grant_type](issuer, auth, form)


def authorization_code(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """A code presented again revokes the tokens issued with it (RFC 6749 §4.1.2)."""
    state = issuer.state

    def replayed(code: AuthorizationCode) -> None:
        state.revoke(code.tokens)

    code = state.redeem(form, auth.client.client_id, CODE_WORDING, replayed)
    session = state.session(code.grant_id, time.time())
    if session is None:
        raise OAuthError("invalid_grant", "Session not active")
    pending = code.pending
    answer = issuer.tokens(Grant(auth.client.client_id, session, pending.scope, auth.cert_thumbprint, pending.nonce,
                                 pending.claims))
    with state.lock:
        code.tokens += [t.id for t in state.tokens.values() if t.grant_id == code.grant_id]
    return answer


def refresh(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """A refresh in the same session, the tokens bound to the certificate the grant is bound to (which the
    client must present again), the ID token keeping the sign-in's ``auth_time``."""
    state = issuer.state
    token = state.refresh_token(form.get("refresh_token", ""))
    if token is None or token.client_id != auth.client.client_id:
        raise OAuthError("invalid_grant", "Invalid refresh token")
    session = state.session(token.grant_id, time.time())
    if "refresh_rejected" in issuer.behaviours or session is None or not token.active:
        raise OAuthError("invalid_grant", "Session not active")
    if token.expires < time.time():
        raise OAuthError("invalid_grant", "Token is not active")
    if token.cnf_thumbprint and token.cnf_thumbprint != auth.cert_thumbprint:
        raise OAuthError("unauthorized_client", UNBOUND_REFRESH)
    scope = form.get("scope") or token.scope
    if not set(scope.split()) <= set(token.scope.split()):
        raise OAuthError("invalid_scope", "Requested scope exceeds the granted scope")
    return issuer.tokens(Grant(auth.client.client_id, session, scope, token.cnf_thumbprint))


def client_credentials(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """The client's own service account (Keycloak): an access token only, no refresh or ID token."""
    session = issuer.state.open_session(Session(f"sa-{new_id(12)}", ""))
    scope = form.get("scope") or "scope_all"
    return issuer.tokens(Grant(auth.client.client_id, session, scope, auth.cert_thumbprint), with_refresh=False)


def ciba_poll(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """CIBA poll (and ping) mode: ``authorization_pending`` until the professional answers on the e-CPS app."""
    state, now = issuer.state, time.time()
    with state.lock:
        request = state.ciba.get(form.get("auth_req_id", ""))
        if request is None or request.client_id != auth.client.client_id:
            raise OAuthError("invalid_grant", "Invalid auth_req_id")
        too_soon = request.last_poll is not None and now - request.last_poll < request.interval
        if not too_soon:  # the interval runs from the last poll answered, so a hasty client still gets through
            request.last_poll = now
        if request.status == "pending" and issuer.ciba_auto and now - request.created >= CIBA_AUTO_APPROVAL_DELAY:
            request.status = "denied" if request.deny else "approved"
    issuer.notes.ciba_status, issuer.notes.ciba_ping = request.status, request.ping
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
    session = state.open_session(Session(f"ciba-{request.auth_req_id[:12]}", request.national_id))
    return issuer.tokens(Grant(auth.client.client_id, session, request.scope, auth.cert_thumbprint))


def token_exchange(issuer: Issuer, auth: AuthenticatedClient, form: dict[str, str]) -> dict[str, Any]:
    """RFC 8693 for the "API Pro Santé connectées": a PSC access token for a certificate-bound API token."""
    if auth.cert_thumbprint is None or auth.cert_der is None:
        raise OAuthError("invalid_request", "token exchange requires mutual TLS with a structure certificate "
                                            "(RFC 8705)")
    if not _structure_certificate(issuer, auth.cert_der):
        raise OAuthError("invalid_request", "the client certificate does not identify a known structure "
                                            "(OU must be its FINESS number)")
    if form.get("subject_token_type") != TOKEN_TYPE_ACCESS:
        raise OAuthError("invalid_request", f"subject_token_type must be {TOKEN_TYPE_ACCESS}")
    claims = issuer.keys.verify(form.get("subject_token", ""))
    token = issuer.state.access_token(str(claims.get("jti"))) if claims else None
    if token is None or not token.active or token.expires < time.time():
        raise OAuthError("invalid_request", "Invalid token: subject_token is not an active PSC access token")
    session = issuer.state.session(token.grant_id, time.time())
    if session is None:
        raise OAuthError("invalid_request", "Invalid token: the professional's session is over")
    audience = form.get("audience") or auth.client.client_id
    access = issuer.access_token(Grant(auth.client.client_id, session, token.scope, auth.cert_thumbprint),
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


GRANTS: dict[str, Callable[[Issuer, AuthenticatedClient, dict[str, str]], dict[str, Any]]] = {
    GRANT_CODE: authorization_code, GRANT_REFRESH: refresh, GRANT_CLIENT_CREDENTIALS: client_credentials,
    GRANT_CIBA: ciba_poll, GRANT_TOKEN_EXCHANGE: token_exchange}
#: Every grant Keycloak knows, with its refusal to a client not allowed it; PSC offers the password and device
#: grants to no one (its professionals sign in with a CPS or e-CPS, never a password).
KEYCLOAK_REFUSALS: dict[str, str] = {
    GRANT_CODE: "Client not allowed to exchange code",
    GRANT_REFRESH: "Client not allowed to refresh tokens",
    GRANT_CLIENT_CREDENTIALS: "Client not enabled to retrieve service account",
    GRANT_PASSWORD: "Client not allowed for direct access grants",
    GRANT_CIBA: "Client not allowed OIDC CIBA Grant",
    GRANT_DEVICE_CODE: "Client is not allowed to initiate OAuth 2.0 Device Authorization Grant. The flow is "
                       "disabled for the client.",
    GRANT_TOKEN_EXCHANGE: "Client not allowed to exchange",
}
