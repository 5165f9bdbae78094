"""The evidence store: append-only, hashed, chained, and durable under SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esante.simulators.core.evidence import EvidenceStore, sha256_hex


def test_append_hashes_and_chains(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    first = store.append("exchange.request", {"a": 1}, run_id="r", case_id="c", blobs={"body": b"<x/>"})
    second = store.append("verdict", {"v": "passed"}, run_id="r", case_id="c")
    assert first.payload["body_sha256"] == sha256_hex(b"<x/>")
    assert store.blob(first.payload["body_sha256"]) == b"<x/>"
    assert second.chain != first.chain and second.seq == first.seq + 1
    assert store.verify() == []
    assert [r.kind for r in store.records(run_id="r", case_id="c")] == ["exchange.request", "verdict"]


def test_store_refuses_update_and_delete(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    store.append("x", {"a": 1})
    db = sqlite3.connect(tmp_path / "e.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE records SET payload = '{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM records")


def _tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete; DROP TRIGGER blobs_no_update;"
                     + sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(("sql", "seq", "what"), [
    ("UPDATE records SET payload = '{\"a\":2}' WHERE seq = 2;", 2, "does not match its digest"),
    ("DELETE FROM records WHERE seq = 2;", 3, "hash chain broken"),
])
def test_verify_names_the_altered_record(tmp_path: Path, sql: str, seq: int, what: str) -> None:
    path = tmp_path / "e.sqlite"
    store = EvidenceStore(path)
    for i in range(3):
        store.append("x", {"a": i})
    store.close()
    _tamper(path, sql)
    problems = EvidenceStore(path).verify()
    assert any(p.seq == seq and what in p.what for p in problems), problems


def test_verify_detects_altered_blob(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite"
    store = EvidenceStore(path)
    store.append("x", {}, blobs={"body": b"original"})
    store.close()
    _tamper(path, "UPDATE blobs SET data = X'00';")
    assert any("blob" in p.what for p in EvidenceStore(path).verify())


WRITER = """
import sys
from esante.simulators.core.evidence import EvidenceStore
store = EvidenceStore(sys.argv[1])
i = 0
while True:
    record = store.append("exchange.request", {"i": i}, run_id="r", blobs={"body": b"x" * (i % 500)})
    print(record.seq, flush=True)
    i += 1
"""


def test_sigkill_loses_nothing_recorded(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream: every record it acknowledged is there, chain intact."""
    path = tmp_path / "e.sqlite"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + 20
    assert child.stdout is not None
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        acknowledged.append(int(child.stdout.readline()))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = EvidenceStore(path)
    seqs = {r.seq for r in store.records()}
    assert len(acknowledged) >= 300
    assert set(acknowledged) <= seqs
    assert store.verify() == []
