"""The hidden-client proof: a standard OpenID Connect client library signs a professional in through the PSC
simulator knowing nothing of PSC but its discovery URL (authlib for OAuth 2.0, joserfc for the ID token).

The only PSC knowledge below is the discovery URL, the registered client, and what any PSC relying party is
told to send (``acr_values=eidas1``, the ``scope_all`` scope). The test plays the browser: it submits the login
page's form as served, without knowing its fields.
"""

from __future__ import annotations

import warnings
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import html

from esante.simulators.core.pki import client_ssl_context
from tests.conftest import RunningPsc

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (its import turns its own deprecation warnings to "always")

    warnings.simplefilter("ignore")  # authlib announces its httpx integration's move to httpx2
    from authlib.integrations.httpx_client import OAuth2Client

DISCOVERY = "/auth/realms/esante-wallet/.well-known/wallet-openid-configuration"
CLIENT_ID = "esante-reference-rp"
SECRET = "reference-rp-secret-not-for-production"
REDIRECT_URI = "http://127.0.0.1:53682/psc/callback"


def browser_signs_in(browser: httpx.Client, authorization_url: str) -> str:
    """Follow the authorization URL, submit the first form of each page as served, until the redirect back to
    the client; answer that redirect's location."""
    response = browser.get(authorization_url)
    for _ in range(5):
        if response.status_code in (302, 303) and response.headers["location"].startswith(REDIRECT_URI):
            return response.headers["location"]
        assert response.status_code == 200, response.text
        form = html.fromstring(response.text).forms[0]
        target = urljoin(str(response.url), form.action or "")
        response = browser.request(form.method or "GET", target, data=dict(form.fields))
    raise AssertionError("the browser never came back to the client")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_standard_oidc_client_signs_in_through_discovery_pkce_and_userinfo(psc: RunningPsc) -> None:
    verify = client_ssl_context(psc.ca.ca_pem)
    with OAuth2Client(CLIENT_ID, SECRET, scope="openid scope_all", redirect_uri=REDIRECT_URI,
                      code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
                      verify=verify, timeout=10) as client, httpx.Client(verify=verify, timeout=10) as browser:
        metadata = client.request("GET", psc.url + DISCOVERY, withhold_token=True).json()
        assert {"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} <= set(metadata)
        assert "S256" in metadata["code_challenge_methods_supported"]

        verifier, nonce = generate_token(48), generate_token(32)
        url, state = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                     nonce=nonce, acr_values="eidas1")
        assert "code_challenge=" in url and "code_verifier" not in url
        location = browser_signs_in(browser, url)
        callback = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert callback["state"] == state
        if metadata.get("authorization_response_iss_parameter_supported"):  # RFC 9207 mix-up defence
            assert callback["iss"] == metadata["issuer"]

        token = client.fetch_token(metadata["token_endpoint"], authorization_response=location, state=state,
                                   code_verifier=verifier)
        assert token["token_type"].lower() == "bearer" and token["access_token"] and token["id_token"]

        keys = KeySet.import_key_set(client.request("GET", metadata["jwks_uri"], withhold_token=True).json())
        id_token = jwt.decode(token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": CLIENT_ID},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True},
            exp={"essential": True},
            acr={"essential": True, "value": "eidas1"},
        ).validate(id_token.claims)

        userinfo = client.get(metadata["userinfo_endpoint"])
        assert userinfo.status_code == 200, userinfo.text
        claims = userinfo.json()
        assert claims["sub"] == id_token.claims["sub"]  # OIDC Core §5.3.2
        first = psc.simulator.dataset.professionals[0]  # the login form's default choice
        assert claims["SubjectNameID"] == first.national_id and claims["family_name"] == first.family_name

        refreshed = client.refresh_token(metadata["token_endpoint"])
        assert refreshed["access_token"] != token["access_token"]
        assert client.get(metadata["userinfo_endpoint"]).json()["SubjectNameID"] == first.national_id


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_standard_client_is_told_when_it_presents_a_wrong_verifier(psc: RunningPsc) -> None:
    """The same library, with a verifier that does not match its challenge: the code is refused."""
    from authlib.integrations.base_client.errors import OAuthError

    verify = client_ssl_context(psc.ca.ca_pem)
    with OAuth2Client(CLIENT_ID, SECRET, scope="openid scope_all", redirect_uri=REDIRECT_URI,
                      code_challenge_method="S256", verify=verify, timeout=10) as client, \
            httpx.Client(verify=verify, timeout=10) as browser:
        metadata = client.request("GET", psc.url + DISCOVERY, withhold_token=True).json()
        url, state = client.create_authorization_url(metadata["authorization_endpoint"],
                                                     code_verifier=generate_token(48), nonce=generate_token(32),
                                                     acr_values="eidas1")
        location = browser_signs_in(browser, url)
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(metadata["token_endpoint"], authorization_response=location, state=state,
                               code_verifier=generate_token(48))
        assert refused.value.error == "invalid_grant"
