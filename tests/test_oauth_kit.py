"""The OAuth 2 authorization-server kit on its own: code redemption in each server's words (replay, expiry,
redirect_uri, PKCE), PKCE S256, loopback redirect URIs (IPv6 too), at_hash, the form_post response, forgetting
what expired within bounded tables, RFC 7009 revocation, grant_type errors, and routes that answer the errors
they know."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from esante.simulators.core.notes import NOTES_KEY
from esante.simulators.kits.oauth import server
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.notes import OAuthNotes
from esante.simulators.kits.oauth.oidc import token_hash
from esante.simulators.kits.oauth.pkce import pkce_matches, s256
from esante.simulators.kits.oauth.redirects import redirect, uri_registered
from esante.simulators.kits.oauth.requests import grant_type_of
from esante.simulators.kits.oauth.routes import router_of
from esante.simulators.kits.oauth.server import (
    AuthorizationCode,
    AuthorizationState,
    CodeWording,
    IssuedToken,
    PendingAuthorization,
)

VERIFIER = "v" * 43
STRICT = CodeWording(unknown="unknown", reused="reused", expired="expired", redirect_uri="redirect",
                     verifier_missing="missing", verifier_unexpected="unexpected", verifier_failed="failed")
REPLAY_ON_EXPIRY = replace(STRICT, expired=None)


def _state_with_code(*, challenge: str | None = s256(VERIFIER), lifetime: float = 60) -> tuple[AuthorizationState,
                                                                                                AuthorizationCode]:
    state = AuthorizationState()
    pending = state.hold(PendingAuthorization(id="t1", client_id="app", redirect_uri="https://app/cb", state="s",
                                              scope="openid", code_challenge=challenge,
                                              code_challenge_method="S256" if challenge else None))
    return state, state.issue_code(pending, "grant-1", lifetime)


def _form(code: AuthorizationCode, **extra: str) -> dict[str, str]:
    return {"code": code.value, "redirect_uri": "https://app/cb", "code_verifier": VERIFIER, **extra}


def test_a_code_is_redeemed_once_and_its_replay_revokes_what_it_gave() -> None:
    state, code = _state_with_code()
    replayed: list[str] = []
    assert state.redeem(_form(code), "app", STRICT, lambda c: replayed.append(c.grant_id)) is code
    with pytest.raises(OAuthError, match="reused"):
        state.redeem(_form(code), "app", STRICT, lambda c: replayed.append(c.grant_id))
    assert replayed == ["grant-1"]


@pytest.mark.parametrize(("form", "client", "wording"), [
    ({"redirect_uri": "https://other/cb"}, "app", "redirect"),
    ({"code_verifier": "w" * 43}, "app", "failed"),
    ({}, "another-app", "unknown"),
])
def test_a_code_is_refused_in_the_servers_words(form: dict[str, str], client: str, wording: str) -> None:
    state, code = _state_with_code()
    with pytest.raises(OAuthError) as refused:
        state.redeem(_form(code, **form), client, STRICT, lambda c: None)
    assert (refused.value.error, refused.value.description) == ("invalid_grant", wording)


def test_pkce_is_checked_only_when_the_request_had_a_challenge() -> None:
    state, code = _state_with_code(challenge=None)
    with pytest.raises(OAuthError, match="unexpected"):
        state.redeem(_form(code), "app", STRICT, lambda c: None)
    state, code = _state_with_code()
    form = _form(code)
    del form["code_verifier"]
    with pytest.raises(OAuthError, match="missing"):
        state.redeem(form, "app", STRICT, lambda c: None)


def test_an_expired_code_is_refused_or_taken_for_a_replay_as_the_server_says() -> None:
    state, code = _state_with_code(lifetime=-1)
    with pytest.raises(OAuthError, match=r"^invalid_grant: expired$"):
        state.redeem(_form(code), "app", STRICT, lambda c: None)
    state, code = _state_with_code(lifetime=-1)
    replayed: list[str] = []
    with pytest.raises(OAuthError, match="reused"):
        state.redeem(_form(code), "app", REPLAY_ON_EXPIRY, lambda c: replayed.append(c.grant_id))
    assert replayed == ["grant-1"]


def test_a_pending_authorization_is_taken_once_and_not_after_the_login_timeout() -> None:
    state, _ = _state_with_code()
    assert state.take("t1") is not None and state.take("t1") is None
    old = state.hold(PendingAuthorization(id="t2", client_id="app", redirect_uri="https://app/cb", state=None,
                                          scope="openid", code_challenge=None, code_challenge_method=None,
                                          created=time.time() - 31 * 60))
    assert state.take(old.id) is None


def test_pkce_s256_is_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce_matches("S256", s256(verifier), verifier) and not pkce_matches("S256", s256(verifier), "short")


def test_a_loopback_redirect_uri_matches_on_any_port_and_nothing_else_does() -> None:
    registered = ["http://127.0.0.1/cb", "https://app.example/cb"]
    assert uri_registered("http://127.0.0.1:53124/cb", registered)
    assert not uri_registered("https://app.example:8443/cb", registered)
    assert not uri_registered("http://127.0.0.1:53124/cb?x=1", registered)


def test_a_route_notes_its_operation_and_answers_the_errors_it_knows() -> None:
    async def refuse(request: object) -> None:
        raise OAuthError("invalid_client", "no client authentication", 401)

    noted: list[OAuthNotes] = []
    app = FastAPI()
    app.include_router(router_of([("/token", ["POST"], "token", refuse)], OAuthNotes))

    @app.middleware("http")
    async def keep_notes(request, call_next):  # type: ignore[no-untyped-def]  # what the journal does
        response = await call_next(request)
        noted.append(request.scope["state"][NOTES_KEY])
        return response

    answer = TestClient(app).post("/token")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic ") and answer.headers["cache-control"] == "no-store"
    assert noted[0].to_json() == {"operation": "token", "error": "invalid_client",
                                  "error_description": "no client authentication"}


def test_an_ipv6_loopback_redirect_uri_matches_on_any_port() -> None:
    assert uri_registered("http://[::1]:53124/cb", ["http://[::1]/cb"])
    assert not uri_registered("http://[::1]:53124/cb", ["http://[::2]/cb", "http://::1/cb"])


def test_at_hash_is_openid_connect_core_s_example() -> None:  # OpenID Connect Core, appendix A.4
    assert token_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"


def test_a_form_post_response_escapes_what_it_posts() -> None:
    page = redirect('https://app/cb?x="1"', {"state": '"><script>', "code": "c"}, "form_post").body.decode()
    assert "<script>" not in page and "&quot;&gt;&lt;script&gt;" in page
    assert 'action="https://app/cb?x=&quot;1&quot;"' in page


def test_what_expired_is_forgotten_and_no_table_outgrows_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    state, code = _state_with_code(lifetime=-(server.EXPIRED_KEPT + 1))
    assert code.value in state.codes
    state.purge(time.time())
    assert code.value not in state.codes and "t1" in state.pending  # the pending request is still young
    monkeypatch.setattr(server, "MAX_ENTRIES", 3)
    for i in range(10):
        state.keep(IssuedToken(id=f"tok{i}", kind="access", client_id="app", grant_id="g", scope="openid",
                               expires=time.time() + 60))
    assert list(state.tokens) == ["tok7", "tok8", "tok9"]  # the oldest forgotten first


def test_revoking_a_refresh_token_revokes_its_client_s_tokens_of_the_grant() -> None:
    state = AuthorizationState()
    tokens = [IssuedToken(id=name, kind=kind, client_id=client, grant_id=grant, scope="", expires=time.time() + 60)
              for name, kind, client, grant in [("a1", "access", "app", "g"), ("r1", "refresh", "app", "g"),
                                                ("a2", "access", "other", "g"), ("a3", "access", "app", "h")]]
    state.keep(*tokens)
    state.revoke_token(tokens[0])
    assert [t.active for t in tokens] == [False, True, True, True]  # an access token goes alone
    state.revoke_token(tokens[1])
    assert [t.active for t in tokens] == [False, False, True, True]


@pytest.mark.parametrize(("form", "error"), [
    ({}, "invalid_request"), ({"grant_type": "password"}, "unauthorized_client"),
    ({"grant_type": "urn:x"}, "unsupported_grant_type")])
def test_a_grant_type_is_refused_as_rfc_6749_says(form: dict[str, str], error: str) -> None:
    with pytest.raises(OAuthError) as refused:
        grant_type_of(form, ["authorization_code"], {"authorization_code": "no", "password": "not you"})
    assert refused.value.error == error
