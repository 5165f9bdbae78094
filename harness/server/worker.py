"""Running the lab's runs: claim a queued run, play it in a child process (:mod:`.child`), keep its rows up to
date from what the child tells, heartbeat, honour a cancellation, and file the outcome.

Who calls :func:`execute` is the dispatcher's business: :class:`LocalPool` (threads of the server process, the
default) or a procrastinate worker on another machine (:mod:`.queue`). Either way a run is claimed by one
conditional UPDATE (queued → running), so it is never played twice; a run whose worker stops heartbeating is
marked interrupted by :func:`interrupt_stale`, and its evidence store, committed record by record, stays as it
was.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from importlib.metadata import entry_points
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from esante.harness.campaign import Mode
from esante.harness.server.child import EXIT_REFUSED, RunSpec, play_in_process
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


def preloaded() -> list[str]:
    """What every run imports, imported once by the process runs are forked from: the child, and every
    registered kit, simulator and reference candidate part (a run then starts in a fraction of a second)."""
    modules = ["esante.harness.server.child"]
    for group in ("esante.kits", "esante.simulators", "esante.reference"):
        for point in entry_points(group=group):
            package = point.value.split(":")[0]
            modules += [package, f"{package}.checks", f"{package}.actions"] if group == "esante.kits" else [package]
    return modules


@cache
def _processes() -> BaseContext:
    """Runs are forked from a fresh process that has imported what they need: isolated as a new interpreter
    is (nothing of the server's threads or state), without paying its imports each time."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preloaded())
    return context


class _Execution:
    def __init__(self, db: Database, run_id: int, spec: RunSpec, spec_file: Path) -> None:
        self.db, self.run_id, self.spec, self.spec_file = db, run_id, spec, spec_file
        self.last: dict[str, Any] = {}
        self.cancelled = False

    def run(self) -> None:
        context = _processes()
        events_in, events_out = context.Pipe(duplex=False)
        answers_in, answers_out = context.Pipe(duplex=False)
        child = context.Process(target=play_in_process, name=f"lab-run-{self.run_id}", daemon=False,
                                args=(self.spec.model_dump_json(), events_out, answers_in,
                                      str(self.spec.out_dir / "child.log")))
        child.start()
        events_out.close()  # the child holds the only writing end: reading ends when it does
        answers_in.close()
        reader = threading.Thread(target=self._read, args=(events_in,), daemon=True)
        reader.start()
        self._watch(child, answers_out)
        reader.join(timeout=10)
        answers_out.close()
        self._finish(child.exitcode if child.exitcode is not None else -1)

    def _read(self, events: Connection) -> None:
        while True:
            try:
                event = events.recv()
            except (EOFError, OSError):
                return
            if isinstance(event, dict):
                self.last = event
                with self.db.session() as s:
                    _apply(s, s.get_one(Run, self.run_id), event)

    def _watch(self, child: BaseProcess, answers: Connection) -> None:
        while True:
            child.join(timeout=HEARTBEAT_SECONDS)
            if not child.is_alive():
                return
            with self.db.session() as s:
                run = s.get_one(Run, self.run_id)
                run.heartbeat_at = now()
                wanted = run.cancel_requested
                answer = run.answer if run.prompt is not None else None
                if answer is not None:  # cleared before it is passed on: the next question may come at once
                    run.prompt = run.answer = None
            if answer is not None:
                _tell(answers, answer)
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


def _tell(answers: Connection, answer: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # the run ended meanwhile
        answers.send(answer)


def _kill(child: BaseProcess) -> None:
    if child.is_alive():
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
