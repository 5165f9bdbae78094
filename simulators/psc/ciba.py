"""Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0, poll mode) as PSC serves it to
thick clients' intermediary servers (PSC's ``channel`` parameter: the CPS card or the e-CPS app), and the
simulated e-CPS app where someone approves or refuses a request (``ciba: manual``). The poll itself is a grant
of the token endpoint (:func:`~.grants.ciba_poll`)."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError
from esante.simulators.kits.oauth.requests import read_form
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.psc.federator import Endpoints, pages, require_openid
from esante.simulators.psc.notes import PscNotes
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    CIBA_CHANNELS,
    CIBA_INTERVAL,
    CIBA_REQUEST_LIFETIME,
    ECPS_PATH,
    GRANT_CIBA,
)
from esante.simulators.psc.state import CibaRequest

MAX_BINDING_MESSAGE = 20  # characters: what the e-CPS app shows


class Ciba(Endpoints):
    """The backchannel authentication endpoint and the e-CPS app's pages."""

    async def ciba_auth(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        if GRANT_CIBA not in auth.client.grant_types:
            raise OAuthError("unauthorized_client", f"client {auth.client.client_id} may not use CIBA")
        scopes = form.get("scope", "").split()
        require_openid(scopes)
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
        if binding is not None and (len(binding) > MAX_BINDING_MESSAGE or not binding.isprintable()):
            raise OAuthError("invalid_binding_message", "binding_message must be short printable text")
        ciba = CibaRequest(new_id(24), auth.client.client_id, form["login_hint"], " ".join(scopes), binding,
                           form["channel"], expires=time.time() + CIBA_REQUEST_LIFETIME, interval=CIBA_INTERVAL,
                           deny="ciba_deny" in behaviours_of(request))
        self.state.hold_ciba(ciba)
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
