"""Simulators that journal into their own store: their evidence imported into the run's, checked, with provenance.

The "remote" simulator here is served from a thread of this process but has its own evidence store and is
reached only over HTTP, as a container would be; the container tests run the same code against real ones.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from esante.harness.remote import RemoteConfig, RemoteEnvironment, RemoteEvidenceError, RemoteSimulatorClient
from esante.harness.session import RunRequest, play
from esante.reports import verify_bundle
from esante.simulators.core.app import create_app
from esante.simulators.core.evidence.remote import PROVENANCE, Cursor, export_page, page_problems, verify_imported
from esante.simulators.core.evidence.store import EvidenceStore, canonical_json, chain_next, record_digest
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.insi import InsiSimulator

TOKEN = "remote-admin-token"


@dataclass
class Remote:
    url: str
    store: EvidenceStore
    pki_dir: Path


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    """An INSi simulator over HTTPS with its own evidence store, as a container would run it."""
    pki = tmp_path / "pki"
    store = EvidenceStore(tmp_path / "remote" / "insi.sqlite")
    settings = SimulatorSettings(admin_token=TOKEN, evidence_path=store.path)
    app = create_app(InsiSimulator(load_dataset()), settings, store)
    with ServerHandle(app, tls=TlsSettings(pki_dir=pki)) as server:
        yield Remote(server.url, store, pki)


def _client(remote: Remote, run_store: EvidenceStore) -> RemoteSimulatorClient:
    return RemoteSimulatorClient("insi", remote.url, TOKEN, store=run_store,
                                 ca_pem=(remote.pki_dir / "ca.crt.pem").read_bytes())


def _verify(remote: Remote) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=remote.pki_dir / "ca.crt.pem")


def _lookup(remote: Remote, body: bytes = b"<not-soap/>") -> None:
    httpx.post(f"{remote.url}/lps", content=body, verify=_verify(remote),
               headers={"Content-Type": "application/soap+xml"})


def _tamper(store_path: Path, sql: str, *args: object) -> None:
    """What an intruder with the file could do: drop the append-only triggers, then change the evidence."""
    db = sqlite3.connect(store_path)
    for trigger in ("records_no_update", "records_no_delete", "blobs_no_update", "blobs_no_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_import_keeps_every_record_with_its_provenance(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    client.set_context("run-1", "CASE-1")
    client.reset()
    _lookup(remote, b"<first/>")
    _lookup(remote, b"<second/>")
    exchanges = client.journal("run-1", "CASE-1")
    client.close()
    assert [e.request_body for e in exchanges] == [b"<first/>", b"<second/>"]
    remote_rows = remote.store.raw_records()
    imported = [r for r in run_store.raw_records() if PROVENANCE in json.loads(r["payload"])]
    assert [json.loads(r["payload"])[PROVENANCE]["seq"] for r in imported] == [r["seq"] for r in remote_rows]
    assert [json.loads(r["payload"])[PROVENANCE]["digest"] for r in imported] == [r["digest"] for r in remote_rows]
    # the exchanges the runner judges point at the run's own records, and carry the simulator's timestamps
    request = next(r for r in imported if r["kind"] == "exchange.request" and r["ref"] == exchanges[0].id)
    assert (exchanges[0].request_seq, exchanges[0].request_digest) == (request["seq"], request["digest"])
    assert exchanges[0].received_at == json.loads(request["payload"])[PROVENANCE]["recorded_at"]
    assert run_store.blob(exchanges[1].response_digest and json.loads(
        next(r for r in imported if r["kind"] == "exchange.response" and r["ref"] == exchanges[1].id)["payload"]
    )["body_sha256"]) == exchanges[1].response_body
    assert run_store.verify() == [] and verify_imported(run_store.raw_records()) == []


def test_records_from_before_the_attach_are_not_imported(remote: Remote, tmp_path: Path) -> None:
    _lookup(remote, b"<earlier-session/>")
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    assert client.sync() == 0
    _lookup(remote, b"<this-run/>")
    assert client.sync() == 2  # request and response
    assert verify_imported(run_store.raw_records()) == []


def test_a_record_altered_at_the_source_is_refused_and_the_refusal_recorded(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    _lookup(remote)
    seq = remote.store.last_seq()
    _tamper(remote.store.path, "UPDATE records SET payload = replace(payload, '\"status\":', '\"status\": ') "
                               "WHERE seq = ?", seq)
    with pytest.raises(RemoteEvidenceError, match=f"remote record {seq}: content does not match its digest"):
        client.sync()
    rejected = run_store.records(kind="remote.rejected")
    assert len(rejected) == 1 and rejected[0].payload["simulator"] == "insi"
    assert not run_store.records(kind="exchange.request"), "nothing of a refused page is imported"


def test_a_record_removed_at_the_source_breaks_the_link(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    _lookup(remote)
    _lookup(remote)
    first_response = remote.store.records(kind="exchange.response")[0].seq
    _tamper(remote.store.path, "DELETE FROM records WHERE seq = ?", first_response)
    with pytest.raises(RemoteEvidenceError, match=r"expected record|does not link"):
        client.sync()


def test_a_body_altered_at_the_source_is_refused(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    _lookup(remote, b"<original/>")
    _tamper(remote.store.path, "UPDATE blobs SET data = ? WHERE data = ?", b"<forged!!/>", b"<original/>")
    with pytest.raises(RemoteEvidenceError, match="content does not match its digest"):
        client.sync()


def _forge(rows: list[dict], seq: int, change: dict) -> list[dict]:
    """Rewrite one imported record *and* re-digest and re-chain the run's store after it: a consistent forgery
    of the run's own chain, which only the remote provenance still exposes."""
    out, previous = [], None
    for row in rows:
        row = dict(row)
        if row["seq"] == seq:
            payload = json.loads(row["payload"])
            payload.update(change)
            row["payload"] = canonical_json(payload)
        if previous is not None or row["seq"] == seq:
            row["digest"] = record_digest(row["kind"], row["run_id"], row["case_id"], row["ref"], row["recorded_at"],
                                          row["payload"])
            row["chain"] = chain_next(previous or next(r for r in rows if r["seq"] == seq - 1)["chain"], row["digest"])
        previous = row["chain"] if (previous is not None or row["seq"] == seq) else None
        out.append(row)
    return out


