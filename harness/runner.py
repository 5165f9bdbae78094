"""The campaign runner: plays each test case against the candidate, observes, judges, records.

For every test case, in its own isolated state:

1. every simulator is reset, filed under the case (context), given the case's data set and faults;
2. the candidate is reset (driver mode);
3. each step is played — a driver action, or an instruction / attestation for a person (operator mode) —
   and what the candidate reported is recorded as evidence;
4. the simulators' journals for the case are read back and every expectation's check judges them;
5. the verdict (worst of the checks) is recorded, with links to the evidence.

Nothing is judged from memory: checks see what the journal holds, and the evidence store holds what the
checks saw.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from esante.harness import __version__
from esante.harness.actions import ACTIONS, ActionSpec, load_actions
from esante.harness.browser import Browser
from esante.harness.campaign import LoadedCampaign, Mode, Step, TestCase
from esante.harness.checks import CheckContext, RegisteredCheck, StepObservation, load_checks
from esante.harness.driver import ActionOutcome, ActionReport, CandidateInfo, DriverClient, DriverError
from esante.harness.environment import SimulatorClient
from esante.harness.operator import CaseSkipped, Operator
from esante.reports.model import (
    CampaignInfo,
    CaseResult,
    CheckResult,
    EvidenceRef,
    RunResult,
    StepResult,
    Verdict,
    worst,
)
from esante.reports.model import (
    CandidateInfo as CandidateResult,
)
from esante.reports.rebuild import attestation_result, exchange_summary, step_result
from esante.simulators.core.evidence import EvidenceStore, Record, utc_now
from esante.simulators.core.journal import Exchange
from esante.simulators.dataset import Dataset, load_dataset

MAX_BROWSER_TRIPS = 4  # sign-in, then e.g. a consent or a logout round trip: more is a redirect loop


class Environment(Protocol):
    store: EvidenceStore
    clients: dict[str, SimulatorClient]
    ca_pem: bytes | None  # the CA the simulators' HTTPS certificates chain to (None: plain HTTP)

    @property
    def endpoints(self) -> dict[str, str]: ...


def new_run_id() -> str:
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class CaseProgress:
    """A case of the run starting (``result`` None) or judged, and where it stands among the cases played."""

    position: int  # 1-based, among the cases this run plays (not those filtered out or judged in an earlier session)
    total: int
    case: TestCase
    result: CaseResult | None = None


Progress = Callable[[CaseProgress], None]


@dataclass(frozen=True, slots=True)
class Resumed:
    """An interrupted session taken up again: when it began, and the cases it had judged (kept as they were)."""

    started_at: str
    results: dict[str, CaseResult]


@dataclass(slots=True)
class _CaseState:
    steps: list[StepObservation] = field(default_factory=list)
    step_results: list[StepResult] = field(default_factory=list)
    problems: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    browser: Browser | None = None
    since: int = 0  # the case's start record: what the simulators journaled before it is not this attempt's


class Interrupted(BaseException):
    """A signal (SIGINT, SIGTERM) stopped the run while it played: the case under way is not judged, the cases after
    it are not run, and the run still ends with its verdicts (``RunResult.interrupted`` names the signal)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class CampaignRunner:
    """Plays one campaign against one candidate in one environment."""

    def __init__(self, loaded: LoadedCampaign, env: Environment, *, mode: Mode = Mode.DRIVER,
                 driver: DriverClient | None = None, operator: Operator | None = None,
                 run_id: str | None = None, case_ids: set[str] | None = None,
                 progress: Progress | None = None, resumed: Resumed | None = None) -> None:
        if mode is Mode.DRIVER and driver is None:
            raise ValueError("driver mode needs a driver client")
        self.loaded, self.env, self.mode = loaded, env, mode
        self.driver, self.operator = driver, operator or (Operator() if mode is Mode.OPERATOR else None)
        self.run_id = run_id or new_run_id()
        self.case_ids = case_ids
        self.progress = progress or (lambda _event: None)
        self.resumed = resumed
        self.checks = load_checks()
        load_actions()
        self.store = env.store

    @property
    def campaign(self) -> Any:
        return self.loaded.campaign

    def candidate_info(self) -> CandidateInfo:
        if self.driver is not None:
            return self.driver.info()
        return CandidateInfo(name="operator-driven candidate", version="unknown")

    def run(self, candidate: CandidateInfo | None = None) -> RunResult:
        started = self.resumed.started_at if self.resumed else utc_now()
        candidate = candidate or self.candidate_info()
        header = self.campaign.campaign
        done = self.resumed.results if self.resumed else {}
        self.store.append("run.resume" if self.resumed else "run.start", {
            "campaign": header.model_dump(), "campaign_sha256": self.loaded.sha256, "file": str(self.loaded.path),
            "requirements": self.campaign.requirements, "cases": self._plan(),
            "candidate": candidate.model_dump(), "harness_version": __version__, "mode": self.mode.value,
            "simulators": self.env.endpoints, **({"cases_done": sorted(done)} if self.resumed else {})},
            run_id=self.run_id)
        to_play = [c.id for c in self.campaign.cases if c.id not in done and self._skip_reason(c) is None]
        positions = {case_id: n for n, case_id in enumerate(to_play, 1)}
        results: dict[str, CaseResult] = dict(done)
        stop: Interrupted | None = None
        for case in self.campaign.cases:
            if case.id in results:
                continue
            if stop is not None:
                results[case.id] = self._not_run(case, stop)
                continue
            try:
                if case.id in positions:
                    self.progress(CaseProgress(positions[case.id], len(to_play), case))
                results[case.id] = self._play(case)
                if case.id in positions:
                    self.progress(CaseProgress(positions[case.id], len(to_play), case, results[case.id]))
            except Interrupted as interrupted:
                stop = interrupted
                results.setdefault(case.id, self._interrupted(case, interrupted))
        cases = [results[case.id] for case in self.campaign.cases]
        return run_result(self.loaded, self.store, self.run_id, started, cases, simulators=self.env.endpoints,
                          candidate=CandidateResult(name=candidate.name, version=candidate.version,
                                                    vendor=candidate.vendor, mode=self.mode.value,
                                                    url=self.driver.base_url if self.driver else None),
                          interrupted=stop.signal_name if stop else None)

    def _plan(self) -> list[dict[str, Any]]:
        """The cases as this run plays them, recorded at its start: what rebuilds its reports from the evidence
        alone should it be killed (:func:`esante.reports.rebuild.rebuild`)."""
        return [{"id": c.id, "title": c.title, "requirements": c.requirements, "severity": c.severity.value,
                 "skip": self._skip_reason(c)} for c in self.campaign.cases]

    def _interrupted(self, case: TestCase, stop: Interrupted) -> CaseResult:
        """The case under way when the signal came: an error saying so, with what it had exchanged so far."""
        started, t0 = utc_now(), time.perf_counter()
        begun = self.store.records(kind="case.start", run_id=self.run_id, case_id=case.id)
        since = begun[-1].seq if begun else self.store.last_seq()
        self._file_under(None)
        reason = f"interrupted ({stop.signal_name}) while this case played: not judged"
        record = self.store.append("case.verdict", {"verdict": Verdict.ERROR.value, "reason": reason},
                                   run_id=self.run_id, case_id=case.id)
        steps = [step_result(r) for r in self.store.records(kind="step", run_id=self.run_id, case_id=case.id,
                                                           since=since)]
        return self._result(case, started, t0, Verdict.ERROR, reason, _CaseState(step_results=steps), [],
                            self._observed(case, since), record)

    def _not_run(self, case: TestCase, stop: Interrupted) -> CaseResult:
        reason = self._skip_reason(case) or f"not run: the run was interrupted ({stop.signal_name})"
        record = self.store.append("case.verdict", {"verdict": Verdict.SKIPPED.value, "reason": reason},
                                   run_id=self.run_id, case_id=case.id)
        return self._result(case, utc_now(), time.perf_counter(), Verdict.SKIPPED, reason, _CaseState(), [], [],
                            record)

    # -- one test case ---------------------------------------------------------------------------------------
    def _play(self, case: TestCase) -> CaseResult:
        started, t0 = utc_now(), time.perf_counter()
        skip = self._skip_reason(case)
        if skip:
            record = self.store.append("case.verdict", {"verdict": "skipped", "reason": skip},
                                       run_id=self.run_id, case_id=case.id)
            return self._result(case, started, t0, Verdict.SKIPPED, skip, _CaseState(), [], [], record)
        dataset = load_dataset(case.preconditions.dataset or self.campaign.campaign.dataset)
        begun = self.store.append("case.start", {"title": case.title, "preconditions": case.preconditions.model_dump(
            mode="json", exclude_none=True)}, run_id=self.run_id, case_id=case.id)
        state = _CaseState(since=begun.seq)
        try:
            self._prepare(case, dataset)
            for index, step in enumerate(case.steps):
                self._step(case, index, step, dataset, state)
        except CaseSkipped as skipped:
            reason = f"skipped by the operator: {skipped.reason}"
            record = self.store.append("case.verdict", {"verdict": "skipped", "reason": reason},
                                       run_id=self.run_id, case_id=case.id)
            return self._result(case, started, t0, Verdict.SKIPPED, reason, state, [], [], record)
        except (DriverError, RuntimeError, ValueError, KeyError) as exc:
            state.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._file_under(None)
            if state.browser is not None:
                state.browser.close()
        exchanges = self._observed(case, state.since)
        checks = [] if state.error else self._judge(case, dataset, exchanges, state)
        checks += state.problems
        verdict = Verdict.ERROR if state.error else worst([c.verdict for c in checks])
        reason = state.error or verdict_reason(verdict, checks)
        record = self.store.append("case.verdict", {"verdict": verdict.value, "reason": reason,
                                                    "checks": [c.model_dump(mode="json") for c in checks]},
                                   run_id=self.run_id, case_id=case.id)
        return self._result(case, started, t0, verdict, reason, state, checks, exchanges, record)

    def _skip_reason(self, case: TestCase) -> str | None:
        if self.case_ids is not None and case.id not in self.case_ids:
            return "not selected for this run"
        if self.mode not in case.preconditions.modes:
            return f"this case is played in {', '.join(m.value for m in case.preconditions.modes)} mode only"
        return None

    def _file_under(self, case_id: str | None) -> None:
        for client in self.env.clients.values():
            client.set_context(self.run_id, case_id)

    def _prepare(self, case: TestCase, dataset: Dataset) -> None:
        unknown = set(case.preconditions.faults) - set(self.env.clients)
        if unknown:
            raise ValueError(f"faults set on simulators not in this campaign: {', '.join(sorted(unknown))}")
        self._file_under(case.id)
        for name, client in self.env.clients.items():
            client.reset()
            client.set_dataset(dataset.name)
            if case.preconditions.faults.get(name):
                client.set_faults(case.preconditions.faults[name])
        if self.driver is not None and self.mode is Mode.DRIVER:
            self.driver.reset(self.env.endpoints)

    def _step(self, case: TestCase, index: int, step: Step, dataset: Dataset, state: _CaseState) -> None:
        if step.attest is not None:
            self._attest(case, index, step, state)
            return
        if step.wait is not None:
            time.sleep(step.wait)
            state.step_results.append(StepResult(index=index, kind="wait", description=f"wait {step.wait:g} s",
                                                 outcome="waited"))
            return
        spec = ACTIONS.get(step.action or "")
        if spec is None:
            raise ValueError(f"step {index + 1}: no simulator defines the action {step.action!r}")
        params = spec.parameters(step, dataset)
        trips: list[dict[str, Any]] = []
        if self.mode is Mode.DRIVER:
            assert self.driver is not None
            started = time.perf_counter()
            report, _ = self.driver.act(spec.name, params, case.id, spec.report)
            report = self._browse(case, spec, params, report, state, trips)
            elapsed = (time.perf_counter() - started) * 1000
        else:
            assert self.operator is not None
            t = time.perf_counter()
            report = self.operator.perform(case.id, spec, step.instruction or spec.instruction, params)
            elapsed = (time.perf_counter() - t) * 1000
        payload = {"index": index, "action": spec.name, "description": spec.title, "params": params,
                   "report": report.model_dump(mode="json"), "elapsed_ms": elapsed, "mode": self.mode.value}
        if trips:
            payload["browser"] = trips
        record = self.store.append("step", payload, run_id=self.run_id, case_id=case.id)
        state.steps.append(StepObservation(index, spec.name, params, report, elapsed, seq=record.seq))
        state.step_results.append(step_result(record))

    def _browse(self, case: TestCase, spec: ActionSpec, params: dict[str, Any], report: ActionReport,
                state: _CaseState, trips: list[dict[str, Any]]) -> ActionReport:
        """Play the user's browser while the candidate redirects it; the candidate's last report stands.

        A trip that stops on a simulator's page (an error page) never reaches the candidate: the action then
        ends there, as the user would see it, and the report says so.
        """
        assert self.driver is not None
        for _ in range(MAX_BROWSER_TRIPS):
            if report.outcome is not ActionOutcome.REDIRECT:
                return report
            if not report.redirect_url:
                raise DriverError(f"{spec.name}: the candidate answered redirect without a redirect_url")
            if state.browser is None:
                state.browser = Browser(self.env.endpoints, self.env.ca_pem)
            fill = spec.browser_form(params) if spec.browser_form else None
            trip = state.browser.visit(report.redirect_url, fill)
            trips.append(trip.as_evidence())
            if trip.landed is None:
                return spec.report(outcome=ActionOutcome.ERROR, message=f"(observed by the harness's browser) "
                                                                       f"{trip.stopped}")
            report = self.driver.callback(trip.landed, case.id, spec.report)
        raise DriverError(f"{spec.name}: the candidate kept redirecting the browser ({MAX_BROWSER_TRIPS} trips)")

    def _attest(self, case: TestCase, index: int, step: Step, state: _CaseState) -> None:
        assert step.attest is not None
        if self.mode is Mode.DRIVER or self.operator is None:
            state.step_results.append(StepResult(index=index, kind="attest", description=step.attest,
                                                 outcome="not played (attestations need an operator)"))
            return
        answer = self.operator.attest(case.id, step.attest)
        blobs = {"attachment": answer.attachment} if answer.attachment is not None else None
        record = self.store.append("attestation", {"index": index, "statement": step.attest,
                                                   "confirmed": answer.confirmed, "note": answer.note,
                                                   "attachment_name": answer.attachment_name},
                                   run_id=self.run_id, case_id=case.id, blobs=blobs)
        state.steps.append(StepObservation(index, None, {}, None, attested=answer.confirmed, seq=record.seq))
        state.step_results.append(attestation_result(record))
        ref = state.step_results[-1].evidence[0]
        state.problems.append(CheckResult(
            check="operator.attestation", requirements=case.requirements,
            verdict=Verdict.PASSED if answer.confirmed else Verdict.FAILED,
            message=("confirmed by the operator: " if answer.confirmed else "the operator did not confirm: ")
            + step.attest + (f" (note: {answer.note})" if answer.note else ""), evidence=[ref]))

    def _observed(self, case: TestCase, since: int) -> list[Exchange]:
        """What the simulators journaled for the case since it began (a resumed session may have played part of
        it before being interrupted: that attempt is in the evidence, but is not judged)."""
        exchanges: list[Exchange] = []
        for client in self.env.clients.values():
            exchanges += [e for e in client.journal(self.run_id, case.id) if e.request_seq > since]
        return sorted(exchanges, key=lambda e: e.request_seq)

    def _judge(self, case: TestCase, dataset: Dataset, exchanges: list[Exchange],
               state: _CaseState) -> list[CheckResult]:
        results = []
        for expectation in case.expect:
            registered = self.checks.get(expectation.check)
            if registered is None:
                results.append(CheckResult(check=expectation.check, requirements=[], verdict=Verdict.ERROR,
                                           message=f"no check named {expectation.check!r} is registered"))
                continue
            results.append(check_result(registered, CheckContext(case.id, exchanges, state.steps, expectation.with_,
                                                                 dataset)))
        return results

    def _result(self, case: TestCase, started: str, t0: float, verdict: Verdict, reason: str, state: _CaseState,
                checks: list[CheckResult], exchanges: list[Exchange], record: Record) -> CaseResult:
        return CaseResult(
            id=case.id, title=case.title, requirements=case.requirements, severity=case.severity.value,
            verdict=verdict, reason=reason, started_at=started, duration_ms=round((time.perf_counter() - t0) * 1000, 1),
            steps=state.step_results, checks=checks, exchanges=[exchange_summary(e) for e in exchanges])


