"""PSC exact to OpenID Connect, OAuth 2 and Keycloak where the first simulator was not: hostile client assertions
answered 401 (never 500), client_secret_jwt, at_hash and the sign-in's auth_time, the nonce optional, client
credentials, the fragment response mode, request objects by value, the claims parameter, a revoked refresh token
taking its grant's access tokens along, a certificate-bound refresh refused without the certificate."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from esante.simulators.kits.oauth.oidc import token_hash
from esante.simulators.psc.protocol import (
    AUTHORIZE_PATH,
    CIBA_PATH,
    INTROSPECT_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
)
from tests.conftest import PSC_JWT_CLIENT, RunningPsc
from tests.test_psc_simulator import (
    BASIC,
    CLIENT_ID,
    REDIRECT,
    SECRET,
    authorize_params,
    code_flow,
    introspect,
    oauth_error,
    query_of,
    redeem,
    sign_in,
    token,
    userinfo,
    verified,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(autouse=True)
def clean(psc: RunningPsc) -> Iterator[RunningPsc]:
    assert psc.admin("POST", "/reset").status_code == 200
    yield psc


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# -- hostile client assertions -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [TOKEN_PATH, INTROSPECT_PATH, REVOKE_PATH, CIBA_PATH])
@pytest.mark.parametrize("payload", [[1], None, 42, "text", {"sub": {"a": 1}}, {"sub": [1]}])
def test_an_assertion_whose_payload_is_not_an_object_is_invalid_client(psc: RunningPsc, path: str,
                                                                      payload: Any) -> None:
    assertion = f"{_b64({'alg': 'RS256'})}.{_b64(payload)}.c2ln"
    answer = psc.http.post(psc.url + path, data={"client_assertion_type": ASSERTION_TYPE,
                                                 "client_assertion": assertion, "token": "x"})
    oauth_error(answer, 401, "invalid_client")


@pytest.mark.parametrize("audience", [{"a": 1}, [["x"]], [{"a": 1}], 42, None, True])
def test_a_signed_assertion_with_a_strange_audience_is_invalid_client(psc: RunningPsc, audience: Any) -> None:
    now = int(time.time())
    claims = {"iss": PSC_JWT_CLIENT, "sub": PSC_JWT_CLIENT, "aud": audience, "exp": now + 60,
              "jti": secrets.token_hex(8)}
    assertion = jwt.encode({"alg": "RS256"}, claims, psc.jwt_client_key)
    for path in (TOKEN_PATH, INTROSPECT_PATH):
        answer = psc.http.post(psc.url + path, data={"client_assertion_type": ASSERTION_TYPE,
                                                     "client_assertion": assertion, "token": "x"})
        assert "aud" in oauth_error(answer, 401, "invalid_client")


def test_client_secret_jwt_authenticates_and_a_wrong_secret_does_not(psc: RunningPsc) -> None:
    def assertion(secret: str) -> dict[str, str]:
        claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": psc.url + TOKEN_PATH, "exp": int(time.time()) + 60,
                  "jti": secrets.token_hex(8)}
        signed = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}

    params = authorize_params()
    code = sign_in(psc, params)
    oauth_error(redeem(psc, params, code, auth=None, extra=assertion("a-wrong-secret-of-enough-length")), 401,
                "invalid_client")
    assert redeem(psc, params, code, auth=None, extra=assertion(SECRET)).status_code == 200


# -- ID tokens -----------------------------------------------------------------------------------------------

def test_the_nonce_is_optional_and_an_id_token_carries_at_hash_and_the_sign_in_s_auth_time(psc: RunningPsc) -> None:
    params = authorize_params(nonce=None)
    tokens = redeem(psc, params, sign_in(psc, params)).json()
    first = verified(psc, tokens["id_token"])
    assert "nonce" not in first and first["at_hash"] and first["auth_time"] <= first["iat"]
    time.sleep(1.1)
    renewed = token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    again = verified(psc, renewed["id_token"])
    assert again["auth_time"] == first["auth_time"] and again["iat"] > first["iat"]
    assert again["at_hash"] != first["at_hash"]


def test_the_claims_parameter_puts_userinfo_claims_in_the_id_token(psc: RunningPsc) -> None:
    params = authorize_params(claims=json.dumps({"id_token": {"SubjectNameID": {"essential": True},
                                                              "unknown_claim": None}}))
    claims = verified(psc, redeem(psc, params, sign_in(psc, params)).json()["id_token"])
    assert claims["SubjectNameID"] == "810999900011" and "unknown_claim" not in claims


# -- the authorization request -------------------------------------------------------------------------------

def test_the_fragment_response_mode_sends_the_code_in_the_fragment(psc: RunningPsc) -> None:
    params = authorize_params(response_mode="fragment")
    page = psc.http.get(psc.url + AUTHORIZE_PATH, params={k: v for k, v in params.items() if k != "code_verifier"})
    transaction = page.text.split('name="transaction" value="')[1].split('"')[0]
    answer = psc.http.post(psc.url + "/wallet/auth/login", data={"transaction": transaction,
                                                                  "national_id": "810999900011"})
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "#") and "?" not in location
    fragment = query_of("?" + location.split("#", 1)[1])
    assert fragment["state"] == params["state"] and redeem(psc, params, fragment).status_code == 200


@pytest.mark.parametrize("signing", ["HS256", "none"])
def test_a_request_object_by_value_carries_the_request(psc: RunningPsc, signing: str) -> None:
    params = authorize_params()
    inner = {k: v for k, v in params.items() if k not in ("code_verifier", "client_id", "response_type")}
    if signing == "none":
        request = f"{_b64({'alg': 'none'})}.{_b64(inner)}."
    else:
        request = jwt.encode({"alg": "HS256"}, inner, OctKey.import_key(SECRET))
    page = psc.http.get(psc.url + AUTHORIZE_PATH, params={"client_id": CLIENT_ID, "response_type": "code",
                                                          "scope": "openid", "request": request})
    assert page.status_code == 200, page.text
    transaction = page.text.split('name="transaction" value="')[1].split('"')[0]
    answer = psc.http.post(psc.url + "/wallet/auth/login", data={"transaction": transaction,
                                                                  "national_id": "810999900011"})
    callback = query_of(answer.headers["location"])
    assert callback["state"] == params["state"]
    assert verified(psc, redeem(psc, params, callback).json()["id_token"])["nonce"] == params["nonce"]


def test_a_request_object_with_a_bad_signature_is_refused(psc: RunningPsc) -> None:
    params = authorize_params()
    request = jwt.encode({"alg": "HS256"}, {"nonce": "x"}, OctKey.import_key("another-secret-of-enough-length"))
    sent = {k: v for k, v in params.items() if k != "code_verifier"} | {"request": request}
    answer = psc.http.get(psc.url + AUTHORIZE_PATH, params=sent)
    assert answer.status_code == 302
    assert query_of(answer.headers["location"])["error"] == "invalid_request_object"


# -- grants and the token lifecycle ----------------------------------------------------------------------------

def test_a_service_account_gets_an_access_token_by_client_credentials(psc: RunningPsc) -> None:
    server = ("esante-mssante-server", "mssante-server-secret-not-for-production")
    answer = token(psc, {"grant_type": "client_credentials"}, auth=server)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = verified(psc, body["access_token"])
    assert claims["preferred_username"] == "service-account-esante-mssante-server"
    seen = introspect(psc, body["access_token"], server)
    assert seen["active"] is True and "SubjectNameID" not in seen
    assert userinfo(psc, body["access_token"]).json()["sub"] == claims["sub"]


def test_revoking_a_refresh_token_ends_the_access_tokens_of_its_grant_and_only_them(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    other = code_flow(psc)  # another sign-in of the same client: another session
    assert psc.http.post(psc.url + REVOKE_PATH, data={"token": tokens["refresh_token"]}, auth=BASIC).status_code == 200
    assert introspect(psc, tokens["access_token"]) == {"active": False}
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    assert introspect(psc, other["access_token"])["active"] is True


def test_a_certificate_bound_grant_is_refreshed_only_with_its_certificate(psc: RunningPsc) -> None:
    tokens = code_flow(psc, auth=None, http=psc.mtls, extra={"client_id": CLIENT_ID})
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = token(psc, grant)  # client_secret_basic, no certificate
    assert "MTLS" in oauth_error(refused, 400, "unauthorized_client")
    renewed = token(psc, grant | {"client_id": CLIENT_ID}, auth=None, http=psc.mtls)
    assert renewed.status_code == 200, renewed.text
    assert verified(psc, renewed.json()["access_token"])["cnf"] == verified(psc, tokens["access_token"])["cnf"]


def test_an_access_token_forgotten_after_expiry_is_still_told_expired(psc: RunningPsc) -> None:
    assert psc.admin("PUT", "/context", {"case_id": "forgotten-token"}).status_code == 200
    assert psc.admin("PUT", "/faults", [{"kind": "behaviour", "fault_code": "short_lifetimes",
                                         "path_prefix": TOKEN_PATH}]).status_code == 200
    tokens = code_flow(psc)
    state = psc.simulator.federator.state
    with state.lock:  # what the purge does once the token has been expired long enough
        del state.tokens[verified(psc, tokens["access_token"])["jti"]]
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    time.sleep(2.1)
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    noted = [e.notes.get("token_state") for e in psc.lab["psc"].exchanges("forgotten-token")
             if e.notes.get("operation") == "userinfo"]
    assert noted == ["unknown", "expired"]


def test_a_ping_mode_client_must_give_its_notification_token(psc: RunningPsc) -> None:
    data = psc.simulator.dataset.model_dump(mode="json")
    saved = json.loads(json.dumps(data))
    data["oidc_clients"][0] |= {"backchannel_token_delivery_mode": "ping",
                                "backchannel_client_notification_endpoint": "http://127.0.0.1:9/ping"}
    assert psc.admin("PUT", "/dataset", {"data": data}).status_code == 200
    try:
        form = {"scope": "openid scope_all", "login_hint": "810999900011", "channel": "CARD"}
        missing = psc.http.post(psc.url + CIBA_PATH, data=form, auth=BASIC)
        assert "client_notification_token" in oauth_error(missing, 400, "invalid_request")
        started = psc.http.post(psc.url + CIBA_PATH, data=form | {"client_notification_token": "t" * 20}, auth=BASIC)
        assert started.status_code == 200, started.text
    finally:
        assert psc.admin("PUT", "/dataset", {"data": saved}).status_code == 200


def test_the_wrong_at_hash_behaviour_bends_only_the_at_hash(psc: RunningPsc) -> None:
    assert psc.admin("PUT", "/faults", [{"kind": "behaviour", "fault_code": "id_token_wrong_at_hash",
                                         "path_prefix": TOKEN_PATH, "count": 1}]).status_code == 200
    bent, clean = code_flow(psc), code_flow(psc)
    assert verified(psc, bent["id_token"])["at_hash"] != token_hash(bent["access_token"], "RS256")
    assert verified(psc, clean["id_token"])["at_hash"] == token_hash(clean["access_token"], "RS256")
