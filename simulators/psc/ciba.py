"""Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0, poll and ping modes) as PSC serves
it to thick clients' intermediary servers (PSC's ``channel`` parameter: the CPS card or the e-CPS app), and the
simulated e-CPS app where someone approves or refuses a request (``ciba: manual``). The token request itself is a
grant of the token endpoint (:func:`~.grants.ciba_poll`); a client registered for ping is told at its
notification endpoint when the professional has answered (§10.2), then asks for its tokens."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.dataset.models import OidcClient
from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError
from esante.simulators.kits.oauth.requests import read_form
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.psc.federator import Endpoints, Federator, pages, require_openid
from esante.simulators.psc.notes import BackchannelDelivery, PscNotes
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    CIBA_AUTO_APPROVAL_DELAY,
    CIBA_CHANNELS,
    CIBA_INTERVAL,
    CIBA_REQUEST_LIFETIME,
    ECPS_PATH,
    GRANT_CIBA,
)
from esante.simulators.psc.state import CibaRequest

MAX_BINDING_MESSAGE = 20  # characters: what the e-CPS app shows
MAX_NOTIFICATION_TOKEN = 1024  # characters (CIBA Core §7.1 sets no bound; ours keeps memory bounded)
PING_TIMEOUT = 5.0  # a client that does not answer its ping holds nothing up


class Ciba(Endpoints):
    """The backchannel authentication endpoint and the e-CPS app's pages."""

    def __init__(self, federator: Federator) -> None:
        super().__init__(federator)
        self._pings: set[asyncio.Task[None]] = set()  # the automatic answers on their way (kept from the collector)

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
        ciba = self.state.hold_ciba(CibaRequest(
            new_id(24), auth.client.client_id, form["login_hint"], " ".join(scopes), binding, form["channel"],
            expires=time.time() + CIBA_REQUEST_LIFETIME, interval=CIBA_INTERVAL,
            deny="ciba_deny" in behaviours_of(request), notification_token=_notification_token(auth.client, form)))
        if ciba.notification_token is not None and self.federator.ciba_auto:
            task = asyncio.get_running_loop().create_task(self._answer_later(ciba))
            self._pings.add(task)
            task.add_done_callback(self._pings.discard)
        return JSONResponse({"auth_req_id": ciba.auth_req_id, "expires_in": CIBA_REQUEST_LIFETIME,
                             "interval": CIBA_INTERVAL}, headers=NO_STORE)

    async def _answer_later(self, ciba: CibaRequest) -> None:
        """The simulated professional answers after a while; a ping-mode client is then told."""
        await asyncio.sleep(CIBA_AUTO_APPROVAL_DELAY)
        with self.state.lock:
            if ciba.status == "pending":
                ciba.status = "denied" if ciba.deny else "approved"
        await self._ping(ciba)

    async def _ping(self, ciba: CibaRequest) -> BackchannelDelivery | None:
        """CIBA Core §10.2: POST {"auth_req_id"} to the client's notification endpoint with its bearer token,
        once; what the client answered is kept for the journal."""
        with self.state.lock:
            if ciba.notification_token is None or ciba.ping is not None:
                return None
            try:
                uri = str(self.dataset.oidc_client(ciba.client_id).backchannel_client_notification_endpoint)
            except KeyError:  # the data set changed since the request: no one to tell
                return None
            ciba.ping = BackchannelDelivery(client_id=ciba.client_id, uri=uri)
        try:
            async with httpx.AsyncClient(timeout=PING_TIMEOUT) as http:
                answer = await http.post(uri, json={"auth_req_id": ciba.auth_req_id},
                                         headers={"Authorization": f"Bearer {ciba.notification_token}"})
            ciba.ping.status = answer.status_code
        except httpx.HTTPError as exc:
            ciba.ping.error = f"{type(exc).__name__}: {exc}"
        return ciba.ping

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
        notes = PscNotes.of(request)
        notes.ciba_decision = ciba.status
        notes.ciba_ping = await self._ping(ciba)
        return RedirectResponse(ECPS_PATH, status_code=303)


def _notification_token(client: OidcClient, form: dict[str, str]) -> str | None:
    """The bearer token a ping-mode client gives for its notification (CIBA Core §7.1: required in ping mode)."""
    if client.backchannel_token_delivery_mode != "ping":
        return None
    token = form.get("client_notification_token")
    if not token:
        raise OAuthError("invalid_request", "Missing parameter: client_notification_token")
    if len(token) > MAX_NOTIFICATION_TOKEN or not token.isprintable():
        raise OAuthError("invalid_request", "Invalid parameter: client_notification_token")
    return token
