"""``esante judge CAMPAIGN --evidence STORE``: a campaign's checks run on captured traffic instead of played steps.

This is how a reviewer judges an editor's traffic against a real sandbox with the rules the simulators apply:
``esante proxy`` journaled what passed between the candidate and the service (:mod:`esante.harness.proxy`); the
judge takes that evidence, case by case, and writes the same reports and signed bundle as ``esante run``.

* The evidence is copied first (a SQLite backup, records byte for byte) into the output folder and its hash chain
  checked: the captured records stay under their digests, and the judgement is appended after them.
* The captured run is the last one the proxy journaled (or ``run_id``). Each case's exchanges are the proxy's,
  filed under the case by the runner or a person (admin API); a service the proxy did not stand in front of in
  that run is judged on its simulator's journal, when the store holds one. Each exchange in the report says where
  it came from (``notes.origin``).
* The candidate's reports are the ``step`` records of the captured run, when the harness drove it.
* A check that reads what only a simulator knows (its notes: its internal state and decisions), or the candidate's
  reports when the capture has none, is reported not applicable, saying why (verdict ``skipped``, never passed);
  so is every check of a case that needs faults injected into a service the capture went to, when none were.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from esante.harness import __version__
from esante.harness.actions import ACTIONS, load_actions
from esante.harness.campaign import LoadedCampaign, TestCase, load_campaign, resolve_campaign
from esante.harness.checks import CheckContext, StepObservation, load_checks
from esante.harness.proxy.settings import PROXY
from esante.harness.runner import (
    NotApplicable,
    check_result,
    exchange_summary,
    new_run_id,
    run_result,
    verdict_reason,
)
from esante.reports import ReportPaths, write_reports
from esante.reports.model import (
    CandidateInfo,
    CaseResult,
    CheckResult,
    EvidenceRef,
    RunResult,
    StepResult,
    Verdict,
    worst,
)
from esante.simulators.core.evidence import EvidenceStore, Record, utc_now
from esante.simulators.core.journal import Exchange, load_exchanges
from esante.simulators.dataset import load_dataset

EVIDENCE_FILE = "evidence.sqlite"


class JudgeError(ValueError):
    """The evidence cannot be judged: absent, altered, or holding no capture."""


@dataclass(slots=True)
class JudgeRequest:
    campaign: str
    evidence: Path  # an evidence file, or a folder holding evidence.sqlite (a capture's, a run's)
    out_dir: Path | None = None
    run_id: str | None = None  # the captured run (default: the last one the proxy journaled)
    case_ids: set[str] | None = None
    signing_key: Path | None = None


@dataclass(slots=True)
class JudgeOutput:
    result: RunResult
    out_dir: Path
    evidence_path: Path
    reports: ReportPaths


class CapturedExchange(Exchange):
    """An exchange the proxy captured, as checks see it: it has no simulator notes, so reading them is
    :class:`NotApplicable`."""

    __slots__ = ()

    @property  # type: ignore[override]
    def notes(self) -> dict[str, Any]:
        raise NotApplicable("it reads what the simulator noted about the exchange, and a captured exchange went to "
                            "the real service: no simulator noted anything")

    @notes.setter
    def notes(self, value: dict[str, Any]) -> None:
        """Captured exchanges carry no notes: nothing to keep."""


class CapturedContext(CheckContext):
    """A case's context when the capture holds no report of the candidate: reading them is :class:`NotApplicable`."""

    __slots__ = ()

    @property  # type: ignore[override]
    def steps(self) -> list[StepObservation]:
        raise NotApplicable("it reads what the candidate reported, and this capture holds no report (the harness "
                            "did not drive the candidate while it was captured)")

    @steps.setter
    def steps(self, value: list[StepObservation]) -> None:
        """No reports: nothing to keep."""


def judge(request: JudgeRequest) -> JudgeOutput:
    """Judge the captured run of ``request.evidence`` with the campaign's checks; reports go under ``out_dir``."""
    loaded = load_campaign(resolve_campaign(request.campaign), known_checks=load_checks())
    load_actions()
    run_id = new_run_id().replace("run-", "judge-", 1)
    out_dir = request.out_dir or Path("runs") / run_id
    store = _copy(_source(request.evidence), out_dir / EVIDENCE_FILE)
    captured_run = request.run_id or _last_captured_run(store)
    judgement = _Judgement(loaded, store, run_id, captured_run, request.case_ids)
    result = judgement.run()
    paths = write_reports(result, store, out_dir, signing_key=request.signing_key)
    store.close()  # the judgement's evidence.sqlite is then one self-contained file
    return JudgeOutput(result, out_dir, store.path, paths)


