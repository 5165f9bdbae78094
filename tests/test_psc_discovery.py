"""PSC's discovery document advertises exactly what the simulator serves: every endpoint it names is a route,
every grant a grant handler, every client authentication, response type and mode one the kit serves — so the
document cannot drift from the code."""

from __future__ import annotations

from esante.simulators.dataset import load_dataset
from esante.simulators.kits.oauth.clients import AUTH_METHODS
from esante.simulators.kits.oauth.redirects import RESPONSE_MODES
from esante.simulators.psc import PscSimulator
from esante.simulators.psc.discovery import discovery_document
from esante.simulators.psc.grants import GRANTS
from esante.simulators.psc.protocol import CIBA_DELIVERY_MODES, ISSUER_PATH, KEYCLOAK_AUTHORIZE_PATH

BASE = "https://psc.test"


def test_every_endpoint_advertised_is_a_route_and_every_protocol_route_is_advertised() -> None:
    document = discovery_document(BASE, BASE + ISSUER_PATH)
    advertised = {v.removeprefix(BASE) for k, v in document.items() if k.endswith(("_endpoint", "_uri"))}
    routes = {route.path for route in PscSimulator(load_dataset()).router().routes}  # type: ignore[attr-defined]
    assert advertised <= routes
    pages_and_discovery = {p for p in routes if "well-known" in p or p.startswith(("/ecps", "/wallet/auth/"))}
    assert routes - pages_and_discovery == advertised, "a protocol route that discovery does not name"
    assert KEYCLOAK_AUTHORIZE_PATH not in routes


def test_grants_methods_and_modes_are_the_ones_served() -> None:
    document = discovery_document(BASE, BASE + ISSUER_PATH)
    assert document["grant_types_supported"] == list(GRANTS)
    for endpoint in ("token", "introspection", "revocation"):
        assert document[f"{endpoint}_endpoint_auth_methods_supported"] == list(AUTH_METHODS)
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == list(RESPONSE_MODES)
    assert document["backchannel_token_delivery_modes_supported"] == list(CIBA_DELIVERY_MODES)
    assert document["request_uri_parameter_supported"] is False  # answered request_uri_not_supported
    assert not {"implicit", "password", "urn:ietf:params:oauth:grant-type:device_code"} & set(
        document["grant_types_supported"])
