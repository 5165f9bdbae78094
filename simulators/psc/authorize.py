"""The authorization code flow's front channel (OpenID Connect Core §3.1.2): the authorization request as
Keycloak checks it (a request object by value, the ``claims`` parameter, the query, fragment or form_post
response mode), the login page where the professional says who they are, and the authorization response
(which named behaviours tamper with: another state, another issuer, a replayed response).

The nonce is optional, as in OpenID Connect Core for the code flow and in Keycloak: PSC's public material shows
one in its examples but nowhere says a request without it is refused."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.dataset.models import OidcClient
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.oidc import requested_claims, with_request_object
from esante.simulators.kits.oauth.pkce import check_pkce
from esante.simulators.kits.oauth.redirects import error_redirect, redirect, response_mode_of, uri_registered
from esante.simulators.kits.oauth.requests import read_form, response_type_of
from esante.simulators.kits.oauth.server import PendingAuthorization, new_id
from esante.simulators.psc.federator import Endpoints, Federator, pages, require_openid
from esante.simulators.psc.notes import AuthorizationResponse, PscNotes
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    CODE_LIFETIME,
    KEYCLOAK_RESPONSE_TYPES,
    LOGIN_PATH,
    RESPONSE_TYPE_CODE,
    SUPPORTED_SCOPES,
)
from esante.simulators.psc.state import Session

ATTACKER_ISSUER = "https://attacker.example.org/auth/realms/esante-wallet"  # the tamper_iss behaviour


class Authorization(Endpoints):
    """``auto_login``: a professional id (PS001) signed in at once, without the login page."""

    def __init__(self, federator: Federator, auto_login: str | None) -> None:
        super().__init__(federator)
        self.auto_login = auto_login

    async def authorize(self, request: Request) -> Response:
        query = await read_form(request)
        client_id = query.get("client_id", "")
        try:
            client = self.dataset.oidc_client(client_id)
        except KeyError:
            return pages.message("Erreur", "Client not found.", 400)
        notes = PscNotes.of(request)
        notes.client_id = client_id
        try:
            form = with_request_object(query, client)
        except OAuthError as error:  # the redirect URI may be the request object's: only the query's is known
            return self._refused(request, error, query, client)
        if not uri_registered(form.get("redirect_uri", ""), client.redirect_uris):
            return pages.message("Erreur", "Invalid parameter: redirect_uri", 400)
        try:
            pending = self.state.hold(self._pending(form, client_id))
        except OAuthError as error:
            return self._refused(request, error, form, client)
        if self.auto_login:
            professional = self.dataset.professional(self.auto_login)
            return self._complete(request, pending, professional.national_id)
        return self._login_page(pending, client.name)

    def _refused(self, request: Request, error: OAuthError, form: dict[str, str], client: OidcClient) -> Response:
        """The error sent back to a registered redirect URI (RFC 6749 §4.1.2.1), else shown on a page."""
        error.note(PscNotes.of(request))
        redirect_uri = form.get("redirect_uri", "")
        if not uri_registered(redirect_uri, client.redirect_uris):
            return pages.message("Erreur", error.description, 400)
        try:
            mode = response_mode_of(form)
        except OAuthError:
            mode = "query"
        return error_redirect(redirect_uri, error, form.get("state"), self.issuer(request).issuer, mode)

    def _pending(self, form: dict[str, str], client_id: str) -> PendingAuthorization:
        """The authorization request, checked as Keycloak does (in its words)."""
        response_type_of(form, (RESPONSE_TYPE_CODE,), KEYCLOAK_RESPONSE_TYPES)
        mode = response_mode_of(form)
        scopes = form.get("scope", "").split()
        require_openid(scopes)
        unknown = [s for s in scopes if s not in SUPPORTED_SCOPES]
        if unknown:
            raise OAuthError("invalid_scope", f"Invalid scopes: {' '.join(unknown)}")
        if form.get("acr_values") not in (None, ACR_EIDAS1):
            raise OAuthError("invalid_request", f"Invalid parameter: acr_values (only {ACR_EIDAS1} is accepted)")
        claims = requested_claims(form)
        check_pkce(form.get("code_challenge_method"), form.get("code_challenge"))
        method = form.get("code_challenge_method") or ("plain" if form.get("code_challenge") else None)
        return PendingAuthorization(id=new_id(), client_id=client_id, redirect_uri=form["redirect_uri"],
                                    state=form.get("state"), nonce=form.get("nonce") or None, scope=" ".join(scopes),
                                    code_challenge=form.get("code_challenge"), code_challenge_method=method,
                                    response_mode=mode, claims=claims)

    def _login_page(self, pending: PendingAuthorization, client_name: str, error: str | None = None) -> Response:
        return pages.page("login.html", 400 if error else 200, client_name=client_name, transaction=pending.id,
                          action=LOGIN_PATH, professionals=self.dataset.professionals, error=error)

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        pending = self.state.take(form.get("transaction", ""))
        if pending is None:
            return pages.message("Erreur", "Your login attempt timed out. Login will start from the beginning.",
                                 400)
        try:
            professional = self.dataset.professional_by_national_id(form.get("national_id", ""))
        except KeyError:
            self.state.hold(pending)
            client_name = self.dataset.oidc_client(pending.client_id).name
            return self._login_page(pending, client_name, "Identifiant national inconnu.")
        PscNotes.of(request).client_id = pending.client_id
        return self._complete(request, pending, professional.national_id)

    def _complete(self, request: Request, pending: PendingAuthorization, national_id: str) -> Response:
        """Open the session, issue the code, send the browser back (behaviours may tamper with the answer)."""
        session = self.state.open_session(Session(new_id(16), national_id))
        with self.state.lock:
            code = self.state.issue_code(pending, session.sid, CODE_LIFETIME)
            previous = self.state.last_response.get(pending.client_id)
            self.state.last_response[pending.client_id] = (code.value, pending.state)
        params = {"state": pending.state, "session_state": session.sid, "iss": self.issuer(request).issuer,
                  "code": code.value}
        behaviours = behaviours_of(request)
        if "tamper_state" in behaviours:
            params["state"] = new_id(24)
        if "tamper_iss" in behaviours:
            params["iss"] = ATTACKER_ISSUER
        if "replay_response" in behaviours and previous is not None:
            params["code"], params["state"] = previous
        PscNotes.of(request).authorization_response = AuthorizationResponse(
            national_id=national_id, sid=session.sid, tampered=sorted(behaviours))
        return redirect(pending.redirect_uri, params, pending.response_mode)
