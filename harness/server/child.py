"""One run of the lab, in its own process (:func:`play_in_process`, started by the worker).

A run is :func:`esante.harness.session.play` as ``esante run`` does it; in a process of its own it has its own
simulators and candidate, it can be cancelled by ending the process, and nothing it does can disturb another
run. It tells the worker what happens as events on a pipe (``start`` with the cases, ``case`` as each is judged,
``ask`` in operator mode, then ``done``, ``refused`` or ``error``), reads an operator's answers on another, and
ends itself if its worker dies (the evidence store has committed every record: the run is then marked
interrupted, its evidence intact). Its output goes to the run's ``child.log``.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.panel import Panel

from esante.harness.campaign import CampaignError, LoadedCampaign, Mode
from esante.harness.driver import DriverClient, DriverError
from esante.harness.operator import Attestation, Operator
from esante.harness.runner import CaseProgress
from esante.harness.server.freeze import differences, freeze
from esante.harness.session import REFERENCE, RunRequest, load, play

EXIT_REFUSED, EXIT_ERROR, EXIT_ORPHANED = 4, 5, 70
MAX_ANSWER = 10_000


class RunSpec(BaseModel):
    """What the worker asks the child to play."""

    campaign: str
    candidate: str  # the driver URL, or "reference"
    candidate_identity: dict[str, Any]
    defects: list[str] = []
    case_ids: list[str] | None = None
    out_dir: Path
    signing_key: Path | None = None
    pki_dir: Path | None = None
    frozen: dict[str, Any] | None = None
    mode: Mode = Mode.DRIVER


class _Channel:
    events: Connection | None = None   # to the worker
    answers: Connection | None = None  # from the worker (operator mode)


def emit(event: str, **fields: Any) -> None:
    assert _Channel.events is not None
    _Channel.events.send({"event": event, **fields})


class WebOperator(Operator):
    """Operator mode through the lab's pages: what :class:`Operator` shows and asks goes to the worker as an
    ``ask`` event (the question, and what was shown since the last one), and the person's answer comes back as a
    JSON line on standard input."""

    def __init__(self) -> None:
        self.screen = io.StringIO()
        super().__init__(console=Console(file=self.screen, width=100, color_system=None), ask=self._ask)

    def _ask(self, question: str) -> str:
        shown = self.screen.getvalue()
        self.screen.seek(0)
        self.screen.truncate()
        emit("ask", question=question.strip(), context=shown.strip())
        assert _Channel.answers is not None
        return str(_Channel.answers.recv())[:MAX_ANSWER]  # EOFError if the worker is gone

    def introduce(self, endpoints: Mapping[str, str], ca_file: Path | None) -> None:
        """As a terminal's, without its Ctrl-C and ``--resume``: a lab run is cancelled or run again instead."""
        where = "\n".join(f"{name}: {url}" for name, url in endpoints.items())
        trust = f"CA file: {ca_file}" if ca_file else "plain HTTP: no certificate to trust"
        self.console.print(Panel(f"{where}\n{trust}\n\nYour software calls these simulators. At each step, do what "
                                 "is asked in your software, then say what it showed. Answer skip to a step's first "
                                 "question to skip its case with a reason.", title="Operator mode"))

    def attest(self, case_id: str, statement: str) -> Attestation:
        """As a terminal's, without the attached file: a path typed here would name a file of the worker."""
        self.console.print(Panel(statement, title=f"{case_id} — please confirm"))
        confirmed = self._gate("Is this true? (yes/no)").lower() in ("y", "yes", "o", "oui")
        return Attestation(confirmed, self._prompt("Note (optional)"))


def _watch_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(EXIT_ORPHANED)  # the worker died: stop here, every record so far is committed


def _case_list(loaded: LoadedCampaign, selected: list[str] | None) -> list[dict[str, Any]]:
    return [{"id": c.id, "title": c.title, "requirements": list(c.requirements),
             "attestation": any(s.attest is not None for s in c.steps),
             "selected": selected is None or c.id in selected} for c in loaded.campaign.cases]


def _refusals(spec: RunSpec, loaded: LoadedCampaign) -> list[str]:
    """Why a frozen session cannot play here and now (empty: it can)."""
    unknown = sorted(set(spec.case_ids or ()) - {c.id for c in loaded.campaign.cases})
    if unknown:
        return [f"no case {', '.join(unknown)} in campaign {loaded.campaign.campaign.id}"]
    if spec.frozen is None:
        return []
    problems = differences(spec.frozen, freeze(loaded, spec.candidate_identity))
    if spec.mode is Mode.DRIVER and spec.candidate != REFERENCE:
        with DriverClient(spec.candidate) as driver:
            declared = driver.info()
        if declared.version != spec.candidate_identity.get("version"):
            problems.append(f"candidate.version: frozen {spec.candidate_identity.get('version')!r}, the driver "
                            f"declares {declared.version!r}")
    return problems


def _progress(event: CaseProgress) -> None:
    if event.result is None:
        emit("case_start", case=event.case.id)
    else:
        emit("case", case=event.case.id, verdict=event.result.verdict.value, reason=event.result.reason[:2000])


def play_in_process(spec_json: str, events: Connection, answers: Connection, log: str) -> None:
    """The child process's body: play the run ``spec_json`` describes; the exit code says how it ended."""
    with open(log, "ab", buffering=0) as output:
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
    _Channel.events, _Channel.answers = events, answers
    threading.Thread(target=_watch_parent, daemon=True).start()
    sys.exit(_play(RunSpec.model_validate_json(spec_json)))


def _play(spec: RunSpec) -> int:
    request = RunRequest(campaign=spec.campaign, candidate=spec.candidate, out_dir=spec.out_dir,
                         defects=spec.defects, mode=spec.mode,
                         operator=WebOperator() if spec.mode is Mode.OPERATOR else None,
                         case_ids=set(spec.case_ids) if spec.case_ids is not None else None,
                         pki_dir=spec.pki_dir, signing_key=spec.signing_key)
    try:
        loaded = load(spec.campaign)
        problems = _refusals(spec, loaded)
        if problems:
            emit("refused", problems=problems)
            return EXIT_REFUSED
        emit("start", cases=_case_list(loaded, spec.case_ids))
        output = play(request, progress=_progress)
    except (CampaignError, FileNotFoundError, DriverError, ValueError, OSError) as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
    emit("done", run_id=output.result.run_id, verdict=output.result.verdict.value)
    return 0
