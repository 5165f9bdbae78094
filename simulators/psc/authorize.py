"""The authorization code flow's front channel (OpenID Connect Core §3.1.2): the authorization request as
Keycloak checks it, the login page where the professional says who they are, and the authorization response
(which named behaviours tamper with: another state, another issuer, a replayed response)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.pkce import check_pkce
from esante.simulators.kits.oauth.redirects import error_redirect, redirect, uri_registered
from esante.simulators.kits.oauth.requests import read_form
from esante.simulators.kits.oauth.server import PendingAuthorization, new_id
from esante.simulators.psc.federator import Endpoints, Federator, pages, require_openid
from esante.simulators.psc.notes import AuthorizationResponse, PscNotes
from esante.simulators.psc.protocol import ACR_EIDAS1, CODE_LIFETIME, LOGIN_PATH, SUPPORTED_SCOPES
from esante.simulators.psc.state import Session

ATTACKER_ISSUER = "https://attacker.example.org/auth/realms/esante-wallet"  # the tamper_iss behaviour


class Authorization(Endpoints):
    """``auto_login``: a professional id (PS001) signed in at once, without the login page."""

    def __init__(self, federator: Federator, auto_login: str | None) -> None:
        super().__init__(federator)
        self.auto_login = auto_login

    async def authorize(self, request: Request) -> Response:
        form = await read_form(request)
        client_id = form.get("client_id", "")
        try:
            client = self.dataset.oidc_client(client_id)
        except KeyError:
            return pages.message("Erreur", "Client not found.", 400)
        redirect_uri = form.get("redirect_uri", "")
        if not uri_registered(redirect_uri, client.redirect_uris):
            return pages.message("Erreur", "Invalid parameter: redirect_uri", 400)
        notes = PscNotes.of(request)
        notes.client_id = client_id
        try:
            pending = self.state.hold(self._pending(form, client_id, redirect_uri))
        except OAuthError as error:
            notes.error = error.error
            return error_redirect(redirect_uri, error, form.get("state"), self.issuer(request).issuer)
        if self.auto_login:
            professional = self.dataset.professional(self.auto_login)
            return self._complete(request, pending, professional.national_id)
        return self._login_page(pending, client.name)

    def _pending(self, form: dict[str, str], client_id: str, redirect_uri: str) -> PendingAuthorization:
        """The authorization request, checked as Keycloak does (in its words)."""
        if form.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "Client is not allowed to initiate browser login with "
                                                          f"given response_type {form.get('response_type')!r}")
        scopes = form.get("scope", "").split()
        require_openid(scopes)
        unknown = [s for s in scopes if s not in SUPPORTED_SCOPES]
        if unknown:
            raise OAuthError("invalid_scope", f"Invalid scopes: {' '.join(unknown)}")
        if form.get("acr_values") not in (None, ACR_EIDAS1):
            raise OAuthError("invalid_request", f"Invalid parameter: acr_values (only {ACR_EIDAS1} is accepted)")
        if not form.get("nonce"):
            raise OAuthError("invalid_request", "Missing parameter: nonce")
        check_pkce(form.get("code_challenge_method"), form.get("code_challenge"))
        method = form.get("code_challenge_method") or ("plain" if form.get("code_challenge") else None)
        return PendingAuthorization(id=new_id(), client_id=client_id, redirect_uri=redirect_uri,
                                    state=form.get("state"), nonce=form["nonce"], scope=" ".join(scopes),
                                    code_challenge=form.get("code_challenge"), code_challenge_method=method)

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
        session = Session(new_id(16), national_id)
        with self.state.lock:
            self.state.sessions[session.sid] = session
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
        return redirect(pending.redirect_uri, params)
