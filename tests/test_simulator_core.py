"""The shared core as seen through the INSi simulator: admin API, journal, fault injection."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from esante.harness.environment import LocalEnvironment
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultInjector, FaultKind, FaultRule
from tests.conftest import RunningSimulator, official_request

FOUND = official_request(birth_name="MOREAU", first_names=["CLAIRE"], sex="F", birth_date="1985-04-12")


def test_admin_requires_the_bearer_token(insi: RunningSimulator) -> None:
    assert insi.http.post(f"{insi.url}/_admin/reset").status_code == 401
    assert insi.http.post(f"{insi.url}/_admin/reset", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert insi.admin("POST", "/reset").status_code == 200
    assert insi.http.get(f"{insi.url}/_admin/health").json()["simulator"] == "insi"


def test_journal_records_every_exchange_with_context(insi: RunningSimulator) -> None:
    insi.admin("PUT", "/context", {"run_id": "run-1", "case_id": "C-1"})
    insi.post_soap(FOUND)
    insi.post_soap(b"not xml at all", content_type="text/plain")
    exchanges = insi.admin("GET", "/journal?run_id=run-1&case_id=C-1").json()["exchanges"]
    assert [e["status"] for e in exchanges] == [200, 500]
    first = exchanges[0]
    assert first["notes"]["operation"] == "rechercherInsAvecTraitsIdentite" and first["notes"]["code_cr"] == "00"
    assert first["request_digest"] and first["response_digest"] and first["duration_ms"] >= 0
    assert exchanges[1]["notes"]["fault"] == "malformed"  # rejected requests are evidence too
    assert insi.store.verify() == []


def test_admin_calls_are_not_journaled_as_exchanges(insi: RunningSimulator) -> None:
    insi.admin("POST", "/reset")
    insi.admin("GET", "/faults")
    assert insi.admin("GET", "/journal").json()["exchanges"] == []
    assert [r.payload["action"] for r in insi.store.records(kind="admin")] == ["reset"]


def test_fault_service_fault_for_next_call_only(insi: RunningSimulator) -> None:
    rules = [{"kind": "service_fault", "fault_code": "unavailable", "count": 1}]
    assert insi.admin("PUT", "/faults", rules).status_code == 200
    faulted = insi.post_soap(FOUND)
    assert faulted.status_code == 500 and b'code="insi_500"' in faulted.content and b"soap:Receiver" in faulted.content
    assert insi.post_soap(FOUND).status_code == 200
    assert insi.admin("GET", "/faults").json() == []


def test_fault_http_error(insi: RunningSimulator) -> None:
    insi.admin("PUT", "/faults", [{"kind": "http_error", "status": 503, "count": 1}])
    response = insi.post_soap(FOUND)
    assert response.status_code == 503 and b"injected" in response.content


def test_fault_latency(insi: RunningSimulator) -> None:
    insi.admin("PUT", "/faults", [{"kind": "latency", "latency_ms": 300, "count": 1}])
    started = time.perf_counter()
    assert insi.post_soap(FOUND).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_a_request_is_journaled_before_it_is_handled(insi: RunningSimulator) -> None:
    """The request is evidence the moment it arrives: were the simulator killed while handling it (here: held by a
    latency fault), the request that did it would still be in the store."""
    insi.admin("PUT", "/faults", [{"kind": "latency", "latency_ms": 3000, "count": 1}])
    with pytest.raises(httpx.TimeoutException):
        insi.http.post(f"{insi.url}/lps", content=FOUND, timeout=0.5,
                       headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    held = insi.store.records(kind="exchange.request")
    assert held, "the request held by the handler is not in the evidence store"
    assert not insi.store.records(kind="exchange.response", since=held[-1].seq)


def test_fault_dropped_connection_is_journaled(insi: RunningSimulator) -> None:
    insi.admin("PUT", "/faults", [{"kind": "drop", "count": 1}])
    with pytest.raises(httpx.TransportError):
        insi.post_soap(FOUND)
    last = insi.admin("GET", "/journal").json()["exchanges"][-1]
    assert last["outcome"] == "dropped" and last["status"] is None
    assert insi.post_soap(FOUND).status_code == 200


def test_unknown_fault_code_is_refused(insi: RunningSimulator) -> None:
    response = insi.admin("PUT", "/faults", [{"kind": "service_fault", "fault_code": "nope"}])
    assert response.status_code == 422 and "known:" in response.text


def test_ratio_rules_are_reproducible_with_a_seed() -> None:
    def fired(seed: int) -> list[bool]:
        injector = FaultInjector(seed)
        injector.set([FaultRule(kind=FaultKind.HTTP_ERROR, ratio=0.3)])
        return [bool(injector.draw("/lps")) for _ in range(200)]

    assert fired(7) == fired(7)
    assert 30 < sum(fired(7)) < 90


def test_after_lets_calls_through_before_a_count_rule_fires() -> None:
    injector = FaultInjector()
    injector.set([FaultRule(kind=FaultKind.HTTP_ERROR, path_prefix="/token", after=1, count=1)])
    fired = [bool(injector.draw(path)) for path in ("/other", "/token", "/token", "/token")]
    assert fired == [False, False, True, False]  # the second /token call only; /other does not count
    injector.set([FaultRule(kind=FaultKind.HTTP_ERROR, path="/token")])
    assert [bool(injector.draw(p)) for p in ("/token/introspect", "/token")] == [False, True]


def test_behaviour_rules_name_a_behaviour_of_the_simulator(insi: RunningSimulator) -> None:
    response = insi.admin("PUT", "/faults", [{"kind": "behaviour", "fault_code": "tamper_state"}])
    assert response.status_code == 422 and "unknown behaviour" in response.text  # INSi has no behaviours
    with pytest.raises(ValueError, match="fault_code"):
        FaultRule(kind=FaultKind.BEHAVIOUR)


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="either count or ratio"):
        FaultRule(kind=FaultKind.DROP, count=1, ratio=0.5)
    with pytest.raises(ValueError, match="fault_code"):
        FaultRule(kind=FaultKind.SERVICE_FAULT)


def test_dataset_can_be_switched_and_refused(insi: RunningSimulator) -> None:
    assert insi.admin("PUT", "/dataset", {"name": "default"}).json()["patients"] >= 25
    assert insi.admin("PUT", "/dataset", {"name": "no-such-set"}).status_code == 422


def test_peers_say_where_the_other_simulators_are_and_tokens_are_not_evidence(insi: RunningSimulator) -> None:
    peers = {"psc": {"url": "https://127.0.0.1:9", "admin_token": "secret-peer-token", "ca_pem": None}}
    assert insi.admin("PUT", "/peers", peers).json() == {"psc": "https://127.0.0.1:9"}
    record = [r.payload for r in insi.store.records(kind="admin") if r.payload["action"] == "peers"][-1]
    assert record["peers"] == {"psc": "https://127.0.0.1:9"} and "secret-peer-token" not in str(record)
    assert insi.admin("PUT", "/peers", {"psc": {"address": "x"}}).status_code == 422


def test_a_local_environment_introduces_its_simulators_to_each_other(tmp_path: Path) -> None:
    with LocalEnvironment(["insi", "psc"], store=EvidenceStore(tmp_path / "e.sqlite"), pki_dir=tmp_path / "pki",
                          tls=False) as env:
        peers = [r.payload["peers"] for r in env.store.records(kind="admin") if r.payload["action"] == "peers"]
        urls = env.endpoints
        assert sorted(peers, key=str) == sorted([{"psc": urls["psc"]}, {"insi": urls["insi"]}], key=str)
