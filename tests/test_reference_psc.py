"""The reference candidate's PSC side outside a campaign: configuration and the browser's arrivals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from esante.harness.driver import API_PREFIX
from esante.harness.environment import LocalEnvironment
from esante.harness.reference import create_reference_app
from esante.simulators.core.evidence import EvidenceStore


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    tmp = tmp_path_factory.mktemp("refpsc")
    with LocalEnvironment(["psc"], store=EvidenceStore(tmp / "e.sqlite"), pki_dir=tmp / "pki") as env:
        yield env


def test_psc_actions_need_a_psc_endpoint(tmp_path: Path) -> None:
    client = TestClient(create_reference_app(pki_dir=tmp_path))
    assert client.post(f"{API_PREFIX}/reset", json={"endpoints": {}}).status_code == 204
    assert client.post(f"{API_PREFIX}/actions/psc.login", json={"params": {}}).status_code == 409
    assert client.post(f"{API_PREFIX}/callback", json={"url": "http://127.0.0.1/psc/callback"}).status_code == 409


def test_login_redirects_to_the_discovered_authorize_endpoint(env: LocalEnvironment) -> None:
    client = TestClient(create_reference_app(pki_dir=env.pki_dir), base_url="http://127.0.0.1:8700")
    assert client.post(f"{API_PREFIX}/reset", json={"endpoints": env.endpoints}).status_code == 204
    report = client.post(f"{API_PREFIX}/actions/psc.login", json={"params": {}}).json()
    assert report["outcome"] == "redirect"
    url = urlsplit(report["redirect_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}" == env.endpoints["psc"] and url.path == "/wallet/auth"
    assert query["redirect_uri"] == "http://127.0.0.1:8700/psc/callback"
    assert query["code_challenge_method"] == "S256" and query["acr_values"] == "eidas1"
    assert len(query["nonce"]) == 64 and query["state"]


def test_a_callback_matching_no_sign_in_is_refused_without_redeeming(env: LocalEnvironment) -> None:
    client = TestClient(create_reference_app(pki_dir=env.pki_dir))
    client.post(f"{API_PREFIX}/reset", json={"endpoints": env.endpoints})
    issuer = env.endpoints["psc"] + "/auth/realms/esante-wallet"
    url = f"http://127.0.0.1/psc/callback?{httpx.QueryParams({'code': 'x', 'state': 'forged', 'iss': issuer})}"
    report = client.post(f"{API_PREFIX}/callback", json={"url": url}).json()
    assert report["outcome"] == "refused" and "state" in report["message"]
    unknown = client.post(f"{API_PREFIX}/callback", json={"url": "http://127.0.0.1/elsewhere"}).json()
    assert unknown["outcome"] == "error" and "/elsewhere" in unknown["message"]
