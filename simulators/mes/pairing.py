"""Pairing ("appariement"): MES's OAuth 2.0 authorization server (RFC 6749 code grant with PKCE S256, RFC
7636), the citizen's login and consent page, refresh tokens that rotate (RFC 9700 §4.14), revocation (RFC
7009), and the pairing's status as the app and the citizen see and end it. Our design: ``DESIGN.md``."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.responses import JSONResponse, Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.runtime import Simulator
from esante.simulators.dataset.models import MesPartner
from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError
from esante.simulators.kits.oauth.pages import Pages
from esante.simulators.kits.oauth.pkce import check_pkce
from esante.simulators.kits.oauth.redirects import error_redirect, redirect, uri_registered
from esante.simulators.kits.oauth.requests import (
    basic_credentials,
    grant_type_of,
    is_basic,
    read_form,
    response_type_of,
    secrets_equal,
)
from esante.simulators.kits.oauth.server import AuthorizationCode, CodeWording, PendingAuthorization, new_id
from esante.simulators.mes.access import Access
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.protocol import (
    ACCESS_LIFETIME,
    CODE_LIFETIME,
    CONSENT_PATH,
    CONTEXT_SCOPES,
    GRANT_CODE,
    GRANT_REFRESH,
    PAIRING_LIFETIME,
    SCOPE_OFFLINE,
    SHORT_ACCESS_LIFETIME,
    mes_patient_id,
)
from esante.simulators.mes.state import MesState, Pairing

pages = Pages("esante.simulators.mes")
#: The grants MES serves, each refused in these words to a partner (none is) not allowed it.
GRANTS = {GRANT_CODE: "partner not allowed to exchange a code", GRANT_REFRESH: "partner not allowed to refresh"}

#: MES's answers to a code it does not redeem; an expired code is taken for a replayed one.
CODE_WORDING = CodeWording(
    unknown="unknown authorization code", reused="authorization code already used or expired", expired=None,
    redirect_uri="redirect_uri differs from the authorization request's",
    verifier_missing="PKCE verification failed (code_verifier)",
    verifier_unexpected="PKCE verification failed (code_verifier)",
    verifier_failed="PKCE verification failed (code_verifier)")


class PairingServer:
    """The pairing endpoints; ``simulator`` gives the current data set."""

    def __init__(self, simulator: Simulator, state: MesState, access: Access) -> None:
        self.simulator, self.state, self.access = simulator, state, access

    def _partner(self, client_id: str) -> MesPartner:
        try:
            partner = self.simulator.dataset.mes_partner(client_id)
        except KeyError:
            raise OAuthError("invalid_client", f"unknown partner app {client_id!r}", 401) from None
        if partner.status == "suspended" or not partner.data_exchange:
            raise OAuthError("unauthorized_client", f"{partner.name} may not pair (status {partner.status}, "
                                                    f"data exchange {partner.data_exchange})")
        return partner

    # -- the app sends the citizen to MES ----------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        form = await read_form(request)
        notes = MesNotes.of(request)
        notes.client_id = form.get("client_id")
        try:
            partner = self._partner(form.get("client_id", ""))
        except OAuthError as error:
            return pages.message("Erreur", error.description, 400)
        redirect_uri = form.get("redirect_uri", "")
        if not uri_registered(redirect_uri, partner.redirect_uris):
            return pages.message("Erreur", "redirect_uri non enregistrée", 400)
        try:
            pending = self.state.hold(_pending(form, partner, redirect_uri))
        except OAuthError as error:
            notes.error = error.error
            return error_redirect(redirect_uri, error, form.get("state"))
        return pages.page("consent.html", client_name=partner.name, scopes=pending.scope.split(),
                          transaction=pending.id, action=CONSENT_PATH, patients=self.simulator.dataset.patients)

    async def consent(self, request: Request) -> Response:
        """The citizen signs in and accepts or refuses; the browser goes back to the app."""
        form = await read_form(request)
        notes = MesNotes.of(request)
        pending = self.state.take(form.get("transaction", ""))
        if pending is None:
            return pages.message("Erreur", "Demande expirée : recommencez depuis l'application.", 400)
        state = new_id(24) if "tamper_state" in behaviours_of(request) else pending.state
        notes.client_id, notes.tampered = pending.client_id, state != pending.state
        if form.get("decision") != "accept":
            notes.consent = "refused"
            return redirect(pending.redirect_uri, {"error": "access_denied", "state": state,
                                                   "error_description": "the citizen refused the pairing"})
        try:
            patient = self.simulator.dataset.patient(form.get("patient", ""))
        except KeyError:
            return pages.message("Erreur", "Identifiant inconnu.", 400)
        now = time.time()
        pairing = Pairing(new_id(12), pending.client_id, patient.id, pending.scope, now, now + PAIRING_LIFETIME)
        with self.state.lock:  # the code first: a purge forgets a pairing that no code or token refers to
            code = self.state.issue_code(pending, pairing.id, CODE_LIFETIME)
            self.state.add_pairing(pairing)
        notes.consent, notes.pairing_id, notes.patient = "given", pairing.id, patient.id
        return redirect(pending.redirect_uri, {"code": code.value, "state": state})

    # -- the app's back channel ------------------------------------------------------------------------------
    def _client(self, request: Request, form: dict[str, str]) -> MesPartner:
        """A confidential partner authenticates with HTTP Basic; a public one (no secret) names itself."""
        header = request.headers.get("authorization")
        if is_basic(header):
            client_id, secret = basic_credentials(str(header))
            partner = self._partner(client_id)
            if not partner.secret or not secrets_equal(secret, partner.secret):
                raise OAuthError("invalid_client", "client authentication failed", 401)
        else:
            partner = self._partner(form.get("client_id", ""))
            if partner.secret:
                raise OAuthError("invalid_client", f"{partner.client_id} is confidential: use HTTP Basic", 401)
        MesNotes.of(request).client_id = partner.client_id
        return partner

    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        partner = self._client(request, form)
        grant = grant_type_of(form, GRANTS, GRANTS)
        pairing = self._redeem(partner, form) if grant == GRANT_CODE else self._refresh(partner, form)
        lifetime = SHORT_ACCESS_LIFETIME if "short_lifetimes" in behaviours_of(request) else ACCESS_LIFETIME
        access, refresh = self.state.issue(pairing, lifetime, SCOPE_OFFLINE in pairing.scope.split())
        patient = self.simulator.dataset.patient(pairing.patient_id)
        MesNotes.of(request).pairing_id = pairing.id
        answer = {"access_token": access.id, "token_type": "Bearer", "expires_in": int(lifetime),
                  "scope": pairing.scope, "patient": mes_patient_id(patient.ins.nir), "pairing_id": pairing.id}
        if refresh is not None:
            answer["refresh_token"] = refresh.id
        return JSONResponse(answer, headers=NO_STORE)

    def _redeem(self, partner: MesPartner, form: dict[str, str]) -> Pairing:
        """A code presented again (or too late) ends its pairing (RFC 6749 §4.1.2)."""

        def replayed(code: AuthorizationCode) -> None:
            if (pairing := self.state.pairing(code.grant_id)) is not None:
                self.state.end_pairing(pairing, "replay")

        code = self.state.redeem(form, partner.client_id, CODE_WORDING, replayed)
        pairing = self.state.pairing(code.grant_id)
        if pairing is None:
            raise OAuthError("invalid_grant", CODE_WORDING.unknown)
        return pairing

    def _refresh(self, partner: MesPartner, form: dict[str, str]) -> Pairing:
        """Refresh tokens rotate: each is good once; the pairing must still be active."""
        with self.state.lock:
            token = self.state.token(form.get("refresh_token", ""), "refresh")
            pairing = self.state.pairing(token.grant_id) if token is not None else None
            if token is None or pairing is None:
                raise OAuthError("invalid_grant", "unknown refresh token")
            if pairing.client_id != partner.client_id:
                raise OAuthError("invalid_grant", "refresh token issued to another app")
            if pairing.status() != "active":
                raise OAuthError("invalid_grant", pairing.ended())
            if not token.active:
                self.state.end_pairing(pairing, "replay")  # a reused rotated token: assume it was stolen
                raise OAuthError("invalid_grant", "refresh token already used")
            token.active = False
        return pairing

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request)
        partner = self._client(request, form)
        token = self.state.tokens.get(form.get("token", ""))
        if token is not None and token.client_id == partner.client_id:
            self.state.revoke_token(token)  # RFC 7009 §2.1: a refresh token takes the pairing's tokens along
        return Response(status_code=200, headers=NO_STORE)

    # -- the pairing, as the app and the citizen see it ------------------------------------------------------
    async def pairing(self, request: Request) -> Response:
        """GET: the pairing's status (readable after it ended); DELETE: the app ends it."""
        pairing = self.access.bearer(request, check_pairing=False).pairing
        if request.method == "DELETE":
            self.state.end_pairing(pairing, "partner")
            return Response(status_code=204)
        return JSONResponse({"pairing_id": pairing.id, "status": pairing.status(), "scope": pairing.scope,
                             "created": int(pairing.created), "expires": int(pairing.expires),
                             "revoked_by": pairing.revoked_by}, headers=NO_STORE)

    async def user_revoke(self, request: Request) -> Response:
        """The citizen ends a pairing from their space (the simulated "Applications connectées" page)."""
        pairing = self.state.pairing(request.path_params["pairing_id"])
        if pairing is None:
            return pages.message("Erreur", "Appariement inconnu.", 404)
        self.state.end_pairing(pairing, "user")
        MesNotes.of(request).pairing_id = pairing.id
        return pages.message("Appariement révoqué", "L'application n'a plus accès.")


def _pending(form: dict[str, str], partner: MesPartner, redirect_uri: str) -> PendingAuthorization:
    """The authorization request: a code, with PKCE S256 (mandatory at MES), for scopes the partner holds."""
    response_type_of(form, ("code",), ("code",))
    if not form.get("code_challenge") or form.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 is required")
    check_pkce("S256", form["code_challenge"])
    scopes = form.get("scope", "").split()
    refused = [s for s in scopes if s not in partner.scopes and s not in CONTEXT_SCOPES]
    if not scopes or refused:
        raise OAuthError("invalid_scope", f"scopes not granted to {partner.name}: {' '.join(refused) or '(none)'}")
    return PendingAuthorization(id=new_id(), client_id=partner.client_id, redirect_uri=redirect_uri,
                                state=form.get("state"), scope=" ".join(scopes), code_challenge=form["code_challenge"],
                                code_challenge_method="S256")
