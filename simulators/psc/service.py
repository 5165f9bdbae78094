"""The Pro Santé Connect simulator: discovery and JWKS here; the authorization request and login page
(:mod:`.authorize`), the token endpoint, userinfo, introspection and revocation (:mod:`.token_endpoints`),
end session (:mod:`.logout`), CIBA and the simulated e-CPS app (:mod:`.ciba`); paths in :mod:`.protocol`.
Errors are answered as Keycloak does (RFC 6749 §5.2 JSON)."""

from __future__ import annotations

from typing import ClassVar

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from esante.simulators.core.notes import Notes
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.routes import Route, router_of
from esante.simulators.psc.authorize import Authorization
from esante.simulators.psc.ciba import Ciba
from esante.simulators.psc.discovery import discovery_document
from esante.simulators.psc.federator import Endpoints, Federator
from esante.simulators.psc.logout import EndSession
from esante.simulators.psc.notes import PscNotes
from esante.simulators.psc.protocol import (
    AUTHORIZE_PATH,
    CIBA_PATH,
    ECPS_PATH,
    INTROSPECT_PATH,
    ISSUER_PATH,
    JWKS_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    REVOKE_PATH,
    STANDARD_DISCOVERY_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    WALLET_DISCOVERY_PATH,
)
from esante.simulators.psc.token_endpoints import TokenEndpoints


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
        self.federator = Federator(self, public_url, ciba_auto=ciba == "auto")
        self.published = Endpoints(self.federator)
        self.authorization = Authorization(self.federator, auto_login)
        self.tokens = TokenEndpoints(self.federator)
        self.end_session = EndSession(self.federator)
        self.ciba = Ciba(self.federator)

    def reset(self) -> None:
        self.federator.reset()

    def error_response(self, error: ServiceError) -> Response:
        spec = self.injected_fault(error)
        if spec is not None:
            return OAuthError(error.code or "server_error", spec.description, spec.status).response()
        if error.kind == "too_large":
            return OAuthError("invalid_request", error.message, 413).response()
        return OAuthError("server_error", error.message, 500).response()

    def router(self) -> APIRouter:
        authorization, tokens, ciba = self.authorization, self.tokens, self.ciba
        routes: list[Route] = [
            (WALLET_DISCOVERY_PATH, ["GET"], "discovery", self.discovery),
            (STANDARD_DISCOVERY_PATH, ["GET"], "discovery", self.discovery),
            (JWKS_PATH, ["GET"], "jwks", self.jwks),
            (AUTHORIZE_PATH, ["GET", "POST"], "authorize", authorization.authorize),
            (LOGIN_PATH, ["POST"], "login", authorization.login),
            (TOKEN_PATH, ["POST"], "token", tokens.token),
            (USERINFO_PATH, ["GET", "POST"], "userinfo", tokens.userinfo),
            (INTROSPECT_PATH, ["POST"], "introspect", tokens.introspect),
            (REVOKE_PATH, ["POST"], "revoke", tokens.revoke),
            (LOGOUT_PATH, ["GET", "POST"], "logout", self.end_session.logout),
            (CIBA_PATH, ["POST"], "ciba_auth", ciba.ciba_auth),
            (ECPS_PATH, ["GET"], "ecps", ciba.ecps),
            (ECPS_PATH + "/{auth_req_id}", ["POST"], "ecps_decision", ciba.ecps_decision),
        ]
        return router_of(routes, PscNotes)

    async def discovery(self, request: Request) -> Response:
        base = self.published.base_url(request)
        return JSONResponse(discovery_document(base, base + ISSUER_PATH))

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.federator.keys.jwks(), headers={"Cache-Control": "no-cache"})