def test_offline_check_exposes_an_imported_record_forged_in_the_run_store(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    _lookup(remote)
    client.sync()
    rows = run_store.raw_records()
    response = next(r for r in rows if r["kind"] == "exchange.response")
    forged = _forge(rows, response["seq"], {"status": 200})
    from esante.simulators.core.evidence import verify_records

    assert verify_records(forged) == [], "the forgery is consistent with the run's own chain"
    problems = verify_imported(forged)
    assert problems and all(f"record {response['seq']}" in p for p in problems)
    assert any("content does not match its digest" in p for p in problems)


def test_offline_check_exposes_a_dropped_imported_record(remote: Remote, tmp_path: Path) -> None:
    run_store = EvidenceStore(tmp_path / "run.sqlite")
    client = _client(remote, run_store)
    client.attach()
    _lookup(remote)
    client.sync()
    rows = run_store.raw_records()
    request = next(r for r in rows if r["kind"] == "exchange.request")
    kept = [r for r in rows if r["seq"] != request["seq"]]
    assert any("records removed or reordered" in p for p in verify_imported(kept))


def test_a_shared_store_exports_each_simulator_its_own_records(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "shared.sqlite")
    for name in ("insi", "psc", "insi"):
        store.append("admin", {"simulator": name, "action": "reset"})
    page = export_page(store, "insi", 0)
    assert [r["seq"] for r in page["records"]] == [1, 3]
    assert page["next_since"] == 3 and page["head"] == 3
    assert page["records"][1]["skipped"] == [store.raw_records()[1]["digest"]]
    records, _, problems = page_problems(page, "insi", Cursor(0, store.chain_at(0)))
    assert problems == [] and len(records) == 2
    _, _, problems = page_problems(page, "psc", Cursor(0, store.chain_at(0)))
    assert problems == ["not an evidence page of psc"]


def test_pages_are_bounded_and_malformed_pages_refused(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "s.sqlite")
    for n in range(7):
        store.append("admin", {"simulator": "insi", "n": n})
    assert len(export_page(store, "insi", 0, limit=3)["records"]) == 3
    assert len(export_page(store, "insi", 0, limit=10**9)["records"]) == 7
    page = export_page(store, "insi", 0)
    page["records"][0]["seq"] = "1"
    assert page_problems(page, "insi", Cursor(0, ""))[2][0].startswith("malformed evidence page")
    page = export_page(store, "insi", 0)
    page["records"].reverse()
    problems = page_problems(page, "insi", Cursor(0, store.chain_at(0)))[2]
    assert any("records removed or reordered" in p for p in problems)


def test_admin_records_route_needs_the_token(remote: Remote) -> None:
    answer = httpx.get(f"{remote.url}/_admin/records", verify=_verify(remote))
    assert answer.status_code == 401


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "simulators.yaml"
    path.write_text("simulators:\n  insi: https://127.0.0.1:8001\n"
                    "  psc: {url: 'https://127.0.0.1:8002', candidate_url: 'https://psc:8002'}\nca: pki/ca.crt.pem\n")
    config = RemoteConfig.load(path)
    assert str(config.simulators["psc"].candidate_url) == "https://psc:8002/"
    assert config.ca == tmp_path / "pki" / "ca.crt.pem"
    monkeypatch.delenv("ESANTE_ADMIN_TOKEN", raising=False)
    with pytest.raises(ValueError, match="set ESANTE_ADMIN_TOKEN"):
        config.admin_token()
    path.write_text("simulators:\n  insi: https://127.0.0.1:8001\nadmin_token: secret\n")
    with pytest.raises(ValueError, match="admin_token"):
        RemoteConfig.load(path)
    path.write_text("simulators:\n  insi: https://127.0.0.1:8001\n" + "#" * 70_000)
    with pytest.raises(ValueError, match="larger than"):
        RemoteConfig.load(path)


def test_environment_refuses_missing_or_wrong_simulators(remote: Remote, tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "run.sqlite")
    ca = (remote.pki_dir / "ca.crt.pem").read_bytes()
    with pytest.raises(ValueError, match="no URL configured: psc"):
        RemoteEnvironment(["insi", "psc"], store=store, urls={"insi": remote.url}, admin_token=TOKEN, ca_pem=ca)
    with pytest.raises(ValueError, match="serves 'insi', not the psc simulator"):
        RemoteEnvironment(["psc"], store=store, urls={"psc": remote.url}, admin_token=TOKEN, ca_pem=ca)
    with pytest.raises(ValueError, match="does not answer its admin API"):
        RemoteEnvironment(["insi"], store=store, urls={"insi": remote.url}, admin_token="wrong", ca_pem=ca)


def _verdicts(out: Path) -> dict[str, str]:
    report = json.loads((out / "report.json").read_text())
    return {case["id"]: case["verdict"] for case in report["cases"]}


def test_insi_campaign_through_a_remote_simulator_gives_the_local_verdicts(
        remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_ADMIN_TOKEN", TOKEN)
    config = tmp_path / "simulators.yaml"
    config.write_text(f"simulators:\n  insi: {remote.url}\n")
    key = tmp_path / "signing.pem"
    for defects in ((), ("wrong_oid",)):
        local = play(RunRequest("insi", out_dir=tmp_path / "local", pki_dir=remote.pki_dir, defects=defects,
                                signing_key=key))
        distant = play(RunRequest("insi", out_dir=tmp_path / "remote", pki_dir=remote.pki_dir, defects=defects,
                                  signing_key=key, simulators=str(config)))
        assert _verdicts(distant.out_dir) == _verdicts(local.out_dir)
        assert verify_bundle(distant.reports.bundle).ok
        with zipfile.ZipFile(distant.reports.bundle) as bundle:
            rows = [json.loads(line) for line in bundle.read("evidence/records.jsonl").splitlines() if line]
        assert verify_imported(rows) == []
        assert sum(r["kind"] == "exchange.request" for r in rows) == sum(
            len(c.exchanges) for c in distant.result.cases)
        for path in (tmp_path / "local", tmp_path / "remote"):
            for child in path.iterdir():
                child.unlink()
