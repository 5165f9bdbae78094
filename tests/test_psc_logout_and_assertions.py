"""Back-channel logout reaches the relying parties of an ended session; a client assertion cannot be replayed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.responses import Response

from esante.harness.lab import Lab
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import load_exchanges
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.psc.protocol import JWKS_PATH, LOGOUT_PATH
from tests.conftest import RunningPsc
from tests.test_psc_simulator import (
    authorize_params,
    client_assertion,
    code_flow,
    jwt_auth,
    oauth_error,
    redeem,
    sign_in,
)

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A relying party's back-channel logout endpoint, recording the logout tokens it receives."""
    received: list[str] = []
    app = FastAPI()

    @app.post("/backchannel-logout")
    async def logout(request: Request) -> Response:
        received.append(dict(parse_qsl((await request.body()).decode()))["logout_token"])
        return Response(status_code=200)

    with ServerHandle(app) as server:
        yield f"{server.url}/backchannel-logout", received


def _sign_in_and_out(tmp_path: Path, backchannel_uri: str) -> tuple[dict[str, Any], KeySet, EvidenceStore]:
    """Sign in with the reference client registered for back-channel logout at ``backchannel_uri``, then end
    the session at PSC; returns the tokens, PSC's keys and the store holding the journal."""
    data = load_dataset().model_dump(mode="json")
    data["oidc_clients"][0]["backchannel_logout_uri"] = backchannel_uri
    with Lab(["psc"], workdir=tmp_path, tls=False) as lab:
        assert lab.admin("psc", "PUT", "/dataset", {"data": data}).status_code == 200
        # the shared flow helpers need only the URL and an HTTP client (plain HTTP here)
        psc = RunningPsc(lab, None, None, None, lab.client)  # type: ignore[arg-type]
        tokens = code_flow(psc)
        answer = lab.client.get(psc.url + LOGOUT_PATH, params={"id_token_hint": tokens["id_token"]})
        assert answer.status_code == 200
        keys = KeySet.import_key_set(lab.client.get(psc.url + JWKS_PATH).json())
    # the lab closed its store on the way out: the file alone holds the journal
    return tokens, keys, EvidenceStore(tmp_path / "evidence.sqlite")


def test_ending_a_session_posts_a_signed_logout_token_to_its_clients(tmp_path: Path,
                                                                     receiver: tuple[str, list[str]]) -> None:
    uri, received = receiver
    tokens, keys, store = _sign_in_and_out(tmp_path, uri)
    assert len(received) == 1
    token = jwt.decode(received[0], keys, algorithms=["RS256"])
    id_claims = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"]).claims
    assert token.header["typ"] == "logout+jwt"
    assert token.claims["aud"] == "esante-reference-rp" and EVENT in token.claims["events"]
    assert token.claims["sid"] == id_claims["sid"] and token.claims["sub"] == id_claims["sub"]
    assert "nonce" not in token.claims  # OIDC Back-Channel Logout §2.4: a logout token never has one
    logout = [e for e in load_exchanges(store) if e.path == LOGOUT_PATH][-1]
    assert logout.notes["backchannel_logout"] == [{"client_id": "esante-reference-rp", "uri": uri, "status": 200}]


def test_an_unreachable_back_channel_is_recorded_not_fatal(tmp_path: Path) -> None:
    _, _, store = _sign_in_and_out(tmp_path, "http://127.0.0.1:9/backchannel-logout")
    logout = [e for e in load_exchanges(store) if e.path == LOGOUT_PATH][-1]
    assert "error" in logout.notes["backchannel_logout"][0]


def test_a_client_assertion_is_single_use(psc: RunningPsc) -> None:
    assert psc.admin("POST", "/reset").status_code == 200
    assertion = client_assertion(psc)
    first = authorize_params("esante-jwt-rp")
    answer = redeem(psc, first, sign_in(psc, first), auth=None, extra=jwt_auth(assertion))
    assert answer.status_code == 200, answer.text
    second = authorize_params("esante-jwt-rp")
    replayed = redeem(psc, second, sign_in(psc, second), auth=None, extra=jwt_auth(assertion))
    oauth_error(replayed, 401, "invalid_client")
    assert "jti" in replayed.json()["error_description"]


def test_a_client_assertion_must_name_the_client_it_authenticates(psc: RunningPsc) -> None:
    assert psc.admin("POST", "/reset").status_code == 200
    params = authorize_params("esante-jwt-rp")
    extra = jwt_auth(client_assertion(psc)) | {"client_id": "esante-reference-rp"}
    oauth_error(redeem(psc, params, sign_in(psc, params), auth=None, extra=extra), 401, "invalid_client")
