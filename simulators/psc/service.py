"""The Pro Santé Connect simulator: discovery, authorize and login page, token, userinfo, JWKS, introspection,
revocation, end session, CIBA and the simulated e-CPS app (paths in :mod:`simulators.psc.protocol`)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import httpx
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.notes import Notes
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.kits.oauth.clients import AuthenticatedClient, ClientCall, authenticate_client, cert_thumbprint
from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError
from esante.simulators.kits.oauth.pages import Pages
from esante.simulators.kits.oauth.pkce import check_pkce
from esante.simulators.kits.oauth.redirects import error_redirect, redirect, uri_registered
from esante.simulators.kits.oauth.requests import bearer_token, read_form
from esante.simulators.kits.oauth.routes import Route, router_of
from esante.simulators.kits.oauth.server import PendingAuthorization, new_id
from esante.simulators.psc.claims import userinfo_claims
from esante.simulators.psc.discovery import discovery_document
from esante.simulators.psc.grants import redeem
from esante.simulators.psc.keys import SigningKeys
from esante.simulators.psc.notes import AuthorizationResponse, BackchannelDelivery, EndedSession, PscNotes
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    AUTHORIZE_PATH,
    CIBA_CHANNELS,
    CIBA_INTERVAL,
    CIBA_PATH,
    CIBA_REQUEST_LIFETIME,
    CODE_LIFETIME,
    ECPS_PATH,
    GRANT_CIBA,
    INTROSPECT_PATH,
    ISSUER_PATH,
    JWKS_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    REVOKE_PATH,
    STANDARD_DISCOVERY_PATH,
    SUPPORTED_SCOPES,
    TOKEN_PATH,
    USERINFO_PATH,
    WALLET_DISCOVERY_PATH,
    subject_of,
)
from esante.simulators.psc.state import CibaRequest, FederatorState, Session, Token
from esante.simulators.psc.tokens import Issuer

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
BACKCHANNEL_TIMEOUT = 5.0  # a relying party that does not answer must not hold the user's logout page



pages = Pages("esante.simulators.psc")


def client_cert(request: Request) -> bytes | None:
    return (request.scope.get("extensions", {}).get("tls") or {}).get("client_cert_der")


class PscSimulator(Simulator):
    """The Pro Santé Connect federator (realm ``esante-wallet``).

    Options: ``public_url`` — the base URL candidates reach it at (default: from each request's Host, as a
    Keycloak behind a proxy); ``auto_login`` — a professional id (PS001) signed in at once, without the
    login page (for editors' CI); ``ciba`` — ``auto`` (the simulated professional approves after a second)
    or ``manual`` (someone approves on the e-CPS page).
    """

    name: ClassVar[str] = "psc"
    title: ClassVar[str] = "Pro Santé Connect"
    notes_model: ClassVar[type[Notes]] = PscNotes

    def __init__(self, dataset: Dataset, *, public_url: str | None = None, auto_login: str | None = None,
                 ciba: str = "auto") -> None:
        super().__init__(dataset)
        if ciba not in ("auto", "manual"):
            raise ValueError("ciba must be auto or manual")
        self.public_url = public_url.rstrip("/") if public_url else None
        self.auto_login = auto_login
        self.ciba_auto = ciba == "auto"
        self.keys = SigningKeys()
        self.state = FederatorState()

    def reset(self) -> None:
        self.keys.reset()
        self.state.reset()

    def error_response(self, error: ServiceError) -> Response:
        spec = self.injected_fault(error)
        if spec is not None:
            return OAuthError(error.code or "server_error", spec.description, spec.status).response()
        if error.kind == "too_large":
            return OAuthError("invalid_request", error.message, 413).response()
        return OAuthError("server_error", error.message, 500).response()

    # -- helpers -----------------------------------------------------------------------------------------
    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    def issuer(self, request: Request) -> Issuer:
        return Issuer(self.dataset, self.keys, self.state, self.base_url(request) + ISSUER_PATH,
                      behaviours_of(request), PscNotes.of(request))

    def authenticate(self, request: Request, form: dict[str, str]) -> AuthenticatedClient:
        base = self.base_url(request)
        call = ClientCall(form, request.headers.get("authorization"), client_cert(request))
        with self.state.lock:
            auth = authenticate_client(call, self.dataset.oidc_client, (base + ISSUER_PATH, base + TOKEN_PATH),
                                       self.state.assertion_jtis)
        notes = PscNotes.of(request)
        notes.client_id, notes.client_auth = auth.client.client_id, auth.method
        return auth

    # -- routes ------------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        routes: list[Route] = [
            (WALLET_DISCOVERY_PATH, ["GET"], "discovery", self.discovery),
            (STANDARD_DISCOVERY_PATH, ["GET"], "discovery", self.discovery),
            (JWKS_PATH, ["GET"], "jwks", self.jwks),
            (AUTHORIZE_PATH, ["GET", "POST"], "authorize", self.authorize),
            (LOGIN_PATH, ["POST"], "login", self.login),
            (TOKEN_PATH, ["POST"], "token", self.token),
            (USERINFO_PATH, ["GET", "POST"], "userinfo", self.userinfo),
            (INTROSPECT_PATH, ["POST"], "introspect", self.introspect),
            (REVOKE_PATH, ["POST"], "revoke", self.revoke),
            (LOGOUT_PATH, ["GET", "POST"], "logout", self.logout),
            (CIBA_PATH, ["POST"], "ciba_auth", self.ciba_auth),
            (ECPS_PATH, ["GET"], "ecps", self.ecps),
            (ECPS_PATH + "/{auth_req_id}", ["POST"], "ecps_decision", self.ecps_decision),
        ]
        return router_of(routes, PscNotes)

    async def discovery(self, request: Request) -> Response:
        base = self.base_url(request)
        return JSONResponse(discovery_document(base, base + ISSUER_PATH))

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.keys.jwks(), headers={"Cache-Control": "no-cache"})

    # authorization code flow ----------------------------------------------------------------------------
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
        _require_openid(scopes)
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
            params["iss"] = "https://attacker.example.org/auth/realms/esante-wallet"
        if "replay_response" in behaviours and previous is not None:
            params["code"], params["state"] = previous
        PscNotes.of(request).authorization_response = AuthorizationResponse(
            national_id=national_id, sid=session.sid, tampered=sorted(behaviours))
        return redirect(pending.redirect_uri, params)

    # token endpoint ------------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        answer = redeem(self.issuer(request), auth, form, ciba_auto=self.ciba_auto, cert_der=client_cert(request))
        return JSONResponse(answer, headers=NO_STORE)

    # bearer token uses ----------------------------------------------------------------------------------
    def _bearer(self, request: Request, form: dict[str, str]) -> tuple[dict[str, Any], Session]:
        """The claims and session of the access token presented (RFC 6750), or ``invalid_token``."""
        value = bearer_token(request, form)
        notes = PscNotes.of(request)
        claims = self.keys.verify(value) if value else None
        token = self.state.access_token(str(claims.get("jti"))) if claims else None
        if token is None:
            notes.token_state = "missing" if not value else "unknown"
            raise OAuthError("invalid_token", "Token verification failed", 401)
        expired_by = time.time() - token.expires
        notes.token_state = "expired" if expired_by > 0 else ("revoked" if not token.active else "valid")
        notes.token_expires_in = round(-expired_by, 3)
        if notes.token_state != "valid":
            raise OAuthError("invalid_token", "Token is not active", 401)
        if token.cnf_thumbprint and token.cnf_thumbprint != cert_thumbprint(client_cert(request)):
            notes.token_state = "unbound"
            raise OAuthError("invalid_token", "Client certificate missing, or not the one the token is bound to", 401)
        return claims or {}, self.state.sessions[token.grant_id]

    async def userinfo(self, request: Request) -> Response:
        form = await read_form(request) if request.method == "POST" else {}
        claims, session = self._bearer(request, form)
        professional = self.dataset.professional_by_national_id(session.national_id)
        info = userinfo_claims(self.dataset, professional)
        if "application/jwt" in request.headers.get("accept", ""):
            signed = self.keys.sign({**info, "iss": self.issuer(request).issuer, "aud": claims.get("azp")})
            return Response(signed, media_type="application/jwt", headers=NO_STORE)
        return JSONResponse(info, headers=NO_STORE)

    def _presented_token(self, value: str) -> tuple[dict[str, Any] | None, Token | None]:
        """A token given to introspection or revocation: a signed access token (by its jti) or a refresh token."""
        claims = self.keys.verify(value)
        return claims, (self.state.access_token(str(claims.get("jti"))) if claims
                        else self.state.refresh_token(value))

    async def introspect(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        claims, token = self._presented_token(form.get("token", ""))
        foreign = token is not None and token.client_id != auth.client.client_id and not auth.client.resource_server
        if token is None or foreign or not token.active or token.expires < time.time():
            return JSONResponse({"active": False}, headers=NO_STORE)
        answer: dict[str, Any] = {"active": True, "client_id": token.client_id, "exp": int(token.expires),
                                  "iat": int(token.issued), "scope": token.scope, "token_type": "Bearer",
                                  "acr": ACR_EIDAS1, "sid": token.grant_id}
        if token.kind == "access":  # PSC gives the national id only for an access token
            answer |= {"SubjectNameID": token.national_id, "sub": claims.get("sub") if claims else None}
            if token.cnf_thumbprint:
                answer["cnf"] = {"x5t#S256": token.cnf_thumbprint}
        else:
            answer["token_type"] = "Refresh"
        return JSONResponse(answer, headers=NO_STORE)

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        _, token = self._presented_token(form.get("token", ""))
        if token is not None and token.client_id == auth.client.client_id:
            token.active = False
            PscNotes.of(request).revoked = token.kind
        return Response(status_code=200, headers=NO_STORE)  # RFC 7009 §2.2: 200 whatever the token was

    async def logout(self, request: Request) -> Response:
        form = await read_form(request)
        hint = form.get("id_token_hint")
        claims = self.keys.verify(hint) if hint else None
        client_id = form.get("client_id") or (claims or {}).get("aud")
        notes = PscNotes.of(request)
        notes.client_id = client_id
        post_logout = form.get("post_logout_redirect_uri")
        refusal = self._logout_refusal(hint, claims, client_id, post_logout)
        if refusal is not None:
            notes.error, message = refusal
            return pages.message("Erreur", message, 400)
        if claims is not None and (ended := self.state.end_session(str(claims.get("sid")))) is not None:
            notes.ended_session = EndedSession(sid=ended.sid, clients=sorted(ended.client_ids))
            notes.backchannel_logout = await self._backchannel_logout(request, ended)
        if post_logout:
            return redirect(post_logout, {"state": form.get("state")})
        return pages.message("Déconnexion", "Vous êtes déconnecté de Pro Santé Connect.", 200)

    def _logout_refusal(self, hint: str | None, claims: dict[str, Any] | None, client_id: str | None,
                        post_logout: str | None) -> tuple[str, str] | None:
        """Why Keycloak would refuse this end-session request (the error noted, the page's message), if it would."""
        if hint and claims is None:
            return "invalid_id_token_hint", "Invalid parameter: id_token_hint"
        if post_logout and not client_id:
            return "missing_id_token_hint", "Missing parameters: id_token_hint"
        if post_logout:
            try:
                registered = self.dataset.oidc_client(str(client_id)).post_logout_redirect_uris
            except KeyError:
                registered = []
            if not uri_registered(post_logout, registered):
                return "invalid_redirect_uri", "Invalid redirect uri"
        return None

    async def _backchannel_logout(self, request: Request, session: Session) -> list[BackchannelDelivery]:
        """OpenID Connect Back-Channel Logout 1.0: tell every client of the session that registered a URI.

        What each client answered is kept in the end-session exchange's notes: the evidence of the delivery.
        """
        deliveries = []
        issuer = self.issuer(request).issuer
        for client_id in sorted(session.client_ids):
            uri = self.dataset.oidc_client(client_id).backchannel_logout_uri
            if not uri:
                continue
            token = self.keys.sign({"iss": issuer, "aud": client_id, "iat": int(time.time()), "jti": new_id(16),
                                    "exp": int(time.time()) + 120, "sub": subject_of(session.national_id),
                                    "sid": session.sid, "events": {BACKCHANNEL_EVENT: {}}}, typ="logout+jwt")
            try:
                async with httpx.AsyncClient(timeout=BACKCHANNEL_TIMEOUT) as http:
                    answer = await http.post(uri, data={"logout_token": token})
                deliveries.append(BackchannelDelivery(client_id=client_id, uri=uri, status=answer.status_code))
            except httpx.HTTPError as exc:
                deliveries.append(BackchannelDelivery(client_id=client_id, uri=uri,
                                                      error=f"{type(exc).__name__}: {exc}"))
        return deliveries

    # CIBA and the simulated e-CPS app --------------------------------------------------------------------
    async def ciba_auth(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        if GRANT_CIBA not in auth.client.grant_types:
            raise OAuthError("unauthorized_client", f"client {auth.client.client_id} may not use CIBA")
        scopes = form.get("scope", "").split()
        _require_openid(scopes)
        if form.get("acr_values") not in (None, ACR_EIDAS1):
            raise OAuthError("invalid_request", f"Invalid parameter: acr_values (only {ACR_EIDAS1} is accepted)")
        if not form.get("login_hint"):
            raise OAuthError("invalid_request", "Missing parameter: login_hint")
        try:
            self.dataset.professional_by_national_id(form["login_hint"])
        except KeyError:
            raise OAuthError("unknown_user_id", "login_hint is not a known professional's national id") from None
        if form.get("channel") not in CIBA_CHANNELS:
            raise OAuthError("invalid_request", f"Invalid parameter: channel (one of {', '.join(CIBA_CHANNELS)})")
        binding = form.get("binding_message")
        if binding is not None and (len(binding) > 20 or not binding.isprintable()):
            raise OAuthError("invalid_binding_message", "binding_message must be short printable text")
        ciba = CibaRequest(new_id(24), auth.client.client_id, form["login_hint"], " ".join(scopes), binding,
                           form["channel"], expires=time.time() + CIBA_REQUEST_LIFETIME, interval=CIBA_INTERVAL,
                           deny="ciba_deny" in behaviours_of(request))
        with self.state.lock:
            self.state.ciba[ciba.auth_req_id] = ciba
        return JSONResponse({"auth_req_id": ciba.auth_req_id, "expires_in": CIBA_REQUEST_LIFETIME,
                             "interval": CIBA_INTERVAL}, headers=NO_STORE)

    async def ecps(self, request: Request) -> Response:
        with self.state.lock:
            pending = [r for r in self.state.ciba.values() if r.status == "pending" and r.expires > time.time()]
        rows = [{"client_name": self.dataset.oidc_client(r.client_id).name, "national_id": r.national_id,
                 "binding_message": r.binding_message, "channel": r.channel,
                 "action": f"{ECPS_PATH}/{r.auth_req_id}"} for r in pending]
        return pages.page("ecps.html", requests=rows)

    async def ecps_decision(self, request: Request) -> Response:
        form = await read_form(request)
        with self.state.lock:
            ciba = self.state.ciba.get(request.path_params["auth_req_id"])
            if ciba is None or ciba.status != "pending":
                return pages.message("Erreur", "Demande inconnue ou déjà traitée.", 404)
            ciba.status = "approved" if form.get("decision") == "approve" else "denied"
        PscNotes.of(request).ciba_decision = ciba.status
        return RedirectResponse(ECPS_PATH, status_code=303)


def _require_openid(scopes: list[str]) -> None:
    if "openid" not in scopes:
        raise OAuthError("invalid_scope", "Invalid scopes: openid is required")
