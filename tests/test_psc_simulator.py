"""The Pro Santé Connect simulator over HTTPS: it answers as PSC does, keeps its state, and misbehaves on demand."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet, RSAKey
from lxml import html

from esante.simulators.psc.protocol import (
    AUTHORIZE_PATH,
    CIBA_PATH,
    GRANT_CIBA,
    GRANT_TOKEN_EXCHANGE,
    INTROSPECT_PATH,
    ISSUER_PATH,
    JWKS_PATH,
    KEYCLOAK_AUTHORIZE_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    REVOKE_PATH,
    STANDARD_DISCOVERY_PATH,
    TOKEN_PATH,
    TOKEN_TYPE_ACCESS,
    USERINFO_PATH,
    WALLET_DISCOVERY_PATH,
)
from tests.conftest import PSC_JWT_CLIENT, RunningPsc

CLIENT_ID = "esante-reference-rp"
SECRET = "reference-rp-secret-not-for-production"
BASIC = (CLIENT_ID, SECRET)
REDIRECT = "http://127.0.0.1:8765/psc/callback"  # registered without a port: loopback matches any (RFC 8252)
LOGGED_OUT = "http://localhost:8765/psc/logged-out"
CLAUDE_VASSEUR = "810999900011"  # PS001, RPPS 10999900011: national id is "8" + RPPS
DAVID_BENHAMOU = "810999900029"  # PS002


@pytest.fixture(autouse=True)
def clean(psc: RunningPsc, request: pytest.FixtureRequest) -> Iterator[RunningPsc]:
    """Each test starts from a fresh federator (no sessions, original key, no faults), its exchanges filed
    under its own name."""
    assert psc.admin("POST", "/reset").status_code == 200
    assert psc.admin("PUT", "/context", {"case_id": request.node.name}).status_code == 200
    yield psc


# -- helpers -------------------------------------------------------------------------------------------------

def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def faults(psc: RunningPsc, *rules: dict[str, Any]) -> None:
    response = psc.admin("PUT", "/faults", list(rules))
    assert response.status_code == 200, response.text


def behaviour(psc: RunningPsc, name: str, path: str, **when: Any) -> None:
    faults(psc, {"kind": "behaviour", "fault_code": name, "path_prefix": path, **when})


def authorize_params(client_id: str = CLIENT_ID, **overrides: str | None) -> dict[str, str]:
    verifier = secrets.token_urlsafe(48)
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "scope": "openid scope_all",
        "acr_values": "eidas1", "state": secrets.token_urlsafe(16), "nonce": secrets.token_hex(32),
        "code_challenge": s256(verifier), "code_challenge_method": "S256", "code_verifier": verifier,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def sign_in(psc: RunningPsc, params: dict[str, str], national_id: str = CLAUDE_VASSEUR) -> dict[str, str]:
    """Play the browser: the authorize request, the login page's form as served, the redirect back."""
    sent = {k: v for k, v in params.items() if k != "code_verifier"}
    page = psc.http.get(psc.url + AUTHORIZE_PATH, params=sent)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    form = html.fromstring(page.text).forms[0]
    fields = dict(form.fields)
    assert national_id in form.inputs["national_id"].value_options
    fields["national_id"] = national_id
    answer = psc.http.post(urljoin(psc.url, form.action), data=fields)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?")
    return query_of(location)


def token(psc: RunningPsc, data: dict[str, str], *, auth: tuple[str, str] | None = BASIC,
          http: httpx.Client | None = None) -> httpx.Response:
    return (http or psc.http).post(psc.url + TOKEN_PATH, data=data, auth=auth)


def redeem(psc: RunningPsc, params: dict[str, str], callback: dict[str, str], *,
           auth: tuple[str, str] | None = BASIC, http: httpx.Client | None = None,
           extra: dict[str, str] | None = None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": params["redirect_uri"],
            "code_verifier": params["code_verifier"], **(extra or {})}
    return token(psc, data, auth=auth, http=http)


