"""The reference candidate's PSC client, piece by piece, without the simulator: PKCE, the ID token rules on
locally signed tokens, certificate binding, and the client's calls against a scripted fake PSC (httpx's
MockTransport) — discovery, the authorization response checks, the JWKS cache, retries, refresh, CIBA."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from esante.harness.reference.defects import Defects
from esante.harness.reference.psc import client as psc_client
from esante.harness.reference.psc import transport as psc_transport
from esante.harness.reference.psc.client import PendingLogin, PscClient, Session
from esante.harness.reference.psc.tokens import (
    IdTokenRules,
    PscRefused,
    PscUnavailable,
    bound_thumbprint,
    certificate_thumbprint,
    check_id_token_claims,
    new_verifier,
    s256_challenge,
    verified_claims,
)
from esante.simulators.core.pki import TestCA

BASE = "https://psc.test"
ISSUER = f"{BASE}/auth/realms/esante-wallet"
CLIENT = "esante-reference-rp"
SECRET = "s3cret"
CALLBACK = "http://127.0.0.1:8700/psc/callback"
NATIONAL_ID = "810001234567"
SUB = f"f:provider:{NATIONAL_ID}"
#: Deliberately not Keycloak's paths: only a client that reads discovery finds them.
DISCOVERY = {"issuer": ISSUER, "authorization_endpoint": "https://wallet.psc.test/authorize",
             "token_endpoint": f"{BASE}/x/token", "userinfo_endpoint": f"{BASE}/x/me", "jwks_uri": f"{BASE}/x/keys",
             "end_session_endpoint": f"{BASE}/x/bye", "backchannel_authentication_endpoint": f"{BASE}/x/ciba"}


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def sign(key: RSAKey, claims: dict[str, Any], alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)


def id_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "azp": CLIENT, "sub": SUB, "exp": now + 120, "iat": now,
              "nonce": "n" * 64, "acr": "eidas1"}
    return {k: v for k, v in (claims | changes).items() if v is not None}


# -- PKCE ----------------------------------------------------------------------------------------------------
def test_s256_challenge_is_the_base64url_sha256_of_the_verifier() -> None:
    verifier = new_verifier()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert s256_challenge(verifier) == expected and len(expected) == 43


def test_verifiers_are_long_fresh_and_unreserved() -> None:
    verifiers = {new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", v) for v in verifiers)


# -- ID token rules --------------------------------------------------------------------------------------------
RULES = IdTokenRules(issuer=ISSUER, client_id=CLIENT, nonce="n" * 64)


def test_a_good_id_token_passes() -> None:
    check_id_token_claims(id_claims(), RULES, time.time())
    check_id_token_claims(id_claims(aud=[CLIENT, "account"]), RULES, time.time())


@pytest.mark.parametrize(("changes", "reason"), [
    ({"iss": "https://attacker.example/auth/realms/esante-wallet"}, "iss"),
    ({"aud": "esante-other-rp"}, "issued to"),
    ({"azp": "esante-other-rp"}, "authorized party"),
    ({"aud": [CLIENT, "account"], "azp": None}, "several audiences"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"exp": None}, "no expiry"),
    ({"iat": int(time.time()) + 3600}, "future"),
    ({"iat": None}, "no issue time"),
    ({"nonce": "m" * 64}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"acr": "eidas2"}, "eidas1"),
    ({"acr": None}, "eidas1"),
])
def test_an_id_token_breaking_one_rule_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(PscRefused, match=reason):
        check_id_token_claims(id_claims(**changes), RULES, time.time())


def test_without_a_nonce_sent_none_is_required() -> None:
    check_id_token_claims(id_claims(nonce=None), IdTokenRules(issuer=ISSUER, client_id=CLIENT), time.time())


def test_a_switched_off_rule_is_not_applied() -> None:
    lax = IdTokenRules(issuer=ISSUER, client_id=CLIENT, nonce="n" * 64, access_token="a", check_audience=False,
                       check_nonce=False, check_acr=False, check_at_hash=False)
    check_id_token_claims(id_claims(aud="esante-other-rp", nonce="m" * 64, acr="eidas2", at_hash="x"), lax,
                          time.time())


def test_at_hash_when_present_must_be_the_access_token_s() -> None:
    rules = IdTokenRules(issuer=ISSUER, client_id=CLIENT, nonce="n" * 64,
                         access_token="jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y")
    check_id_token_claims(id_claims(at_hash="77QmUPtjPfzWtF2AnpK9RQ"), rules, time.time())  # OIDC Core A.4
    check_id_token_claims(id_claims(), rules, time.time())  # optional in the code flow
    with pytest.raises(PscRefused, match="at_hash"):
        check_id_token_claims(id_claims(at_hash="77QmUPtjPfzWtF2AnpK9RA"), rules, time.time())


def test_signature_is_verified_with_the_key_of_the_kid() -> None:
    key = rsa("k1")
    keys = KeySet([key])
    assert verified_claims(sign(key, id_claims()), keys)["sub"] == SUB
    forged = sign(rsa("k1"), id_claims())  # same kid, another key
    with pytest.raises(PscRefused, match="signature"):
        verified_claims(forged, keys)
    with pytest.raises(PscRefused, match="signature"):
        verified_claims(sign(rsa("k2"), id_claims()), keys)


def test_only_rs256_is_accepted() -> None:
    secret = OctKey.generate_key(256, parameters={"kid": "k1"})
    hs256 = jwt.encode({"alg": "HS256", "kid": "k1"}, id_claims(), secret)
    with pytest.raises(PscRefused):
        verified_claims(hs256, KeySet([secret]))
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(id_claims()).encode()).rstrip(b"=").decode()
    with pytest.raises(PscRefused):
        verified_claims(f"{header}.{payload}.", KeySet([rsa("k1")]))


# -- certificate binding ---------------------------------------------------------------------------------------
def test_bound_thumbprint_read_from_the_answer_or_the_access_token() -> None:
    cert = TestCA.create().issue_structure("750000001", "STRUCTURE", cn="ESANTE-REFERENCE-RP")
    thumbprint = certificate_thumbprint(cert.cert_pem)
    assert len(thumbprint) == 43
    token = sign(rsa("k1"), {"cnf": {"x5t#S256": thumbprint}})
    assert bound_thumbprint({"access_token": token}) == thumbprint
    assert bound_thumbprint({"access_token": "opaque", "cnf": {"x5t#S256": thumbprint}}) == thumbprint
    assert bound_thumbprint({"access_token": sign(rsa("k1"), {"sub": SUB})}) is None
    assert bound_thumbprint({"access_token": "opaque"}) is None


# -- the client against a fake PSC -----------------------------------------------------------------------------
class FakePsc:
    """Just enough of PSC to script one answer per endpoint; every request is kept."""

    def __init__(self) -> None:
        self.key = rsa("k1")
        self.published = [self.key]
        self.requests: list[httpx.Request] = []
        self.nonce = "n" * 64
        self.failures: dict[str, list[int]] = {}  # path -> statuses to answer first
        self.ciba_answers: list[dict[str, Any]] = []
        self.id_token_changes: dict[str, Any] = {}
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {
            "/auth/realms/esante-wallet/.well-known/wallet-openid-configuration": lambda r: httpx.Response(
                200, json=DISCOVERY),
            "/x/keys": lambda r: httpx.Response(200, json=KeySet(self.published).as_dict(private=False)),
            "/x/token": self.token,
            "/x/me": lambda r: httpx.Response(200, json={"sub": SUB, "SubjectNameID": NATIONAL_ID,
                                                         "family_name": "VASSEUR"}),
            "/x/ciba": lambda r: httpx.Response(200, json={"auth_req_id": "req-1", "expires_in": 120,
                                                           "interval": 2}),
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        pending = self.failures.get(request.url.path)
        if pending:
            return httpx.Response(pending.pop(0), text="down")
        return self.routes[request.url.path](request)

    def token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form["grant_type"] == psc_client.CIBA_GRANT and self.ciba_answers:
            answer = self.ciba_answers.pop(0)
            return httpx.Response(400, json=answer)
        nonce = self.nonce if form["grant_type"] == "authorization_code" else None
        id_token = sign(self.key, id_claims(nonce=nonce) | self.id_token_changes)
        return httpx.Response(200, json={"access_token": "at-" + form["grant_type"], "expires_in": 120,
                                         "refresh_token": "rt", "id_token": id_token, "token_type": "Bearer"})

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def rotate(self) -> None:
        self.key = rsa("k2")
        self.published = [self.key]


@pytest.fixture
def fake() -> FakePsc:
    return FakePsc()


def client_for(fake: FakePsc, *names: str) -> PscClient:
    return PscClient(BASE, client_id=CLIENT, secret=SECRET, ca_pem=None, defects=Defects(names),
                     transport=httpx.MockTransport(fake))


def callback(pending: PendingLogin, **changes: str) -> str:
    params = {"code": "c0de", "state": pending.state, "session_state": "sid", "iss": ISSUER} | changes
    return f"{CALLBACK}?{urlencode(params)}"


def begin(client: PscClient, fake: FakePsc) -> tuple[dict[str, str], dict[str, PendingLogin]]:
    url, pending = client.begin_login(CALLBACK)
    fake.nonce = pending.nonce
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}, {pending.state: pending}


def test_the_authorization_request_uses_discovery_and_fresh_values(fake: FakePsc) -> None:
    client = client_for(fake)
    first, _ = begin(client, fake)
    second, _ = begin(client, fake)
    url, _ = client.begin_login(CALLBACK)
    assert url.startswith(DISCOVERY["authorization_endpoint"] + "?")
    assert first["acr_values"] == "eidas1" and first["scope"] == "openid scope_all"
    assert first["code_challenge_method"] == "S256" and first["response_type"] == "code"
    assert all(re.fullmatch(r"[0-9a-f]{64}", first[name]) for name in ("state", "nonce"))
    assert first["state"] != second["state"] and first["nonce"] != second["nonce"]
    assert len(fake.calls("/auth/realms/esante-wallet/.well-known/wallet-openid-configuration")) == 1


def test_a_discovery_document_for_another_issuer_is_refused(fake: FakePsc) -> None:
    fake.routes["/auth/realms/esante-wallet/.well-known/wallet-openid-configuration"] = lambda r: httpx.Response(
        200, json=DISCOVERY | {"issuer": "https://attacker.example/auth/realms/esante-wallet"})
    with pytest.raises(PscRefused, match="issuer"):
        client_for(fake).begin_login(CALLBACK)


def test_a_sign_in_redeems_the_code_as_registered_and_reads_userinfo(fake: FakePsc) -> None:
    client = client_for(fake)
    _, pending = begin(client, fake)
    login = next(iter(pending.values()))
    session = client.complete_login(callback(login), pending)
    assert session.claims["SubjectNameID"] == NATIONAL_ID and session.subject == SUB and pending == {}
    token = fake.calls("/x/token")[0]
    form = {k: v[0] for k, v in parse_qs(token.content.decode()).items()}
    assert form == {"grant_type": "authorization_code", "code": "c0de", "code_verifier": login.verifier,
                    "redirect_uri": CALLBACK}
    assert token.headers["authorization"] == "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    assert fake.calls("/x/me")[0].headers["authorization"] == "Bearer at-authorization_code"


@pytest.mark.parametrize(("changes", "reason"), [({"iss": "https://attacker.example"}, "issuer"),
                                                 ({"state": "f" * 64}, "state")])
def test_a_tampered_authorization_response_is_refused_before_redeeming(fake: FakePsc, changes: dict[str, str],
                                                                       reason: str) -> None:
    client = client_for(fake)
    _, pending = begin(client, fake)
    with pytest.raises(PscRefused, match=reason):
        client.complete_login(callback(next(iter(pending.values())), **changes), pending)
    assert fake.calls("/x/token") == []


def test_an_id_token_with_another_nonce_is_refused(fake: FakePsc) -> None:
    client = client_for(fake)
    _, pending = begin(client, fake)
    fake.nonce = "0" * 64
    with pytest.raises(PscRefused, match="nonce"):
        client.complete_login(callback(next(iter(pending.values()))), pending)


def test_jwks_is_cached_and_fetched_again_once_on_rotation(fake: FakePsc) -> None:
    client = client_for(fake)
    for _ in range(2):
        _, pending = begin(client, fake)
        client.complete_login(callback(next(iter(pending.values()))), pending)
    assert len(fake.calls("/x/keys")) == 1
    fake.rotate()
    _, pending = begin(client, fake)
    client.complete_login(callback(next(iter(pending.values()))), pending)
    assert len(fake.calls("/x/keys")) == 2


def test_a_kid_unknown_after_one_refetch_is_refused(fake: FakePsc) -> None:
    client = client_for(fake)
    _, pending = begin(client, fake)
    client.complete_login(callback(next(iter(pending.values()))), pending)
    fake.key = rsa("k9")  # signs with a key PSC does not publish
    _, pending = begin(client, fake)
    with pytest.raises(PscRefused, match="k9"):
        client.complete_login(callback(next(iter(pending.values()))), pending)
    assert len(fake.calls("/x/keys")) == 2


def test_a_failing_call_is_retried_once_then_unavailable(fake: FakePsc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psc_transport, "RETRY_PAUSE", 0.0)
    discovery = "/auth/realms/esante-wallet/.well-known/wallet-openid-configuration"
    fake.failures[discovery] = [503, 503, 503]
    with pytest.raises(PscUnavailable, match="503"):
        client_for(fake).discovery()
    assert len(fake.calls(discovery)) == 2
    fake.failures[discovery] = [502]
    assert client_for(fake).discovery()["issuer"] == ISSUER


def test_retry_storm_defect_calls_eleven_times(fake: FakePsc) -> None:
    fake.failures["/x/keys"] = [500] * 20
    with pytest.raises(PscUnavailable):
        client_for(fake, "psc_retry_storm").keys_for("k1")
    assert len(fake.calls("/x/keys")) == 11


@pytest.mark.parametrize(("lifetime", "left", "refresh"), [(120, 31, False), (120, 29, True), (20, 11, False),
                                                            (20, 9, True), (120, -5, True)])
def test_refresh_when_less_than_a_quarter_or_ten_seconds_is_left(fake: FakePsc, lifetime: float, left: float,
                                                                refresh: bool) -> None:
    session = Session("at", "rt", "idt", SUB, expires_at=time.time() + left, lifetime=lifetime)
    assert client_for(fake).needs_refresh(session) is refresh


def test_refresh_keeps_the_subject_and_the_id_token_hint(fake: FakePsc) -> None:
    client = client_for(fake)
    session = Session("at", "rt", "old-id-token", SUB, expires_at=time.time(), lifetime=120)
    refreshed = client.refresh(session)
    assert refreshed.access_token == "at-refresh_token" and refreshed.id_token != "old-id-token"
    fake.id_token_changes = {"sub": "f:provider:someone-else"}
    with pytest.raises(PscRefused, match="another professional"):
        client.refresh(session)


def test_ciba_polls_at_the_interval_and_slows_down(fake: FakePsc, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(psc_client.time, "sleep", sleeps.append)
    fake.ciba_answers = [{"error": "authorization_pending"}, {"error": "slow_down"},
                         {"error": "authorization_pending"}]
    session = client_for(fake).ciba_login(NATIONAL_ID, "CARD")
    assert session.claims["SubjectNameID"] == NATIONAL_ID
    assert sleeps == [2, 2, 7, 7]
    form = {k: v[0] for k, v in parse_qs(fake.calls("/x/ciba")[0].content.decode()).items()}
    assert form["login_hint"] == NATIONAL_ID and form["channel"] == "CARD" and form["acr_values"] == "eidas1"
    assert re.fullmatch(r"\d{2}", form["binding_message"]) and form["scope"] == "openid scope_all"


def test_ciba_denial_is_an_error_and_polling_stops(fake: FakePsc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psc_client.time, "sleep", lambda _: None)
    fake.ciba_answers = [{"error": "authorization_pending"}, {"error": "access_denied"}]
    with pytest.raises(psc_client.PscError) as raised:
        client_for(fake).ciba_login(NATIONAL_ID, "MOBILE")
    assert raised.value.error == "access_denied" and len(fake.calls("/x/token")) == 2


def test_defects_bend_their_one_rule(fake: FakePsc) -> None:
    plain, _ = begin(client_for(fake, "psc_pkce_plain"), fake)
    assert plain["code_challenge_method"] == "plain"
    static = [begin(client_for(fake, "psc_static_state_nonce"), fake)[0] for _ in range(2)]
    assert static[0]["state"] == static[1]["state"] and static[0]["nonce"] == static[1]["nonce"]
    assert "acr_values" not in begin(client_for(fake, "psc_no_acr_values"), fake)[0]
    hardcoded = FakePsc()
    client_for(hardcoded, "psc_hardcoded_endpoints").begin_login(CALLBACK)
    assert hardcoded.requests == []
