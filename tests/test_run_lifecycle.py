"""A run's life from the outside: evidence that is whole on disk, runs that select nothing or would overwrite
another, and runs stopped by SIGINT, SIGTERM or SIGKILL that still end in reports and a verifiable bundle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from esante.harness.cli import app
from esante.reports import verify_bundle
from esante.simulators.core.evidence import verify_records
from esante.simulators.core.server import free_port

ESANTE = [sys.executable, "-m", "esante.harness.cli"]
RUN_FILES = ("report.json", "junit.xml", "report.html", "evidence-bundle.zip", "report.pdf")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"ESANTE_PKI_DIR": str(tmp_path / "pki"), "ESANTE_SIGNING_KEY": str(tmp_path / "k.pem")}


def _alone(store: Path, tmp_path: Path) -> list[dict[str, object]]:
    """Every record of a copy of ``store`` made without anything beside it (no -wal, no -shm), chain checked."""
    copy = tmp_path / "copied-alone" / "evidence.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(store, copy)
    db = sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)
    try:
        columns = ("seq", "kind", "run_id", "case_id", "ref", "recorded_at", "payload", "digest", "chain")
        rows = [dict(zip(columns, row, strict=True))
                for row in db.execute(f"SELECT {', '.join(columns)} FROM records ORDER BY seq")]
        for (digest,) in db.execute("SELECT digest FROM blobs"):
            assert len(digest) == 64
    finally:
        db.close()
    assert verify_records(rows) == []
    return rows


# -- evidence complete on disk ---------------------------------------------------------------------------------

def test_a_finished_run_leaves_one_self_contained_evidence_file(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", "insi", "--out", str(out), "--case", "INSI-01"], env=env)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("evidence.sqlite")) == ["evidence.sqlite"]
    rows = _alone(out / "evidence.sqlite", tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert rows[-1]["chain"] == report["evidence_chain_head"] and len(rows) == report["evidence_records"]
    kinds = {r["kind"] for r in rows}
    assert {"run.start", "case.verdict", "exchange.request", "exchange.response", "run.end"} <= kinds


def test_esante_sim_stopped_by_sigterm_leaves_one_self_contained_evidence_file(tmp_path: Path,
                                                                              env: dict[str, str]) -> None:
    port, evidence = free_port(), tmp_path / "sim" / "evidence.sqlite"
    command = [*ESANTE, "sim", "insi", "--port", str(port), "--evidence", str(evidence)]
    with subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as sim:
        try:
            answer = _first_answer(f"http://127.0.0.1:{port}/lps", sim)
            assert answer.status_code >= 400  # not SOAP: the service's own fault, journaled
        finally:
            sim.send_signal(signal.SIGTERM)
            assert sim.wait(timeout=30) in (0, -signal.SIGTERM), sim.stdout.read() if sim.stdout else ""
    assert not evidence.with_name("evidence.sqlite-wal").exists()
    kinds = [r["kind"] for r in _alone(evidence, tmp_path)]
    assert kinds.count("exchange.request") == kinds.count("exchange.response") >= 1


def _first_answer(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.post(url, content=b"not soap", headers={"Content-Type": "application/soap+xml"}, timeout=5)
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- runs that select nothing, or another run's folder ---------------------------------------------------------

def test_an_unknown_case_id_is_an_error_naming_the_known_ones(tmp_path: Path, env: dict[str, str]) -> None:
    typo = CliRunner().invoke(app, ["run", "insi", "--case", "INSI-99", "--out", str(tmp_path / "x")], env=env)
    assert typo.exit_code == 4, typo.output
    assert "INSI-99" in typo.output and "INSI-01" in typo.output and "INSI-17" in typo.output
    assert not (tmp_path / "x").exists()


def test_a_run_that_cannot_start_leaves_no_folder(tmp_path: Path, env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(app, ["run", "insi", "--candidate", f"http://127.0.0.1:{free_port()}/esante/v1"],
                                 env=env)
    assert refused.exit_code == 4, refused.output
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_an_output_folder_holding_a_run_is_refused_unless_forced(tmp_path: Path, env: dict[str, str]) -> None:
    out, runner = tmp_path / "run", CliRunner()
    first = runner.invoke(app, ["run", "insi", "--out", str(out), "--case", "INSI-01"], env=env)
    assert first.exit_code == 0, first.output
    first_id = json.loads((out / "report.json").read_text())["run_id"]
    again = runner.invoke(app, ["run", "insi", "--out", str(out), "--case", "INSI-02"], env=env)
    assert again.exit_code == 4 and "already holds a run" in again.output and "--force" in again.output
    assert json.loads((out / "report.json").read_text())["run_id"] == first_id
    forced = runner.invoke(app, ["run", "insi", "--out", str(out), "--case", "INSI-02", "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    second_id = json.loads((out / "report.json").read_text())["run_id"]
    with zipfile.ZipFile(out / "evidence-bundle.zip") as bundle:
        records = [json.loads(line) for line in bundle.read("evidence/records.jsonl").splitlines()]
    assert second_id != first_id and {r["run_id"] for r in records} == {second_id}
    assert verify_bundle(out / "evidence-bundle.zip").ok


# -- interrupted runs ------------------------------------------------------------------------------------------

def _start_campaign(out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The INSi campaign against the reference candidate, in a process of its own, once its first case is judged."""
    process = subprocess.Popen([*ESANTE, "run", "insi", "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "INSI-01" in first, first + process.stdout.read()
    return process


def _verified(out: Path, cause: str) -> dict[str, object]:
    """The run's reports are all there, its bundle intact and saying the run is incomplete; its JSON report."""
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    outcome = verify_bundle(out / "evidence-bundle.zip")
    assert outcome.ok, outcome.problems
    assert any("INCOMPLETE RUN" in note for note in outcome.notes), outcome.notes
    with zipfile.ZipFile(out / "evidence-bundle.zip") as bundle:
        assert "INCOMPLETE RUN" in json.loads(bundle.read("manifest.json"))["interrupted"]
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] == cause
    verdicts = [(c["verdict"], c["reason"]) for c in report["cases"]]
    assert verdicts[0][0] == "passed"
    assert any(v == "skipped" and r.startswith("not run") for v, r in verdicts)
    assert all(v in ("passed", "skipped") or r.startswith("interrupted") for v, r in verdicts)
    assert "INCOMPLETE RUN" in (out / "report.html").read_text()
    return report


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_run_stopped_by_a_signal_writes_its_reports_and_a_bundle_saying_so(tmp_path: Path, env: dict[str, str],
                                                                             sent: signal.Signals, code: int) -> None:
    out = tmp_path / "run"
    with _start_campaign(out, env) as process:
        process.send_signal(sent)
        output = process.communicate(timeout=120)[0]
    assert process.returncode == code, output
    assert f"INCOMPLETE RUN: interrupted by {sent.name}" in output
    _verified(out, sent.name)
    assert not out.joinpath("evidence.sqlite-wal").exists()
    checked = CliRunner().invoke(app, ["verify", str(out / "evidence-bundle.zip")])
    assert checked.exit_code == 0 and "INCOMPLETE RUN" in checked.output


@pytest.mark.slow
def test_after_sigkill_esante_report_rebuilds_the_reports_and_the_bundle_from_the_evidence(tmp_path: Path,
                                                                                          env: dict[str, str]) -> None:
    out = tmp_path / "run"
    with _start_campaign(out, env) as process:
        process.kill()
        process.wait(timeout=30)
    assert not (out / "report.json").exists()
    rebuilt = CliRunner().invoke(app, ["report", str(out)], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt from the evidence store: INCOMPLETE RUN: killed" in rebuilt.output
    report = _verified(out, "killed")
    rows = _alone(out / "evidence.sqlite", tmp_path)
    assert rows[-1]["kind"] == "run.end" and json.loads(rows[-1]["payload"])["rebuilt"] is True
    assert report["evidence_chain_head"] == rows[-1]["chain"]
    again = CliRunner().invoke(app, ["report", str(out), "--html"], env=env)  # now an ordinary re-render
    assert again.exit_code == 0 and "HTML report" in again.output


def test_esante_report_on_a_folder_without_a_run_says_so(tmp_path: Path) -> None:
    (tmp_path / "evidence.sqlite").write_bytes(b"not a database")
    refused = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert refused.exit_code == 4 and "not a readable evidence store" in refused.output
