"""The reviewers' lab as it is deployed: ``esante serve`` from a fresh process (SQLite), ``esante submit`` from
CI against it, a server killed mid-run (the run is marked interrupted, its evidence intact), and workers on
"other machines" taking runs through procrastinate on a real PostgreSQL server (skipped, saying why, where
none can start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from esante.harness.cli import app as cli
from esante.harness.server.app import create_app
from esante.harness.server.queue import QueueDispatcher
from esante.reports import verify_bundle
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.server import free_port
from tests.test_server_support import (
    ADMIN,
    PASSWORD,
    People,
    make_lab,
    populate,
    start_postgres,
    stop_postgres,
    token,
)

EDITOR = "editor@alpha.test"
pytestmark = pytest.mark.slow


@contextmanager
def esante(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryFile() as log:  # a pipe nobody reads would block the server once full
        process = subprocess.Popen([sys.executable, "-m", "esante.harness.cli", *args],
                                   env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        process.log = log  # type: ignore[attr-defined]
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def served(data: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    return esante("serve", "--data", str(data), "--port", str(port), "--workers", "1",
                  env={"ESANTE_LAB_ADMIN_EMAIL": ADMIN, "ESANTE_LAB_ADMIN_PASSWORD": PASSWORD})


def wait_up(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            process.log.seek(0)  # type: ignore[attr-defined]
            raise AssertionError(process.log.read().decode(errors="replace"))  # type: ignore[attr-defined]
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the lab did not answer at {url}")


def reference_session(people: People, kind: str = "sandbox") -> tuple[int, int]:
    candidate = people.json(EDITOR, "POST", "/candidates", 201, json={"name": "reference", "version": "1.0.0",
                                                                        "mode": "reference"})
    session = people.json(EDITOR, "POST", "/sessions", 201, json={"kind": kind, "candidate_id": candidate["id"],
                                                                   "campaign": "insi"})
    return candidate["id"], session["id"]


def test_esante_serve_then_esante_submit_from_ci(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with served(tmp_path / "lab", port) as server:
        wait_up(url, server)
        with httpx.Client(base_url=url, timeout=60) as client:
            people = populate(People(client, None))  # type: ignore[arg-type]
            candidate, _ = reference_session(people)
            out = tmp_path / "ci"
            result = CliRunner().invoke(cli, ["submit", "insi", "--lab", url, "--token", people.tokens[EDITOR],
                                              "--candidate", str(candidate), "--kind", "rehearsal", "--case",
                                              "INSI-02", "--out", str(out), "--submit-for-review"])
            assert result.exit_code == 0, result.output
            assert "submitted for review" in result.output
            assert verify_bundle(out / "evidence-bundle.zip").ok
            assert {p.name for p in out.iterdir()} >= {"report.json", "junit.xml", "report.pdf", "report.html"}
            [queued] = people.json("reviewer@cnda.test", "GET", "/review/queue")
            assert queued["kind"] == "rehearsal"
            refused = CliRunner().invoke(cli, ["submit", "insi", "--lab", url, "--token", "esl_wrong",
                                               "--candidate", str(candidate)])
            assert refused.exit_code == 4 and "401" in refused.output


def test_a_server_killed_mid_run_leaves_the_run_interrupted_with_its_evidence_intact(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "lab"
    url = f"http://127.0.0.1:{port}"
    with served(data, port) as server:
        wait_up(url, server)
        with httpx.Client(base_url=url, timeout=60) as client:
            people = populate(People(client, None))  # type: ignore[arg-type]
            _, session = reference_session(people)
            run = people.json(EDITOR, "POST", f"/sessions/{session}/runs", 201, json={})
            deadline = time.monotonic() + 120
            while people.json(EDITOR, "GET", f"/runs/{run['id']}")["cases_done"] < 2:
                assert time.monotonic() < deadline, "the run did not progress"
                time.sleep(0.2)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    with served(data, port) as again:
        wait_up(url, again)
        with httpx.Client(base_url=url, timeout=60) as client:
            editor = token(client, EDITOR, PASSWORD)
            deadline = time.monotonic() + 30
            while (found := client.get(f"/api/v1/runs/{run['id']}", headers={"Authorization": f"Bearer {editor}"})
                   .json())["status"] == "running":
                assert time.monotonic() < deadline, "the run was never marked interrupted"
                time.sleep(0.5)
    assert found["status"] == "interrupted", found
    store = EvidenceStore(data / "runs" / f"{run['id']:06d}" / "evidence.sqlite")
    assert store.verify() == [] and len(store.records(kind="case.verdict")) >= 2
    store.close()


def test_workers_on_other_machines_take_runs_through_procrastinate(tmp_path: Path) -> None:
    postgres = start_postgres()
    try:
        database = postgres.new_database()
        data = tmp_path / "lab"
        lab = make_lab(data, database, workers=0)
        lab.dispatcher = QueueDispatcher(lab.db, lab.settings)
        with TestClient(create_app(lab)) as client, \
                esante("serve", "--worker", "--database", database, "--data", str(data), "--workers", "2"):
            people = populate(People(client, lab))
            _, session = reference_session(people)
            run = people.json(EDITOR, "POST", f"/sessions/{session}/runs", 201, json={"case_ids": ["INSI-02"]})
            finished = people.wait(EDITOR, run["id"], timeout=180)
            assert finished["status"] == "finished" and finished["verdict"] == "passed", finished
            with lab.db.session() as s:
                from esante.harness.server.models import Run

                worker = s.get_one(Run, run["id"]).worker or ""
            assert not worker.endswith(f":{os.getpid()}")  # played by the other process
    finally:
        stop_postgres(postgres)
