"""Running the lab's runs: claim a queued run, play it in a child process (:mod:`.child`), keep its rows up to
date from what the child tells, heartbeat, honour a cancellation, and file the outcome.

Who calls :func:`execute` is the dispatcher's business: :class:`LocalPool` (threads of the server process, the
default) or a procrastinate worker on another machine (:mod:`.queue`). Either way a run is claimed by one
conditional UPDATE (queued → running), so it is never played twice; a run whose worker stops heartbeating is
marked interrupted by :func:`interrupt_stale`, and its evidence store, committed record by record, stays as it
was.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from esante.harness.campaign import Mode
from esante.harness.server.child import EXIT_REFUSED, RunSpec
from esante.harness.server.db import Database
from esante.harness.server.freeze import candidate_identity
from esante.harness.server.models import CandidateMode, CaseResult, Run, RunStatus, aware, now
from esante.harness.session import REFERENCE
from esante.reports.model import RunResult

HEARTBEAT_SECONDS = 0.5  # also how soon a cancellation or an operator's answer reaches the run
#: a running run whose worker has not been heard of for this long is interrupted
STALE_AFTER = timedelta(seconds=30)
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class LabSettings:
    """Where the lab keeps its files, and what runs are signed with."""

    data_dir: Path
    signing_key: Path
    pki_dir: Path | None = None

    def run_folder(self, run_id: int) -> Path:
        return self.data_dir / "runs" / f"{run_id:06d}"

    def session_folder(self, session_id: int) -> Path:
        return self.data_dir / "sessions" / f"{session_id:06d}"


class Dispatcher(Protocol):
    def submit(self, run_id: int) -> None: ...


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(db: Database, run_id: int) -> bool:
    with db.session() as s:
        claimed = s.execute(update(Run).where(Run.id == run_id, Run.status == RunStatus.QUEUED).values(
            status=RunStatus.RUNNING, worker=worker_name(), started_at=now(), heartbeat_at=now()))
    return claimed.rowcount == 1  # type: ignore[attr-defined]


def _spec(s: Session, run: Run, settings: LabSettings) -> RunSpec:
    candidate = run.session.candidate
    identity = candidate_identity(candidate)
    target = REFERENCE if candidate.mode == CandidateMode.REFERENCE else candidate.driver_url or ""
    mode = Mode.OPERATOR if candidate.mode == CandidateMode.OPERATOR else Mode.DRIVER
    return RunSpec(campaign=run.campaign, candidate=target, candidate_identity=identity, defects=list(run.defects),
                   case_ids=run.case_ids, out_dir=settings.run_folder(run.id), signing_key=settings.signing_key,
                   pki_dir=settings.pki_dir, frozen=run.session.frozen, mode=mode)


def execute(db: Database, settings: LabSettings, run_id: int) -> None:
    """Play run ``run_id`` if it is still queued; return once it is filed (finished, cancelled, error...)."""
    if not claim(db, run_id):
        return
    with db.session() as s:
        run = s.get_one(Run, run_id)
        spec = _spec(s, run, settings)
        run.folder = str(spec.out_dir)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    spec_file = spec.out_dir / "spec.json"
    spec_file.write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    _Execution(db, run_id, spec, spec_file).run()


class _Execution:
    def __init__(self, db: Database, run_id: int, spec: RunSpec, spec_file: Path) -> None:
        self.db, self.run_id, self.spec, self.spec_file = db, run_id, spec, spec_file
        self.last: dict[str, Any] = {}
        self.cancelled = False

    def run(self) -> None:
        with (self.spec.out_dir / "child.log").open("ab") as log:
            child = subprocess.Popen([sys.executable, "-m", "esante.harness.server.child", str(self.spec_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                     start_new_session=True)
            reader = threading.Thread(target=self._read, args=(child,), daemon=True)
            reader.start()
            self._watch(child)
            reader.join(timeout=10)
        self._finish(child.returncode)

    def _read(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.last = event
                with self.db.session() as s:
                    _apply(s, s.get_one(Run, self.run_id), event)

    def _watch(self, child: subprocess.Popen[str]) -> None:
        while True:
            try:
                child.wait(timeout=HEARTBEAT_SECONDS)
                return
            except subprocess.TimeoutExpired:
                pass
            with self.db.session() as s:
                run = s.get_one(Run, self.run_id)
                run.heartbeat_at = now()
                wanted = run.cancel_requested
                answer = run.answer if run.prompt is not None else None
                if answer is not None:  # cleared before it is passed on: the next question may come at once
                    run.prompt = run.answer = None
            if answer is not None:
                _tell(child, answer)
            if wanted and not self.cancelled:
                self.cancelled = True
                child.terminate()
                threading.Timer(KILL_GRACE_SECONDS, _kill, args=(child,)).start()

    def _finish(self, returncode: int) -> None:
        with self.db.session() as s:
            run = s.get_one(Run, self.run_id)
            event = self.last.get("event")
            if self.cancelled:
                _file(s, run, RunStatus.CANCELLED, "cancelled; the evidence recorded until then is kept")
            elif returncode == 0 and event == "done":
                _file_report(s, run, self.spec.out_dir)
            elif event == "refused" or returncode == EXIT_REFUSED:
                _file(s, run, RunStatus.ERROR, "refused to start: " + "; ".join(self.last.get("problems", [])))
            elif event == "error":
                _file(s, run, RunStatus.ERROR, str(self.last.get("message", "")))
            else:
                _file(s, run, RunStatus.INTERRUPTED, f"the run's process ended unexpectedly (exit {returncode}); "
                                                     "the evidence recorded until then is intact")


def _tell(child: subprocess.Popen[str], answer: str) -> None:
    assert child.stdin is not None
    try:
        child.stdin.write(json.dumps({"answer": answer}) + "\n")
        child.stdin.flush()
    except (BrokenPipeError, ValueError):  # the run ended meanwhile
        pass


def _kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()


def _apply(s: Session, run: Run, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "start":
        cases = [(n, c) for n, c in enumerate(event.get("cases", [])) if c.get("selected")]
        for position, case in cases:  # the case's place in the campaign: the HTML report's #case-<n>
            s.add(CaseResult(run_id=run.id, position=position, case_id=str(case["id"]), title=str(case["title"]),
                             requirements=list(case["requirements"]), attestation=bool(case["attestation"])))
        run.cases_total = len(cases)
    elif kind == "ask":
        run.prompt = {"question": str(event.get("question", "")), "context": str(event.get("context", ""))}
        run.answer = None
    elif kind == "case_start":
        run.current_case = str(event.get("case"))
    elif kind == "case":
        row = s.scalar(select(CaseResult).where(CaseResult.run_id == run.id, CaseResult.case_id == event["case"]))
        if row is not None:
            row.verdict, row.reason = str(event["verdict"]), str(event.get("reason", ""))
            run.cases_done += 1


def _file(s: Session, run: Run, status: RunStatus, detail: str) -> None:
    run.status, run.detail, run.finished_at, run.current_case = status, detail, now(), None
    run.prompt = run.answer = None


def _file_report(s: Session, run: Run, folder: Path) -> None:
    result = RunResult.model_validate_json((folder / "report.json").read_text(encoding="utf-8"))
    rows = {row.case_id: row for row in run.cases}
    for case in result.cases:
        row = rows.get(case.id)
        if row is not None:  # a case this run played (not one skipped as not selected)
            row.verdict, row.reason, row.requirements = case.verdict.value, case.reason, case.requirements
    run.harness_run_id, run.verdict = result.run_id, result.verdict.value
    _file(s, run, RunStatus.FINISHED, f"{result.campaign.id} {result.campaign.version}: "
          + ", ".join(f"{n} {v}" for v, n in result.counts().items() if n))


def _dead_here(worker: str | None) -> bool:
    """Whether ``worker`` (``host:pid``) was a process of this machine that no longer exists."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def interrupt_stale(db: Database, older_than: timedelta = STALE_AFTER) -> int:
    """Mark interrupted the running runs whose worker is gone: a process of this machine that no longer exists,
    or a worker anywhere that has not heartbeaten for ``older_than``."""
    limit = now() - older_than
    with db.session() as s:
        running = s.scalars(select(Run).where(Run.status == RunStatus.RUNNING)).all()
        gone = [r for r in running if _dead_here(r.worker) or (aware(r.heartbeat_at) or limit) < limit]
        for run in gone:
            _file(s, run, RunStatus.INTERRUPTED, f"its worker ({run.worker}) stopped; the evidence recorded until "
                                                 "then is intact")
    return len(gone)


