"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) as Keycloak answers it, and the back-channel
logout tokens sent to the session's clients (OpenID Connect Back-Channel Logout 1.0)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import Request
from starlette.responses import Response

from esante.simulators.kits.oauth.redirects import redirect, uri_registered
from esante.simulators.kits.oauth.requests import read_form
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.psc.federator import Endpoints, pages
from esante.simulators.psc.notes import BackchannelDelivery, EndedSession, PscNotes
from esante.simulators.psc.protocol import subject_of
from esante.simulators.psc.state import Session

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
BACKCHANNEL_TIMEOUT = 5.0  # a relying party that does not answer must not hold the user's logout page
LOGOUT_TOKEN_LIFETIME = 120


class EndSession(Endpoints):
    """The end-session endpoint."""

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
            now = int(time.time())
            token = self.keys.sign({"iss": issuer, "aud": client_id, "iat": now, "jti": new_id(16),
                                    "exp": now + LOGOUT_TOKEN_LIFETIME, "sub": subject_of(session.national_id),
                                    "sid": session.sid, "events": {BACKCHANNEL_EVENT: {}}}, typ="logout+jwt")
            try:
                async with httpx.AsyncClient(timeout=BACKCHANNEL_TIMEOUT) as http:
                    answer = await http.post(uri, data={"logout_token": token})
                deliveries.append(BackchannelDelivery(client_id=client_id, uri=uri, status=answer.status_code))
            except httpx.HTTPError as exc:
                deliveries.append(BackchannelDelivery(client_id=client_id, uri=uri,
                                                      error=f"{type(exc).__name__}: {exc}"))
        return deliveries