def run_result(loaded: LoadedCampaign, store: EvidenceStore, run_id: str, started: str, cases: list[CaseResult], *,
               candidate: CandidateResult, simulators: dict[str, str], interrupted: str | None = None) -> RunResult:
    """Close a run in the evidence (``run.end``, its verdict counts, the signal that stopped it) and give the
    results model the reports render."""
    counts = {v.value: sum(c.verdict == v for c in cases) for v in Verdict}
    last = store.append("run.end", {"counts": counts, **({"interrupted": interrupted} if interrupted else {})},
                        run_id=run_id)
    header = loaded.campaign.campaign
    return RunResult(
        run_id=run_id, started_at=started, finished_at=utc_now(), harness_version=__version__,
        campaign=CampaignInfo(id=header.id, version=header.version, title=header.title, file=str(loaded.path),
                              sha256=loaded.sha256, requirements=loaded.campaign.requirements),
        candidate=candidate, simulators=simulators, cases=cases, evidence_chain_head=last.chain,
        evidence_records=last.seq, interrupted=interrupted)


def verdict_reason(verdict: Verdict, checks: list[CheckResult]) -> str:
    """Why a case has its verdict: the checks that gave it."""
    if verdict is Verdict.PASSED:
        return f"all {len(checks)} check(s) passed"
    bad = [c for c in checks if c.verdict == verdict]
    return "; ".join(f"{c.check}: {c.message}" for c in bad)


class NotApplicable(Exception):
    """Raised while a check reads what this observation does not hold (what only a simulator knows, the
    candidate's reports): the check is reported not applicable, saying why, never passed."""


def check_result(registered: RegisteredCheck, ctx: CheckContext) -> CheckResult:
    """One check's verdict in one context, with the exchanges it cites."""
    requirements = list(registered.requirements)
    try:
        outcome = registered(ctx)
    except NotApplicable as exc:
        return CheckResult(check=registered.name, requirements=requirements, verdict=Verdict.SKIPPED,
                           message=f"not applicable: {exc}")
    except Exception as exc:  # a check that crashes is a harness error, never a pass
        return CheckResult(check=registered.name, requirements=requirements, verdict=Verdict.ERROR,
                           message=f"check crashed: {type(exc).__name__}: {exc}")
    refs = [EvidenceRef(seq=e.request_seq, digest=e.request_digest, kind="exchange.request",
                        label=f"{e.simulator} {e.method} {e.path}") for e in outcome.exchanges]
    return CheckResult(check=registered.name, requirements=requirements, verdict=outcome.verdict,
                       message=outcome.message, evidence=refs)
