"""The token endpoint (its grants: :mod:`.grants`) and the endpoints tokens are presented at: userinfo
(bearer token, RFC 6750; JSON or a signed JWT), introspection (RFC 7662) and revocation (RFC 7009: a refresh
token takes its client's tokens of the same session with it, as Keycloak ends the client's session)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse, Response

from esante.simulators.kits.oauth.clients import cert_thumbprint
from esante.simulators.kits.oauth.errors import NO_STORE, OAuthError
from esante.simulators.kits.oauth.requests import bearer_token, read_form
from esante.simulators.psc.claims import userinfo_claims
from esante.simulators.psc.federator import Endpoints, client_cert
from esante.simulators.psc.grants import redeem
from esante.simulators.psc.notes import PscNotes
from esante.simulators.psc.protocol import ACR_EIDAS1
from esante.simulators.psc.state import Session, Token
from esante.simulators.psc.tokens import subject_and_username


class TokenEndpoints(Endpoints):
    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        auth = self.authenticate(request, form)
        return JSONResponse(redeem(self.issuer(request), auth, form), headers=NO_STORE)

    def _bearer(self, request: Request, form: dict[str, str]) -> tuple[dict[str, Any], Session]:
        """The claims and session of the access token presented (RFC 6750), or ``invalid_token``. A token
        expired long enough to be forgotten is still told expired, by its own ``exp``."""
        value = bearer_token(request, form)
        notes = PscNotes.of(request)
        claims = self.keys.verify(value) if value else None
        token = self.state.access_token(str(claims.get("jti"))) if claims else None
        now = time.time()
        expires = token.expires if token else (claims or {}).get("exp")
        if token is None and not (isinstance(expires, int) and expires < now):
            notes.token_state = "missing" if not value else "unknown"
            raise OAuthError("invalid_token", "Token verification failed", 401)
        expired_by = now - float(expires or 0)
        session = self.state.session(token.grant_id, now) if token else None
        live = token is not None and token.active and session is not None
        notes.token_state = "expired" if expired_by > 0 else ("valid" if live else "revoked")
        notes.token_expires_in = round(-expired_by, 3)
        if notes.token_state != "valid" or token is None or session is None:
            raise OAuthError("invalid_token", "Token is not active", 401)
        if token.cnf_thumbprint and token.cnf_thumbprint != cert_thumbprint(client_cert(request)):
            notes.token_state = "unbound"
            raise OAuthError("invalid_token", "Client certificate missing, or not the one the token is bound to", 401)
        return claims or {}, session

    async def userinfo(self, request: Request) -> Response:
        form = await read_form(request) if request.method == "POST" else {}
        claims, session = self._bearer(request, form)
        if session.national_id:
            info = userinfo_claims(self.dataset, self.dataset.professional_by_national_id(session.national_id))
        else:  # a service account: who it is, and nothing of a professional
            subject, username = subject_and_username(session, str(claims.get("azp")))
            info = {"sub": subject, "preferred_username": username}
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
        now = time.time()
        if token is None or foreign or not token.active or token.expires < now or \
                self.state.session(token.grant_id, now, touch=False) is None:
            return JSONResponse({"active": False}, headers=NO_STORE)
        answer: dict[str, Any] = {"active": True, "client_id": token.client_id, "exp": int(token.expires),
                                  "iat": int(token.issued), "scope": token.scope, "token_type": "Bearer",
                                  "acr": ACR_EIDAS1, "sid": token.grant_id}
        if token.kind == "access":  # PSC gives the national id only for an access token (and a professional's)
            answer["sub"] = claims.get("sub") if claims else None
            if token.national_id:
                answer["SubjectNameID"] = token.national_id
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
            self.state.revoke_token(token)
            PscNotes.of(request).revoked = token.kind
        return Response(status_code=200, headers=NO_STORE)  # RFC 7009 §2.2: 200 whatever the token was
