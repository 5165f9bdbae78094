"""Two more outsiders, unchanged: pyoidc (``oic``, Roland Hedberg's OpenID Connect library) signs a professional in
at the PSC simulator from its standard discovery document — PKCE, nonce, client_secret_basic, userinfo, refresh —
and checks the ID token's at_hash with its own verifier; PyJWT validates every ID token strictly (signature from
the JWKS, issuer, audience, expiry, required claims) and recomputes at_hash with its own hash of RS256.
"""

from __future__ import annotations

import base64
import warnings
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from lxml import html

from esante.simulators.psc.protocol import ISSUER_PATH
from tests.conftest import RunningPsc

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyoidc's imports announce deprecations of their own dependencies
    from oic.oic import Client
    from oic.oic.message import AuthorizationResponse, RegistrationResponse, verify_id_token
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

CLIENT_ID = "esante-reference-rp"
SECRET = "reference-rp-secret-not-for-production"
REDIRECT_URI = "http://127.0.0.1:53682/psc/callback"
CLAIRE_VASSEUR = "810999900011"


def _strictly_valid(psc: RunningPsc, id_token: str, access_token: str) -> dict[str, Any]:
    """PyJWT's validation of an ID token, and at_hash recomputed with PyJWT's own RS256 hash."""
    keys = jwt.PyJWKSet.from_dict(psc.http.get(psc.url + ISSUER_PATH + "/protocol/openid-connect/certs").json())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(id_token)["kid"])
    claims = jwt.decode(id_token, key=key.key, algorithms=["RS256"], audience=CLIENT_ID,
                        issuer=psc.url + ISSUER_PATH,
                        options={"require": ["iss", "aud", "exp", "iat", "sub", "auth_time", "at_hash"]})
    digest = jwt.get_algorithm_by_name("RS256").compute_hash_digest(access_token.encode())
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:len(digest) // 2]).rstrip(b"=").decode()
    return claims


def _browser(psc: RunningPsc, url: str) -> str:
    """The login page's form as served, the professional chosen: where the browser lands back."""
    page = psc.http.get(url)
    assert page.status_code == 200, page.text
    form = html.fromstring(page.text).forms[0]
    fields = dict(form.fields) | {"national_id": CLAIRE_VASSEUR}
    answer = psc.http.post(httpx.URL(url).join(form.action), data=fields)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pyoidc_signs_in_checks_at_hash_and_refreshes_keeping_auth_time(psc: RunningPsc) -> None:
    assert psc.admin("POST", "/reset").status_code == 200
    rp = Client(client_authn_method=CLIENT_AUTHN_METHOD, verify_ssl=str(psc.lab.ca_file))
    rp.provider_config(psc.url + ISSUER_PATH)
    rp.store_registration_info(RegistrationResponse(client_id=CLIENT_ID, client_secret=SECRET,
                                                    redirect_uris=[REDIRECT_URI]))
    pkce, verifier = rp.add_code_challenge()
    request = rp.construct_AuthorizationRequest(request_args={
        "client_id": CLIENT_ID, "response_type": "code", "scope": ["openid", "scope_all"], "acr_values": "eidas1",
        "redirect_uri": REDIRECT_URI, "state": "pyoidc-state-0123456789abcdef", "nonce": "pyoidc-nonce-0123456789",
        **pkce})
    location = _browser(psc, request.request(rp.authorization_endpoint))
    answer = rp.parse_response(AuthorizationResponse, info=urlsplit(location).query, sformat="urlencoded")
    assert answer["state"] == "pyoidc-state-0123456789abcdef" and answer["iss"] == rp.provider_info["issuer"]

    tokens = rp.do_access_token_request(state=answer["state"], authn_method="client_secret_basic",
                                        request_args={"code": answer["code"], "code_verifier": verifier,
                                                      "redirect_uri": REDIRECT_URI})
    id_token = tokens["id_token"]  # verified by pyoidc: signature, issuer, audience, expiry
    assert id_token["nonce"] == "pyoidc-nonce-0123456789" and id_token["acr"] == "eidas1"
    checked = verify_id_token({"id_token": tokens["id_token_jwt"], "access_token": tokens["access_token"]},
                              check_hash=True, keyjar=rp.keyjar)
    assert checked["at_hash"] == id_token["at_hash"]
    first = _strictly_valid(psc, tokens["id_token_jwt"], tokens["access_token"])

    info = rp.do_user_info_request(state=answer["state"])
    assert info["sub"] == id_token["sub"] and info["SubjectNameID"] == CLAIRE_VASSEUR

    renewed = rp.do_access_token_refresh(state=answer["state"], authn_method="client_secret_basic")
    assert renewed["access_token"] != tokens["access_token"]
    verify_id_token({"id_token": renewed["id_token_jwt"], "access_token": renewed["access_token"]},
                    check_hash=True, keyjar=rp.keyjar)
    again = _strictly_valid(psc, renewed["id_token_jwt"], renewed["access_token"])
    assert again["auth_time"] == first["auth_time"] and again["sub"] == first["sub"]  # OIDC Core §12.2
