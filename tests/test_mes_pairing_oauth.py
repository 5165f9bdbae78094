"""Mon espace santé's pairing server gets what the OAuth kit now does for every server: RFC 6749's error forms
(a missing response_type or grant_type is invalid_request, an unknown grant unsupported_grant_type) and RFC
7009's revocation (a revoked refresh token takes the pairing's access tokens along)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests import test_mes_simulator
from tests.test_mes_simulator import CLIENT, REDIRECT, SECRET, Mes, api, authorize, pair, ref, token

server, mes = test_mes_simulator.server, test_mes_simulator.mes  # the MES tests' fixtures


def test_a_missing_response_type_is_invalid_request(mes: Mes) -> None:
    answer, _, state = authorize(mes, response_type=None)
    assert answer.status_code == 302 and answer.headers["location"].startswith(REDIRECT)
    back = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
    assert back["error"] == "invalid_request" and back["state"] == state


def test_grant_type_errors_are_rfc_6749_s(mes: Mes) -> None:
    assert token(mes).json()["error"] == "invalid_request"
    assert token(mes, grant_type="urn:example:magic").json()["error"] == "unsupported_grant_type"


def test_revoking_the_refresh_token_ends_the_pairing_s_access_tokens(mes: Mes) -> None:
    tokens = pair(mes)
    assert api(mes, tokens, "GET", f"/Observation?patient={ref(tokens)}").status_code == 200
    revoked = mes.http.post(f"{mes.url}/oauth/revoke", data={"token": tokens["refresh_token"]},
                            auth=(CLIENT, SECRET))
    assert revoked.status_code == 200
    assert api(mes, tokens, "GET", f"/Observation?patient={ref(tokens)}").status_code == 401