def cancel(db: Database, run_id: int) -> None:
    """Cancel a queued run at once; ask a running one's worker to end it."""
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id, Run.status == RunStatus.QUEUED).values(
            status=RunStatus.CANCELLED, detail="cancelled before it started", finished_at=now()))
        s.execute(update(Run).where(Run.id == run_id, Run.status == RunStatus.RUNNING).values(cancel_requested=True))


class LocalPool:
    """Runs in threads of this process (each one's run in a child process), ``size`` at a time."""

    def __init__(self, db: Database, settings: LabSettings, size: int = 2) -> None:
        self.db, self.settings, self.size = db, settings, size
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalPool:
        for n in range(self.size):
            thread = threading.Thread(target=self._work, name=f"lab-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self.db.session() as s:  # runs queued before a restart
            for run_id in s.scalars(select(Run.id).where(Run.status == RunStatus.QUEUED).order_by(Run.id)):
                self.submit(run_id)
        return self

    def submit(self, run_id: int) -> None:
        self._queue.put(run_id)

    def _work(self) -> None:
        while (run_id := self._queue.get()) is not None:
            try:
                execute(self.db, self.settings, run_id)
            except Exception as exc:  # a worker thread must survive one run's failure
                with self.db.session() as s:
                    _file(s, s.get_one(Run, run_id), RunStatus.ERROR, f"the lab failed: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