def _source(evidence: Path) -> Path:
    path = evidence / EVIDENCE_FILE if evidence.is_dir() else evidence
    if not path.is_file():
        raise JudgeError(f"{evidence}: no evidence store there (an evidence.sqlite, or a folder holding one)")
    return path


def _copy(source: Path, target: Path) -> EvidenceStore:
    """A consistent copy of the store (its records byte for byte), its chain checked before anything is judged."""
    if target.exists():
        raise JudgeError(f"{target} exists: judge into a new folder (--out)")
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise JudgeError(f"{source}: not an evidence store ({exc})") from None
    finally:
        src.close()
        dst.close()
    store = EvidenceStore(target)
    problems = store.verify()
    if problems:
        raise JudgeError(f"{source}: the evidence was altered, it cannot be judged: "
                         + "; ".join(f"record {p.seq}: {p.what}" for p in problems[:5]))
    return store


def _last_captured_run(store: EvidenceStore) -> str | None:
    captured = [r for r in store.records(kind="exchange.request") if r.payload.get("simulator") == PROXY]
    if not captured:
        raise JudgeError(f"{store.path}: no exchange captured by esante proxy")
    return captured[-1].run_id


class _Judgement:
    """One judgement: the campaign's cases on one captured run, recorded under its own run id."""

    def __init__(self, loaded: LoadedCampaign, store: EvidenceStore, run_id: str, captured_run: str | None,
                 case_ids: set[str] | None) -> None:
        self.loaded, self.store, self.run_id = loaded, store, run_id
        self.captured_run, self.case_ids = captured_run, case_ids
        self.checks = load_checks()
        requests = store.records(kind="exchange.request", run_id=captured_run)
        self.captured = {r.ref: r.payload for r in requests if r.payload.get("simulator") == PROXY}
        self.services = {p["service"] for p in self.captured.values() if p.get("service")}
        start = next(iter(store.records(kind="run.start", run_id=captured_run)), None) if captured_run else None
        self.candidate = (start.payload.get("candidate") if start else None) or {}

    @property
    def campaign(self) -> Any:
        return self.loaded.campaign

    def run(self) -> RunResult:
        started = utc_now()
        header = self.campaign.campaign
        self.store.append("run.start", {"campaign": header.model_dump(), "campaign_sha256": self.loaded.sha256,
                                        "harness_version": __version__, "mode": "judge",
                                        "judged": {"run_id": self.captured_run, "services": sorted(self.services)}},
                          run_id=self.run_id)
        cases = [self._case(case) for case in self.campaign.cases]
        candidate = CandidateInfo(name=self.candidate.get("name", "captured candidate"),
                                  version=self.candidate.get("version", "unknown"),
                                  vendor=self.candidate.get("vendor"), mode="captured")
        upstreams = {p["service"]: str(p.get("upstream")) for p in self.captured.values() if p.get("service")}
        return run_result(self.loaded, self.store, self.run_id, started, cases, candidate=candidate,
                          simulators=upstreams)

    def _case(self, case: TestCase) -> CaseResult:
        started, t0 = utc_now(), time.perf_counter()
        exchanges, origins = self._observed(case)
        steps = self.store.records(kind="step", run_id=self.captured_run, case_id=case.id)
        skip = self._skip_reason(case, exchanges, steps)
        checks = [] if skip else self._judge(case, exchanges, [self._step(r) for r in steps])
        verdict = Verdict.SKIPPED if skip else worst([c.verdict for c in checks])
        reason = skip or verdict_reason(verdict, checks)
        self.store.append("case.verdict", {"verdict": verdict.value, "reason": reason, "judged_run": self.captured_run,
                                           "checks": [c.model_dump(mode="json") for c in checks]},
                          run_id=self.run_id, case_id=case.id)
        summaries = [exchange_summary(e).model_copy(update={"notes": {**e.notes, "origin": origins[e.id]}})
                     for e in exchanges]
        return CaseResult(id=case.id, title=case.title, requirements=case.requirements,
                          severity=case.severity.value, verdict=verdict, reason=reason, started_at=started,
                          duration_ms=round((time.perf_counter() - t0) * 1000, 1), checks=checks,
                          steps=[self._step_result(r) for r in steps], exchanges=summaries)

    def _skip_reason(self, case: TestCase, exchanges: list[Exchange], steps: list[Record]) -> str | None:
        if self.case_ids is not None and case.id not in self.case_ids:
            return "not selected for this judgement"
        if not exchanges and not steps:
            return "nothing was captured under this case"
        return None

    def _observed(self, case: TestCase) -> tuple[list[Exchange], dict[str, str]]:
        """The case's exchanges: the proxy's for the services it captured, the simulators' for the others."""
        found = load_exchanges(self.store, run_id=self.captured_run, case_id=case.id)
        exchanges, origins = [], {}
        for exchange in found:
            if exchange.simulator == PROXY and exchange.id in self.captured:
                payload = self.captured[exchange.id]
                exchange = self._as_service(exchange, payload)
                origins[exchange.id] = (f"captured by esante proxy ({payload.get('mode')}) "
                                        f"from {payload.get('upstream')}")
            elif exchange.simulator not in self.services | {PROXY}:
                origins[exchange.id] = f"journaled by the {exchange.simulator} simulator"
            else:
                continue
            exchanges.append(exchange)
        return exchanges, origins

    def _as_service(self, exchange: Exchange, payload: dict[str, Any]) -> Exchange:
        """A captured exchange under its service's name, its bodies decoded when they were sent encoded."""
        response = next(iter(self.store.records(kind="exchange.response", ref=exchange.id)), None)
        return dataclasses.replace(exchange, simulator=payload.get("service") or "unknown",
                                   request_body=self._decoded(payload, exchange.request_body),
                                   response_body=self._decoded(response.payload if response else {},
                                                               exchange.response_body))

    def _decoded(self, payload: dict[str, Any], body: bytes) -> bytes:
        digest = payload.get("decoded_body_sha256")
        decoded = self.store.blob(digest) if digest else None
        return body if decoded is None else decoded

    def _judge(self, case: TestCase, exchanges: list[Exchange], steps: list[StepObservation]) -> list[CheckResult]:
        dataset = load_dataset(case.preconditions.dataset or self.campaign.campaign.dataset)
        judged = [self._for_checks(e) for e in exchanges]
        missing_faults = self._faults_not_injected(case)
        results = []
        for expectation in case.expect:
            registered = self.checks[expectation.check]
            if missing_faults:
                results.append(CheckResult(check=registered.name, requirements=list(registered.requirements),
                                           verdict=Verdict.SKIPPED, message=f"not applicable: {missing_faults}"))
                continue
            kind = CheckContext if steps else CapturedContext
            results.append(check_result(registered, kind(case.id, judged, steps, expectation.with_, dataset)))
        return results

    def _for_checks(self, exchange: Exchange) -> Exchange:
        if exchange.id not in self.captured:
            return exchange
        return CapturedExchange(**{f.name: getattr(exchange, f.name) for f in dataclasses.fields(exchange)})

    def _faults_not_injected(self, case: TestCase) -> str | None:
        """Why the case cannot be judged on the capture: it needs faults injected into a captured service, and the
        evidence shows none were (a real service takes no fault rules; a simulator behind the proxy records them)."""
        wanted = sorted(set(case.preconditions.faults) & self.services)
        admin = self.store.records(kind="admin", run_id=self.captured_run, case_id=case.id)
        injected = {r.payload.get("simulator") for r in admin if r.payload.get("action") == "faults"
                    and r.payload.get("rules")}
        missing = [name for name in wanted if name not in injected]
        if not missing:
            return None
        return (f"the case needs faults injected into {', '.join(missing)}, which only a simulator can do, and the "
                "capture shows none were")

    def _step(self, record: Record) -> StepObservation:
        p = record.payload
        spec = ACTIONS.get(p.get("action") or "")
        try:
            report = spec.report.model_validate(p["report"]) if spec is not None and p.get("report") else None
        except ValidationError:  # a report this kit does not read: as good as none
            report = None
        return StepObservation(p.get("index", 0), p.get("action"), p.get("params") or {}, report,
                               p.get("elapsed_ms"), seq=record.seq)

    @staticmethod
    def _step_result(record: Record) -> StepResult:
        p = record.payload
        spec = ACTIONS.get(p.get("action") or "")
        return StepResult(index=p.get("index", 0), kind="action", description=spec.title if spec else str(p["action"]),
                          outcome=str((p.get("report") or {}).get("outcome", "")),
                          detail={"params": p.get("params"), "report": p.get("report")},
                          evidence=[EvidenceRef(seq=record.seq, digest=record.digest, kind=record.kind,
                                                label=f"captured step {p.get('index', 0) + 1}")])