def code_flow(psc: RunningPsc, national_id: str = CLAUDE_VASSEUR, **kwargs: Any) -> dict[str, Any]:
    params = authorize_params()
    answer = redeem(psc, params, sign_in(psc, params, national_id), **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json() | {"_nonce": params["nonce"]}


def jwks(psc: RunningPsc) -> dict[str, Any]:
    answer = psc.http.get(psc.url + JWKS_PATH)
    assert answer.status_code == 200
    return answer.json()


def verified(psc: RunningPsc, token_value: str) -> dict[str, Any]:
    """The claims of a token, after verifying its signature against the published JWKS."""
    return dict(jwt.decode(token_value, KeySet.import_key_set(jwks(psc)), algorithms=["RS256"]).claims)


def _unverified_header(token_value: str) -> dict[str, Any]:
    part = token_value.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def userinfo(psc: RunningPsc, access: str, http: httpx.Client | None = None, **headers: str) -> httpx.Response:
    return (http or psc.http).get(psc.url + USERINFO_PATH, headers={"Authorization": f"Bearer {access}", **headers})


def introspect(psc: RunningPsc, value: str, auth: tuple[str, str] = BASIC) -> dict[str, Any]:
    answer = psc.http.post(psc.url + INTROSPECT_PATH, data={"token": value}, auth=auth)
    assert answer.status_code == 200, answer.text
    return answer.json()


def oauth_error(answer: httpx.Response, status: int, error: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == error, body
    assert body["error_description"]
    return str(body["error_description"])


def journal(psc: RunningPsc, case_id: str) -> list[dict[str, Any]]:
    answer = psc.admin("GET", f"/journal?case_id={case_id}")
    assert answer.status_code == 200
    return answer.json()["exchanges"]


def thumbprint(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


# -- discovery ---------------------------------------------------------------------------------------------

def test_both_discovery_paths_publish_psc_s_document(psc: RunningPsc) -> None:
    wallet = psc.http.get(psc.url + WALLET_DISCOVERY_PATH)
    standard = psc.http.get(psc.url + STANDARD_DISCOVERY_PATH)
    assert wallet.status_code == standard.status_code == 200
    doc = wallet.json()
    assert doc == standard.json()
    assert doc["issuer"] == psc.url + ISSUER_PATH
    assert doc["authorization_endpoint"] == psc.url + "/wallet/auth"
    assert doc["token_endpoint"] == psc.url + ISSUER_PATH + "/protocol/openid-connect/token"
    assert doc["backchannel_authentication_endpoint"] == psc.url + CIBA_PATH
    assert {"authorization_code", "refresh_token", GRANT_CIBA, GRANT_TOKEN_EXCHANGE} <= set(
        doc["grant_types_supported"])
    assert {"private_key_jwt", "client_secret_basic", "client_secret_post", "tls_client_auth"} <= set(
        doc["token_endpoint_auth_methods_supported"])
    assert "S256" in doc["code_challenge_methods_supported"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["acr_values_supported"] == ["eidas1"]
    assert {"openid", "scope_all"} <= set(doc["scopes_supported"])
    assert "poll" in doc["backchannel_token_delivery_modes_supported"]


def test_every_advertised_endpoint_is_served_but_not_keycloak_s_default_authorize_path(psc: RunningPsc) -> None:
    doc = psc.http.get(psc.url + WALLET_DISCOVERY_PATH).json()
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                "introspection_endpoint", "revocation_endpoint", "end_session_endpoint",
                "backchannel_authentication_endpoint"):
        answer = psc.http.post(doc[key], data={})
        assert answer.status_code not in (404, 405, 500) or key == "jwks_uri", (key, answer.status_code)
    assert psc.http.get(doc["jwks_uri"]).status_code == 200
    assert psc.http.get(psc.url + KEYCLOAK_AUTHORIZE_PATH, params=authorize_params()).status_code == 404


# -- authorization code flow ------------------------------------------------------------------------------

def test_code_flow_with_pkce_s256_through_the_login_page(psc: RunningPsc) -> None:
    params = authorize_params()
    callback = sign_in(psc, params)
    assert callback["state"] == params["state"]
    assert callback["iss"] == psc.url + ISSUER_PATH  # RFC 9207
    assert callback["session_state"] and len(callback["code"]) >= 32
    answer = redeem(psc, params, callback)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 120
    assert tokens["refresh_expires_in"] == 1800 and tokens["session_state"] == callback["session_state"]
    header = _unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in jwks(psc)["keys"]}
    claims = verified(psc, tokens["id_token"])
    assert claims["iss"] == psc.url + ISSUER_PATH
    assert claims["aud"] == CLIENT_ID and claims["azp"] == CLIENT_ID
    assert claims["nonce"] == params["nonce"]
    assert claims["acr"] == "eidas1"
    assert claims["sub"].startswith("f:") and claims["sub"].endswith(":" + CLAUDE_VASSEUR)
    assert claims["family_name"] == "VASSEUR"
    assert claims["exp"] > time.time() > claims["iat"] - 5
    access = verified(psc, tokens["access_token"])
    assert access["azp"] == CLIENT_ID and access["scope"] == "openid scope_all"


def test_login_page_refuses_an_unknown_professional_and_lets_the_same_attempt_go_on(psc: RunningPsc) -> None:
    params = authorize_params()
    page = psc.http.get(psc.url + AUTHORIZE_PATH, params={k: v for k, v in params.items() if k != "code_verifier"})
    form = html.fromstring(page.text).forms[0]
    fields = dict(form.fields) | {"national_id": "899999999999"}
    refused = psc.http.post(urljoin(psc.url, form.action), data=fields)
    assert refused.status_code == 400 and "inconnu" in refused.text
    fields["national_id"] = DAVID_BENHAMOU
    accepted = psc.http.post(urljoin(psc.url, form.action), data=fields)
    assert accepted.status_code == 302
    again = psc.http.post(urljoin(psc.url, form.action), data=fields)  # the transaction is spent
    assert again.status_code == 400
    tokens = redeem(psc, params, query_of(accepted.headers["location"])).json()
    assert verified(psc, tokens["id_token"])["preferred_username"] == DAVID_BENHAMOU


def test_userinfo_gives_psc_s_claim_set_as_json_and_as_signed_jwt(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    answer = userinfo(psc, tokens["access_token"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    info = answer.json()
    assert info["SubjectNameID"] == "8" + "10999900011"
    assert info["sub"] != info["SubjectNameID"] and info["sub"] == verified(psc, tokens["id_token"])["sub"]
    assert info["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"]
    assert info["Secteur_Activite"] == "SA07^1.2.250.1.71.4.2.4"
    assert info["SubjectOrganizationID"] == "690990031"
    assert info["otherIds"] == [{"identifiant": "10999900011", "origine": "RPPS", "qualite": 1}]
    exercice = info["SubjectRefPro"]["exercices"][0]
    assert exercice["codeProfession"] == "10" and exercice["codeSavoirFaire"] == "SM26"
    assert exercice["activities"][0]["numeroFinessSite"] == "690990031"
    assert info["Palier_Authentification"] == "APPPRIP3^1.2.250.1.213.1.5.1.1.1"
    signed = userinfo(psc, tokens["access_token"], Accept="application/jwt")
    assert signed.status_code == 200 and signed.headers["content-type"] == "application/jwt"
    claims = verified(psc, signed.text)
    assert claims["iss"] == psc.url + ISSUER_PATH and claims["aud"] == CLIENT_ID
    assert {k: v for k, v in claims.items() if k not in ("iss", "aud")} == info
    posted = psc.http.post(psc.url + USERINFO_PATH, data={"access_token": tokens["access_token"]})
    assert posted.status_code == 200 and posted.json() == info


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Basic Zm9vOmJhcg=="])
def test_userinfo_without_a_valid_bearer_token_is_401_invalid_token(psc: RunningPsc, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = psc.http.get(psc.url + USERINFO_PATH, headers=headers)
    oauth_error(answer, 401, "invalid_token")
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# -- client authentication ------------------------------------------------------------------------------------

def client_assertion(psc: RunningPsc, key: RSAKey | None = None, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": PSC_JWT_CLIENT, "sub": PSC_JWT_CLIENT, "aud": psc.url + TOKEN_PATH, "exp": now + 60,
              "iat": now, "jti": secrets.token_urlsafe(12), **overrides}
    return jwt.encode({"alg": "RS256"}, claims, key or psc.jwt_client_key)


def jwt_auth(assertion: str) -> dict[str, str]:
    return {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                    "tls_client_auth"])
def test_each_client_authentication_method_redeems_a_code(psc: RunningPsc, method: str,
                                                          request: pytest.FixtureRequest) -> None:
    client_id = PSC_JWT_CLIENT if method == "private_key_jwt" else CLIENT_ID
    params = authorize_params(client_id)
    callback = sign_in(psc, params)
    extra, auth, http = {}, None, psc.http
    if method == "client_secret_basic":
        auth = BASIC
    elif method == "client_secret_post":
        extra = {"client_id": CLIENT_ID, "client_secret": SECRET}
    elif method == "private_key_jwt":
        extra = jwt_auth(client_assertion(psc))
    else:
        extra, http = {"client_id": CLIENT_ID}, psc.mtls
    answer = redeem(psc, params, callback, auth=auth, http=http, extra=extra)
    assert answer.status_code == 200, answer.text
    assert verified(psc, answer.json()["id_token"])["aud"] == client_id
    notes = [e["notes"] for e in journal(psc, request.node.name) if e["path"] == TOKEN_PATH]
    assert notes[-1]["client_auth"] == method and notes[-1]["client_id"] == client_id


@pytest.mark.parametrize("case", ["wrong_basic_secret", "wrong_post_secret", "basic_for_unknown_client",
                                  "method_not_registered", "no_authentication", "assertion_other_key",
                                  "assertion_wrong_audience", "assertion_expired", "assertion_iss_not_client",
                                  "assertion_garbage", "tls_without_certificate", "tls_certificate_of_another_cn"])
def test_failed_client_authentication_is_401_invalid_client(psc: RunningPsc, case: str) -> None:
    params = authorize_params()
    data = {"grant_type": "authorization_code", "code": sign_in(psc, params)["code"], "redirect_uri": REDIRECT,
            "code_verifier": params["code_verifier"]}
    auth: tuple[str, str] | None = None
    http = psc.http
    other_key = RSAKey.generate_key(2048, private=True)
    match case:
        case "wrong_basic_secret":
            auth = (CLIENT_ID, "not-the-secret-at-all")
        case "wrong_post_secret":
            data |= {"client_id": CLIENT_ID, "client_secret": "not-the-secret-at-all"}
        case "basic_for_unknown_client":
            auth = ("no-such-client", SECRET)
        case "method_not_registered":  # esante-other-rp is registered for client_secret_basic only
            data |= {"client_id": "esante-other-rp", "client_secret": "other-rp-secret-not-for-production"}
        case "no_authentication":
            pass
        case "assertion_other_key":
            data |= jwt_auth(client_assertion(psc, other_key))
        case "assertion_wrong_audience":
            data |= jwt_auth(client_assertion(psc, aud="https://elsewhere.example.org/token"))
        case "assertion_expired":
            data |= jwt_auth(client_assertion(psc, exp=int(time.time()) - 10))
        case "assertion_iss_not_client":
            data |= jwt_auth(client_assertion(psc, iss=CLIENT_ID))
        case "assertion_garbage":
            data |= jwt_auth("garbage")
        case "tls_without_certificate":
            data |= {"client_id": CLIENT_ID}
        case "tls_certificate_of_another_cn":
            data |= {"client_id": CLIENT_ID}
            http = psc.client(psc.ca.issue_structure("750990012", "CHU FICTIF", cn="SOMEONE-ELSE"))
    answer = token(psc, data, auth=auth, http=http)
    oauth_error(answer, 401, "invalid_client")
    assert answer.headers["www-authenticate"].startswith("Basic")
    if http is not psc.http:
        http.close()
    assert redeem(psc, params, {"code": data["code"]}).status_code == 200, "a refused client spends no code"


def test_mtls_client_gets_a_certificate_bound_token_that_userinfo_refuses_without_that_certificate(
        psc: RunningPsc) -> None:
    tokens = code_flow(psc, auth=None, http=psc.mtls, extra={"client_id": CLIENT_ID})
    bound_to = thumbprint(psc.rp_cert.cert_pem)
    assert verified(psc, tokens["access_token"])["cnf"] == {"x5t#S256": bound_to}
    assert introspect(psc, tokens["access_token"])["cnf"] == {"x5t#S256": bound_to}
    assert userinfo(psc, tokens["access_token"], http=psc.mtls).status_code == 200
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    with psc.client(psc.ca.issue_structure("750990012", "CHU FICTIF", cn="ESANTE-REFERENCE-RP")) as other:
        oauth_error(userinfo(psc, tokens["access_token"], http=other), 401, "invalid_token")
    unbound = code_flow(psc)
    assert "cnf" not in verified(psc, unbound["access_token"])
    assert userinfo(psc, unbound["access_token"]).status_code == 200


# -- refresh, revocation, introspection, end session ---------------------------------------------------

def test_refresh_grant_issues_new_tokens_in_the_same_session(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    answer = token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert answer.status_code == 200, answer.text
    renewed = answer.json()
    assert renewed["access_token"] != tokens["access_token"]
    assert renewed["session_state"] == tokens["session_state"]
    assert verified(psc, renewed["access_token"])["sid"] == verified(psc, tokens["access_token"])["sid"]
    assert userinfo(psc, renewed["access_token"]).json()["SubjectNameID"] == CLAUDE_VASSEUR
    oauth_error(token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                            "scope": "openid scope_all rpps"}), 400, "invalid_scope")
    oauth_error(token(psc, {"grant_type": "refresh_token", "refresh_token": "unknown"}), 400, "invalid_grant")
    oauth_error(token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                      auth=("esante-other-rp", "other-rp-secret-not-for-production")), 400, "invalid_grant")


def test_revocation_deactivates_access_and_refresh_tokens(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    assert introspect(psc, tokens["access_token"])["active"] is True
    other = ("esante-other-rp", "other-rp-secret-not-for-production")
    revoke = psc.url + REVOKE_PATH
    assert psc.http.post(revoke, data={"token": tokens["access_token"]}, auth=other).status_code == 200
    assert introspect(psc, tokens["access_token"])["active"] is True, "another client cannot revoke it"
    assert psc.http.post(revoke, data={"token": tokens["access_token"]}, auth=BASIC).status_code == 200
    assert introspect(psc, tokens["access_token"]) == {"active": False}
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    assert psc.http.post(revoke, data={"token": tokens["refresh_token"]}, auth=BASIC).status_code == 200
    oauth_error(token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
                400, "invalid_grant")
    assert psc.http.post(revoke, data={"token": "never-issued"}, auth=BASIC).status_code == 200  # RFC 7009
    oauth_error(psc.http.post(revoke, data={"token": tokens["refresh_token"]}), 401, "invalid_client")


def test_introspection_names_the_professional_only_for_an_access_token(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    access = introspect(psc, tokens["access_token"])
    assert access["active"] is True and access["client_id"] == CLIENT_ID
    assert access["SubjectNameID"] == CLAUDE_VASSEUR and access["sub"].endswith(CLAUDE_VASSEUR)
    assert access["acr"] == "eidas1" and access["exp"] > time.time()
    refresh = introspect(psc, tokens["refresh_token"])
    assert refresh["active"] is True and "SubjectNameID" not in refresh and "sub" not in refresh
    assert introspect(psc, tokens["access_token"], ("esante-other-rp", "other-rp-secret-not-for-production")) \
        == {"active": False}
    assert introspect(psc, "garbage") == {"active": False}
    oauth_error(psc.http.post(psc.url + INTROSPECT_PATH, data={"token": tokens["access_token"]}), 401,
                "invalid_client")


def test_end_session_redirects_to_a_registered_uri_and_ends_every_token_of_the_session(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    bystander = code_flow(psc, DAVID_BENHAMOU)  # another session, untouched
    refused = psc.http.get(psc.url + LOGOUT_PATH, params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example.org/out"})
    assert refused.status_code == 400 and "redirect" in refused.text.lower()
    assert introspect(psc, tokens["access_token"])["active"] is True, "a refused logout ends nothing"
    answer = psc.http.get(psc.url + LOGOUT_PATH, params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGGED_OUT, "state": "bye-123"})
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(LOGGED_OUT + "?")
    assert query_of(answer.headers["location"]) == {"state": "bye-123"}
    assert introspect(psc, tokens["access_token"]) == {"active": False}
    assert introspect(psc, tokens["refresh_token"]) == {"active": False}
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    oauth_error(token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}),
                400, "invalid_grant")
    assert userinfo(psc, bystander["access_token"]).status_code == 200


def test_end_session_refuses_a_forged_hint_and_a_redirect_without_client(psc: RunningPsc) -> None:
    forged = psc.http.get(psc.url + LOGOUT_PATH, params={"id_token_hint": "a.b.c"})
    assert forged.status_code == 400
    orphan = psc.http.get(psc.url + LOGOUT_PATH, params={"post_logout_redirect_uri": LOGGED_OUT})
    assert orphan.status_code == 400
    plain = psc.http.get(psc.url + LOGOUT_PATH)
    assert plain.status_code == 200 and "déconnecté" in plain.text


# -- CIBA --------------------------------------------------------------------------------------------------

def ciba_start(psc: RunningPsc, **overrides: str) -> httpx.Response:
    data = {"scope": "openid scope_all", "acr_values": "eidas1", "login_hint": CLAUDE_VASSEUR,
            "binding_message": "42", "channel": "MOBILE", **overrides}
    return psc.http.post(psc.url + CIBA_PATH, data={k: v for k, v in data.items() if v != ""}, auth=BASIC)


def ciba_poll(psc: RunningPsc, auth_req_id: str) -> httpx.Response:
    return token(psc, {"grant_type": GRANT_CIBA, "auth_req_id": auth_req_id})


def test_ciba_is_pending_then_slow_down_then_approved_after_a_second(psc: RunningPsc) -> None:
    started = ciba_start(psc)
    assert started.status_code == 200, started.text
    request = started.json()
    assert request["expires_in"] == 120 and request["interval"] == 1 and request["auth_req_id"]
    oauth_error(ciba_poll(psc, request["auth_req_id"]), 400, "authorization_pending")
    oauth_error(ciba_poll(psc, request["auth_req_id"]), 400, "slow_down")
    time.sleep(1.05)
    answer = ciba_poll(psc, request["auth_req_id"])
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert verified(psc, tokens["id_token"])["sub"].endswith(CLAUDE_VASSEUR)
    assert userinfo(psc, tokens["access_token"]).json()["SubjectNameID"] == CLAUDE_VASSEUR
    oauth_error(ciba_poll(psc, "unknown-request"), 400, "invalid_grant")


def test_ciba_refused_by_the_professional_is_access_denied(psc: RunningPsc) -> None:
    behaviour(psc, "ciba_deny", CIBA_PATH, count=1)
    request = ciba_start(psc).json()
    time.sleep(1.05)
    oauth_error(ciba_poll(psc, request["auth_req_id"]), 400, "access_denied")


def test_ciba_request_can_be_answered_on_the_simulated_e_cps_app(psc: RunningPsc) -> None:
    request = ciba_start(psc, binding_message="17").json()
    app = psc.http.get(psc.url + "/ecps")
    assert app.status_code == 200 and "17" in app.text
    form = html.fromstring(app.text).forms[0]
    decision = psc.http.post(urljoin(psc.url, form.action), data=dict(form.fields) | {"decision": "deny"})
    assert decision.status_code == 303
    oauth_error(ciba_poll(psc, request["auth_req_id"]), 400, "access_denied")
    again = psc.http.post(urljoin(psc.url, form.action), data={"decision": "approve"})
    assert again.status_code == 404


@pytest.mark.parametrize(("overrides", "status", "error"), [
    ({"login_hint": "899999999999"}, 400, "unknown_user_id"),
    ({"login_hint": ""}, 400, "invalid_request"),
    ({"channel": "PIGEON"}, 400, "invalid_request"),
    ({"acr_values": "eidas2"}, 400, "invalid_request"),
    ({"scope": "scope_all"}, 400, "invalid_scope"),
    ({"binding_message": "x" * 40}, 400, "invalid_binding_message"),
])
def test_ciba_request_errors(psc: RunningPsc, overrides: dict[str, str], status: int, error: str) -> None:
    oauth_error(ciba_start(psc, **overrides), status, error)


def test_ciba_is_refused_to_a_client_not_registered_for_it(psc: RunningPsc) -> None:
    answer = psc.http.post(psc.url + CIBA_PATH, data={"scope": "openid", "login_hint": CLAUDE_VASSEUR,
                                                      "channel": "CARD"},
                           auth=("esante-other-rp", "other-rp-secret-not-for-production"))
    oauth_error(answer, 400, "unauthorized_client")


# -- token exchange ------------------------------------------------------------------------------------------

def exchange(psc: RunningPsc, subject: str, http: httpx.Client, **extra: str) -> httpx.Response:
    return token(psc, {"grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": subject,
                       "subject_token_type": TOKEN_TYPE_ACCESS, **extra}, auth=BASIC, http=http)


def test_token_exchange_over_mtls_with_a_structure_certificate_gives_a_bound_token(psc: RunningPsc) -> None:
    subject = code_flow(psc)["access_token"]
    answer = exchange(psc, subject, psc.mtls, audience="api-pro-sante-connectee")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == TOKEN_TYPE_ACCESS and body["token_type"] == "Bearer"
    claims = verified(psc, body["access_token"])
    assert claims["cnf"] == {"x5t#S256": thumbprint(psc.rp_cert.cert_pem)}
    assert claims["aud"] == "api-pro-sante-connectee"
    assert claims["sub"] == verified(psc, subject)["sub"]
    assert userinfo(psc, body["access_token"], http=psc.mtls).status_code == 200
    oauth_error(userinfo(psc, body["access_token"]), 401, "invalid_token")


def test_token_exchange_is_refused_without_a_structure_certificate_or_a_live_subject_token(psc: RunningPsc) -> None:
    subject = code_flow(psc)["access_token"]
    assert "mutual TLS" in oauth_error(exchange(psc, subject, psc.http), 400, "invalid_request")
    with psc.client(psc.ca.issue_structure("999999999", "UNKNOWN", cn="ESANTE-REFERENCE-RP")) as stranger:
        assert "structure" in oauth_error(exchange(psc, subject, stranger), 400, "invalid_request")
    oauth_error(exchange(psc, "not-a-token", psc.mtls), 400, "invalid_request")
    oauth_error(exchange(psc, subject, psc.mtls, subject_token_type="urn:x"), 400, "invalid_request")
    assert psc.http.post(psc.url + REVOKE_PATH, data={"token": subject}, auth=BASIC).status_code == 200
    oauth_error(exchange(psc, subject, psc.mtls), 400, "invalid_request")


# -- authorization errors ------------------------------------------------------------------------------------

def authorize(psc: RunningPsc, params: dict[str, str]) -> httpx.Response:
    return psc.http.get(psc.url + AUTHORIZE_PATH, params={k: v for k, v in params.items() if k != "code_verifier"})


@pytest.mark.parametrize("overrides", [
    {"client_id": "no-such-client"},
    {"client_id": None},
    {"redirect_uri": "https://evil.example.org/psc/callback"},
    {"redirect_uri": "http://127.0.0.1:8765/psc/callback?next=/admin"},
    {"redirect_uri": "http://127.0.0.1:8765/psc/other"},
    {"redirect_uri": None},
])
def test_authorize_shows_an_error_page_and_never_redirects_for_an_unknown_client_or_redirect_uri(
        psc: RunningPsc, overrides: dict[str, str | None]) -> None:
    answer = authorize(psc, authorize_params(**overrides))
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html") and "location" not in answer.headers


@pytest.mark.parametrize(("overrides", "error"), [
    ({"acr_values": "eidas2"}, "invalid_request"),
    ({"scope": "scope_all"}, "invalid_scope"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"response_type": None}, "invalid_request"),
    ({"response_type": "token"}, "unauthorized_client"),
    ({"response_type": "id_token code"}, "unauthorized_client"),
    ({"response_type": "magic"}, "unsupported_response_type"),
    ({"response_mode": "carrier_pigeon"}, "invalid_request"),
    ({"claims": "[1]"}, "invalid_request"),
    ({"claims": '{"id_token": 7}'}, "invalid_request"),
    ({"request_uri": "https://rp.example.org/request.jwt"}, "request_uri_not_supported"),
    ({"request": "not-a-jwt"}, "invalid_request"),
    ({"code_challenge_method": "S512"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
])
def test_authorize_redirects_request_errors_back_with_state_and_iss(psc: RunningPsc, overrides: dict[str, str | None],
                                                                   error: str) -> None:
    params = authorize_params(**overrides)
    answer = authorize(psc, params)
    assert answer.status_code == 302
    callback = query_of(answer.headers["location"])
    assert callback["error"] == error and callback["error_description"]
    assert callback["state"] == params["state"] and callback["iss"] == psc.url + ISSUER_PATH
    assert "code" not in callback


def test_token_endpoint_refuses_an_unknown_client(psc: RunningPsc) -> None:
    answer = token(psc, {"grant_type": "authorization_code", "code": "x"}, auth=("no-such-client", "whatever-secret"))
    oauth_error(answer, 401, "invalid_client")


@pytest.mark.parametrize(("change", "description"), [
    ({"code_verifier": secrets.token_urlsafe(48)}, "PKCE verification failed"),
    ({"code_verifier": None}, "PKCE code verifier not specified"),
    ({"redirect_uri": "http://127.0.0.1:9999/psc/callback"}, "Incorrect redirect_uri"),
])
def test_code_redemption_errors_are_invalid_grant(psc: RunningPsc, change: dict[str, str | None],
                                                  description: str) -> None:
    params = authorize_params()
    callback = sign_in(psc, params)
    data = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": REDIRECT,
            "code_verifier": params["code_verifier"]} | change
    answer = token(psc, {k: v for k, v in data.items() if v is not None})
    assert oauth_error(answer, 400, "invalid_grant") == description


def test_a_reused_code_is_refused_and_the_tokens_it_gave_are_revoked(psc: RunningPsc) -> None:
    params = authorize_params()
    callback = sign_in(psc, params)
    first = redeem(psc, params, callback).json()
    assert userinfo(psc, first["access_token"]).status_code == 200
    oauth_error(redeem(psc, params, callback), 400, "invalid_grant")
    oauth_error(userinfo(psc, first["access_token"]), 401, "invalid_token")
    assert introspect(psc, first["refresh_token"]) == {"active": False}


def test_a_code_is_bound_to_its_client(psc: RunningPsc) -> None:
    params = authorize_params()
    callback = sign_in(psc, params)
    other = redeem(psc, params, callback, auth=("esante-other-rp", "other-rp-secret-not-for-production"))
    oauth_error(other, 400, "invalid_grant")


def test_an_expired_code_is_refused(psc: RunningPsc) -> None:
    params = authorize_params()
    callback = sign_in(psc, params)
    psc.simulator.federator.state.codes[callback["code"]].expires = time.time() - 1  # a minute later
    assert oauth_error(redeem(psc, params, callback), 400, "invalid_grant") == "Code is expired"


@pytest.mark.parametrize(("content", "content_type", "error"), [
    ("grant_type=refresh_token&grant_type=authorization_code", "application/x-www-form-urlencoded",
     "invalid_request"),
    ('{"grant_type": "authorization_code"}', "application/json", "invalid_request"),
    ("grant_type=client_credentials", "application/x-www-form-urlencoded", "unauthorized_client"),
    ("grant_type=password&username=x&password=y", "application/x-www-form-urlencoded", "unauthorized_client"),
    ("grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x", "application/x-www-form-urlencoded",
     "unauthorized_client"),
    ("grant_type=", "application/x-www-form-urlencoded", "invalid_request"),
    ("scope=openid", "application/x-www-form-urlencoded", "invalid_request"),
    ("grant_type=urn:example:magic", "application/x-www-form-urlencoded", "unsupported_grant_type"),
])
def test_malformed_token_requests_get_oauth_errors(psc: RunningPsc, content: str, content_type: str,
                                                   error: str) -> None:
    answer = psc.http.post(psc.url + TOKEN_PATH, content=content, auth=BASIC, headers={"Content-Type": content_type})
    oauth_error(answer, 400, error)


# -- behaviours ------------------------------------------------------------------------------------------

def test_tamper_state_sends_back_another_state(psc: RunningPsc) -> None:
    behaviour(psc, "tamper_state", LOGIN_PATH, count=1)  # the login form's POST answers the redirect
    params = authorize_params()
    callback = sign_in(psc, params)
    assert callback["state"] != params["state"] and callback["code"]
    second = authorize_params()
    assert sign_in(psc, second)["state"] == second["state"], "count 1: only the first response is tampered"


def test_a_behaviour_rule_with_after_spares_the_first_sign_in(psc: RunningPsc) -> None:
    behaviour(psc, "tamper_state", LOGIN_PATH, after=1, count=1)
    first, second = authorize_params(), authorize_params()
    assert sign_in(psc, first)["state"] == first["state"]
    assert sign_in(psc, second)["state"] != second["state"]


def test_tamper_iss_names_another_issuer(psc: RunningPsc) -> None:
    behaviour(psc, "tamper_iss", AUTHORIZE_PATH)
    callback = sign_in(psc, authorize_params())
    assert callback["iss"] != psc.url + ISSUER_PATH and callback["iss"].startswith("https://attacker.")


def test_replay_response_sends_the_previous_code_and_state_again(psc: RunningPsc) -> None:
    first_params = authorize_params()
    first = sign_in(psc, first_params)
    assert redeem(psc, first_params, first).status_code == 200
    behaviour(psc, "replay_response", LOGIN_PATH, count=1)
    second = sign_in(psc, authorize_params())
    assert (second["code"], second["state"]) == (first["code"], first["state"])


@pytest.mark.parametrize(("name", "claim", "expected"), [
    ("id_token_wrong_nonce", "nonce", "tampered"),
    ("id_token_weak_acr", "acr", "0"),
    ("id_token_wrong_audience", "aud", "esante-other-rp"),
])
def test_id_token_behaviours_bend_one_claim(psc: RunningPsc, name: str, claim: str, expected: str) -> None:
    behaviour(psc, name, TOKEN_PATH, count=1)
    tokens = code_flow(psc)
    claims = verified(psc, tokens["id_token"])  # still validly signed
    assert str(claims[claim]).startswith(expected)
    assert (claims["nonce"] == tokens["_nonce"]) is (name != "id_token_wrong_nonce")
    clean = verified(psc, code_flow(psc)["id_token"])
    assert (clean["nonce"], clean["acr"], clean["aud"]) != (claims["nonce"], claims["acr"], claims["aud"])
    assert clean["acr"] == "eidas1" and clean["aud"] == CLIENT_ID


def test_id_token_bad_signature_names_the_published_key_but_does_not_verify(psc: RunningPsc) -> None:
    behaviour(psc, "id_token_bad_signature", TOKEN_PATH, count=1)
    tokens = code_flow(psc)
    assert _unverified_header(tokens["id_token"])["kid"] in {k["kid"] for k in jwks(psc)["keys"]}
    with pytest.raises(BadSignatureError):
        verified(psc, tokens["id_token"])
    verified(psc, tokens["access_token"])  # only the ID token is forged


def test_rotate_signing_key_publishes_the_new_key_beside_the_old_one(psc: RunningPsc) -> None:
    before = code_flow(psc)
    old_kid = _unverified_header(before["id_token"])["kid"]
    assert [k["kid"] for k in jwks(psc)["keys"]] == [old_kid]
    behaviour(psc, "rotate_signing_key", TOKEN_PATH, count=1)
    after = code_flow(psc)
    new_kid = _unverified_header(after["id_token"])["kid"]
    assert new_kid != old_kid
    assert {k["kid"] for k in jwks(psc)["keys"]} == {old_kid, new_kid}
    assert all("d" not in k for k in jwks(psc)["keys"]), "no private part is published"
    assert verified(psc, after["id_token"])["nonce"] == after["_nonce"]
    assert userinfo(psc, before["access_token"]).status_code == 200, "tokens of the old key stay valid"
    psc.admin("POST", "/reset")
    assert [k["kid"] for k in jwks(psc)["keys"]] == [old_kid]


def test_short_lifetimes_make_the_access_token_expire_in_two_seconds_and_refresh_work(
        psc: RunningPsc, request: pytest.FixtureRequest) -> None:
    behaviour(psc, "short_lifetimes", TOKEN_PATH, count=1)
    tokens = code_flow(psc)
    assert tokens["expires_in"] == 2
    assert verified(psc, tokens["access_token"])["exp"] - time.time() <= 2
    assert userinfo(psc, tokens["access_token"]).status_code == 200
    time.sleep(2.05)
    oauth_error(userinfo(psc, tokens["access_token"]), 401, "invalid_token")
    assert introspect(psc, tokens["access_token"]) == {"active": False}
    renewed = token(psc, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert renewed["expires_in"] == 120
    assert userinfo(psc, renewed["access_token"]).status_code == 200
    states = [e["notes"].get("token_state") for e in journal(psc, request.node.name) if e["path"] == USERINFO_PATH]
    assert states == ["valid", "expired", "valid"]


def test_refresh_rejected_refuses_a_valid_refresh_token_once(psc: RunningPsc) -> None:
    tokens = code_flow(psc)
    behaviour(psc, "refresh_rejected", TOKEN_PATH, count=1)
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    oauth_error(token(psc, grant), 400, "invalid_grant")
    assert token(psc, grant).status_code == 200


def test_an_unknown_behaviour_is_refused_by_the_admin_api(psc: RunningPsc) -> None:
    answer = psc.admin("PUT", "/faults", [{"kind": "behaviour", "fault_code": "be_nice"}])
    assert answer.status_code == 422 and "tamper_state" in answer.text


# -- service and transport faults ------------------------------------------------------------------------

def test_temporarily_unavailable_is_a_503_oauth_error(psc: RunningPsc) -> None:
    faults(psc, {"kind": "service_fault", "fault_code": "temporarily_unavailable", "path_prefix": TOKEN_PATH,
                 "count": 1})
    params = authorize_params()
    callback = sign_in(psc, params)  # other paths unaffected
    oauth_error(redeem(psc, params, callback), 503, "temporarily_unavailable")
    assert redeem(psc, params, callback).status_code == 200, "the failed call did not spend the code"


def test_jwks_http_error_and_latency(psc: RunningPsc) -> None:
    faults(psc, {"kind": "http_error", "status": 502, "path_prefix": JWKS_PATH, "count": 1},
           {"kind": "latency", "latency_ms": 300, "path_prefix": JWKS_PATH, "after": 1, "count": 1})
    broken = psc.http.get(psc.url + JWKS_PATH)
    assert broken.status_code == 502 and not broken.headers["content-type"].startswith("application/json")
    started = time.perf_counter()
    slow = psc.http.get(psc.url + JWKS_PATH)
    assert time.perf_counter() - started >= 0.3
    assert slow.status_code == 200 and slow.json()["keys"]
    started = time.perf_counter()
    assert psc.http.get(psc.url + JWKS_PATH).status_code == 200
    assert time.perf_counter() - started < 0.3


# -- hostile input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "kwargs", "status"), [
    (TOKEN_PATH, {"content": b"grant_type=" + b"a" * 70_000}, 413),
    (TOKEN_PATH, {"content": "&".join(f"f{i}=v" for i in range(60))}, 400),
    (TOKEN_PATH, {"content": b"grant_type=\xff\xfe"}, 400),
    (TOKEN_PATH, {"content": "grant_type=authorization_code", "headers": {"Authorization": "Basic !!!"}}, 401),
    (TOKEN_PATH, {"content": "grant_type=authorization_code",
                  "headers": {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}}, 401),
    (TOKEN_PATH, {"content": "grant_type=authorization_code",
                  "headers": {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}}, 401),
    (TOKEN_PATH, {"content": "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                             "&client_assertion=a.%%%.b"}, 401),
    (INTROSPECT_PATH, {"content": "token=x", "headers": {"Authorization": "Basic " + "A" * 5000}}, 401),
    (USERINFO_PATH, {"content": "access_token=" + "a." * 3000}, 401),
    (AUTHORIZE_PATH, {"content": "&".join(f"f{i}=v" for i in range(60))}, 400),
    (LOGIN_PATH, {"content": "transaction=nope&national_id=810999900011"}, 400),
    (CIBA_PATH, {"content": "login_hint=%00%ff", "headers": {"Authorization": "Basic Og=="}}, 401),
])
def test_hostile_input_gets_a_clear_4xx_never_a_500(psc: RunningPsc, path: str, kwargs: dict[str, Any],
                                                    status: int, request: pytest.FixtureRequest) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    answer = psc.http.post(psc.url + path, headers=headers, **kwargs)
    assert answer.status_code == status, answer.text
    if answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["error"]
    exchanges = journal(psc, request.node.name)
    assert [e["outcome"] for e in exchanges] == ["answered"] and "exception" not in exchanges[0]["notes"]


@pytest.mark.parametrize("path", [AUTHORIZE_PATH, LOGOUT_PATH, USERINFO_PATH])
def test_a_query_with_too_many_fields_is_a_4xx(psc: RunningPsc, path: str, request: pytest.FixtureRequest) -> None:
    answer = psc.http.get(psc.url + path + "?" + "&".join(f"f{i}=v" for i in range(60)))
    assert 400 <= answer.status_code < 500 and answer.json()["error"] in ("invalid_request", "invalid_token")
    assert [e["outcome"] for e in journal(psc, request.node.name)] == ["answered"]


# -- journal -------------------------------------------------------------------------------------------------

def test_every_exchange_is_journaled_with_its_operation_client_and_error(psc: RunningPsc,
                                                                         request: pytest.FixtureRequest) -> None:
    tokens = code_flow(psc)
    userinfo(psc, tokens["access_token"])
    token(psc, {"grant_type": "refresh_token", "refresh_token": "unknown"}, auth=None)  # no client auth
    token(psc, {"grant_type": "refresh_token", "refresh_token": "unknown"})
    exchanges = journal(psc, request.node.name)
    assert [e["notes"]["operation"] for e in exchanges] == ["authorize", "login", "token", "userinfo", "token",
                                                            "token"]
    assert all(e["outcome"] == "answered" and e["scheme"] == "https" for e in exchanges)
    authorize_, login, redeemed, info, anonymous, refused = (e["notes"] for e in exchanges)
    assert authorize_["client_id"] == CLIENT_ID and login["authorization_response"]["national_id"] == CLAUDE_VASSEUR
    assert redeemed | {"client_id": CLIENT_ID, "client_auth": "client_secret_basic",
                       "grant_type": "authorization_code"} == redeemed
    assert redeemed["issued"]["kid"] == _unverified_header(tokens["id_token"])["kid"]
    assert info["token_state"] == "valid"
    assert anonymous["error"] == "invalid_client"
    assert refused["error"] == "invalid_grant" and refused["client_auth"] == "client_secret_basic"
    statuses = [e["status"] for e in exchanges]
    assert statuses == [200, 302, 200, 200, 401, 400]
