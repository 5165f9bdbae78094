"""What every endpoint of the federator works with: its signing keys, its memory, the current data set, the
base URL it is reached at, and client authentication at its token-like endpoints (token, introspection,
revocation, CIBA)."""

from __future__ import annotations

from fastapi import Request

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.runtime import Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.kits.oauth.clients import AuthenticatedClient, ClientCall, authenticate_client
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.pages import Pages
from esante.simulators.psc.keys import SigningKeys
from esante.simulators.psc.notes import PscNotes
from esante.simulators.psc.protocol import ISSUER_PATH, TOKEN_PATH
from esante.simulators.psc.state import FederatorState
from esante.simulators.psc.tokens import Issuer

pages = Pages("esante.simulators.psc")


def client_cert(request: Request) -> bytes | None:
    """The DER certificate the client presented on the TLS connection, if any."""
    return (request.scope.get("extensions", {}).get("tls") or {}).get("client_cert_der")


def require_openid(scopes: list[str]) -> None:
    if "openid" not in scopes:
        raise OAuthError("invalid_scope", "Invalid scopes: openid is required")


class Federator:
    """The federator's keys and memory (forgotten on reset); ``simulator`` gives the current data set;
    ``ciba_auto``: the simulated professional approves CIBA requests by themself."""

    def __init__(self, simulator: Simulator, public_url: str | None, ciba_auto: bool = True) -> None:
        self.simulator = simulator
        self.ciba_auto = ciba_auto
        self.public_url = public_url.rstrip("/") if public_url else None
        self.keys = SigningKeys()
        self.state = FederatorState()

    def reset(self) -> None:
        self.keys.reset()
        self.state.reset()


class Endpoints:
    """A group of the federator's endpoints, sharing its keys, memory and data set."""

    def __init__(self, federator: Federator) -> None:
        self.federator = federator

    @property
    def dataset(self) -> Dataset:
        return self.federator.simulator.dataset

    @property
    def keys(self) -> SigningKeys:
        return self.federator.keys

    @property
    def state(self) -> FederatorState:
        return self.federator.state

    def base_url(self, request: Request) -> str:
        """Where candidates reach the federator: the configured public URL, else the request's (a Keycloak
        behind a proxy)."""
        return self.federator.public_url or str(request.base_url).rstrip("/")

    def issuer(self, request: Request) -> Issuer:
        """What this call issues tokens with: the keys, the memory, the issuer URL, the behaviours that fired."""
        return Issuer(self.dataset, self.keys, self.state, self.base_url(request) + ISSUER_PATH,
                      behaviours_of(request), PscNotes.of(request), self.federator.ciba_auto)

    def authenticate(self, request: Request, form: dict[str, str]) -> AuthenticatedClient:
        """The client, authenticated by the one method it used (noted with the call)."""
        base = self.base_url(request)
        call = ClientCall(form, request.headers.get("authorization"), client_cert(request))
        with self.state.lock:
            auth = authenticate_client(call, self.dataset.oidc_client, (base + ISSUER_PATH, base + TOKEN_PATH),
                                       self.state.assertion_jtis)
        notes = PscNotes.of(request)
        notes.client_id, notes.client_auth = auth.client.client_id, auth.method
        return auth
