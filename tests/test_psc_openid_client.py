"""A relying party nobody here wrote, unchanged: panva's openid-client (v6 API), through
``tests/node-oidc/psc_rp.mjs``, signs professionals in at the PSC simulator knowing only its issuer — the code
flow of its README (PKCE, no nonce) and with a nonce, the query and form_post response modes, userinfo as JSON
and as a signed JWT, refresh, introspection, revocation, CIBA (poll, and ping to a notification endpoint the
script serves), client credentials, token exchange, and the
client authentications client_secret_basic, client_secret_jwt, private_key_jwt and tls_client_auth.

Needs Node.js and the packages installed beside the script: ``npm ci --prefix tests/node-oidc`` (versions pinned
in its ``package-lock.json``). Skips, saying which is missing, otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from esante.simulators.psc.protocol import ISSUER_PATH
from tests.conftest import PSC_JWT_CLIENT, RunningPsc

NODE_DIR = Path(__file__).parent / "node-oidc"
SCRIPT = NODE_DIR / "psc_rp.mjs"
CLIENT_ID = "esante-reference-rp"
SECRET = "reference-rp-secret-not-for-production"
CLAIRE_VASSEUR = "810999900011"


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: openid-client cannot run")
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").is_file():
        pytest.skip("openid-client is not installed: run `npm ci --prefix tests/node-oidc`")
    return node


def run(node: str, psc: RunningPsc, scenario: str, **job: Any) -> dict[str, Any]:
    """One scenario of the script against the simulator, filed under its own case (``_case``); what
    openid-client saw."""
    case = uuid.uuid4().hex
    assert psc.admin("POST", "/reset").status_code == 200
    assert psc.admin("PUT", "/context", {"case_id": case}).status_code == 200
    ca_file = str(psc.lab.ca_file)
    job = {"scenario": scenario, "issuer": psc.url + ISSUER_PATH, "clientId": CLIENT_ID, "secret": SECRET,
           "redirectUri": "http://127.0.0.1:53682/psc/callback", "nationalId": CLAIRE_VASSEUR, "caFile": ca_file,
           **job}
    done = subprocess.run([node, str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=60,
                          env=os.environ | {"NODE_EXTRA_CA_CERTS": ca_file}, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer.pop("ok"), answer
    return answer | {"_case": case}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mtls(psc: RunningPsc) -> dict[str, str]:
    return {"certPem": psc.rp_cert.cert_pem.decode(), "keyPem": psc.rp_cert.key_pem.decode()}


@pytest.mark.parametrize(("options", "method"), [
    ({}, "client_secret_basic"),  # the README's flow: PKCE and no nonce
    ({"nonce": True, "state": True, "userinfoJwt": True}, "client_secret_basic"),
    ({"nonce": True, "responseMode": "form_post"}, "client_secret_basic"),
    ({"auth": "client_secret_jwt"}, "client_secret_jwt"),
])
def test_openid_client_signs_in_refreshes_and_revokes(node: str, psc: RunningPsc, options: dict[str, Any],
                                                      method: str) -> None:
    seen = run(node, psc, "code", **options)
    claims, refreshed = seen["claims"], seen["refreshedClaims"]
    assert claims["acr"] == "eidas1" and claims["at_hash"] and claims.get("nonce") == seen.get("nonce")
    assert seen["userinfo"]["SubjectNameID"] == CLAIRE_VASSEUR and seen["userinfo"]["sub"] == claims["sub"]
    assert refreshed["auth_time"] == claims["auth_time"] and refreshed["sub"] == claims["sub"]
    assert seen["introspected"]["active"] is True
    assert seen["afterRevocation"] == {"active": False}, "revoking the refresh token ends its access tokens"
    exchanges = psc.lab["psc"].exchanges(seen["_case"])
    [redeemed] = [e for e in exchanges if e.notes.get("grant_type") == "authorization_code"]
    assert redeemed.notes["client_auth"] == method
    [login] = [e for e in exchanges if e.notes.get("operation") == "login"]
    assert login.status == (200 if options.get("responseMode") == "form_post" else 302)
    accepts = {v for e in exchanges if e.notes.get("operation") == "userinfo"
               for k, v in e.request_headers if k.lower() == "accept"}
    assert ("application/jwt" in accepts) is bool(options.get("userinfoJwt"))


def test_openid_client_authenticates_with_private_key_jwt(node: str, psc: RunningPsc) -> None:
    pem = psc.jwt_client_key.as_pem(private=True).decode()
    seen = run(node, psc, "code", clientId=PSC_JWT_CLIENT, auth="private_key_jwt", privateKeyPem=pem)
    assert seen["claims"]["aud"] == PSC_JWT_CLIENT and seen["afterRevocation"] == {"active": False}


def test_openid_client_over_mutual_tls_gets_and_refreshes_certificate_bound_tokens(node: str,
                                                                                  psc: RunningPsc) -> None:
    seen = run(node, psc, "code", auth="tls_client_auth", **mtls(psc))
    assert seen["boundTo"] and seen["boundTo"]["x5t#S256"], "the refreshed token is still bound"


def test_openid_client_polls_ciba(node: str, psc: RunningPsc) -> None:
    seen = run(node, psc, "ciba")
    assert seen["claims"]["sub"].endswith(CLAIRE_VASSEUR) and seen["claims"]["at_hash"]


def test_a_client_registered_for_ciba_ping_is_notified_then_gets_its_tokens(node: str, psc: RunningPsc) -> None:
    port = free_port()
    saved = psc.simulator.dataset.model_dump(mode="json")
    data = copy.deepcopy(saved)
    data["oidc_clients"].append({
        "client_id": "esante-ciba-ping-rp", "name": "CIBA PING SERVER (FICTIVE)", "secret": SECRET,
        "auth_methods": ["client_secret_basic"], "redirect_uris": ["https://ping.example.org/none"],
        "grant_types": ["urn:openid:params:grant-type:ciba"], "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": f"http://127.0.0.1:{port}/ciba-ping"})
    assert psc.admin("PUT", "/dataset", {"data": data}).status_code == 200
    try:
        seen = run(node, psc, "cibaPing", clientId="esante-ciba-ping-rp", pingPort=port)
    finally:
        assert psc.admin("PUT", "/dataset", {"data": saved}).status_code == 200
    assert seen["bearer"] and seen["sameRequest"] and seen["claims"]["sub"].endswith(CLAIRE_VASSEUR)
    [poll] = [e for e in psc.lab["psc"].exchanges(seen["_case"]) if e.notes.get("grant_type")]
    assert poll.notes["ciba_ping"]["status"] == 204


def test_openid_client_exchanges_its_token_over_mutual_tls(node: str, psc: RunningPsc) -> None:
    seen = run(node, psc, "tokenExchange", **mtls(psc))
    assert seen["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert seen["introspected"]["active"] is True and seen["introspected"]["cnf"]["x5t#S256"]


def test_openid_client_gets_a_service_account_token(node: str, psc: RunningPsc) -> None:
    seen = run(node, psc, "clientCredentials", clientId="esante-mssante-server",
               secret="mssante-server-secret-not-for-production")
    assert seen["token_type"].lower() == "bearer" and seen["refresh"] is None
    assert seen["introspected"]["active"] is True and "SubjectNameID" not in seen["introspected"]
