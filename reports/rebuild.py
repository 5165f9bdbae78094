"""A run's results rebuilt from its evidence store alone, and the summaries of exchanges every report shows.

``esante report RUN_DIR`` on a run that was killed (SIGKILL, a power cut: nothing could write its reports) reads
everything back from ``evidence.sqlite``: the run's start record names the campaign as played (its header,
requirements, and each case's id, title, requirements, severity and why the run would skip it), each case has
its start, steps and verdict records, each simulator its exchanges. A case begun but never judged is an error
saying it was interrupted; a case never begun is skipped as not run; a run without its end record gets an end
record now (``rebuilt``) and ``interrupted = "killed"``, so the reports and the bundle say it is incomplete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from esante.reports.model import (
    CampaignInfo,
    CandidateInfo,
    CaseResult,
    CheckResult,
    EvidenceRef,
    ExchangeSummary,
    RunResult,
    StepResult,
    Verdict,
)
from esante.simulators.core.evidence import EvidenceStore, Record, sha256_hex, utc_now
from esante.simulators.core.journal import Exchange, load_exchanges
from esante.simulators.kits.xml import pretty

EXCERPT_CHARS = 20_000
RUN_STARTS = ("run.start", "run.resume")
KILLED = "killed"


class NoRunRecorded(ValueError):
    """The evidence store holds no run the harness began (no ``run.start`` record)."""


def exchange_summary(e: Exchange) -> ExchangeSummary:
    """An exchange as the reports show it."""
    notes = dict(e.notes)
    operation, faults = notes.pop("operation", None), notes.pop("injected_faults", None) or []
    return ExchangeSummary(
        id=e.id, simulator=e.simulator, received_at=e.received_at, method=e.method, path=e.path,
        status=e.status, outcome=e.outcome, operation=operation,
        client_cert_subject=e.client_cert_subject, duration_ms=e.duration_ms,
        request_sha256=sha256_hex(e.request_body),
        response_sha256=sha256_hex(e.response_body) if e.response_seq else None,
        request_excerpt=pretty(e.request_body)[:EXCERPT_CHARS],
        response_excerpt=pretty(e.response_body)[:EXCERPT_CHARS],
        request_seq=e.request_seq, response_seq=e.response_seq,
        scheme=e.scheme, query=e.query, request_headers=list(e.request_headers),
        response_headers=list(e.response_headers), request_truncated=e.request_truncated,
        injected_faults=list(faults), notes=notes, request_record_digest=e.request_digest,
        response_record_digest=e.response_digest)


def evidence_ref(record: Record, label: str = "") -> EvidenceRef:
    return EvidenceRef(seq=record.seq, digest=record.digest, kind=record.kind, label=label)


def step_result(record: Record) -> StepResult:
    """A step as the reports show it, from its ``step`` record (what the candidate reported)."""
    p = record.payload
    report = {k: v for k, v in p["report"].items() if v is not None}
    return StepResult(index=p["index"], kind="action", description=p.get("description") or p["action"],
                      outcome=str(report.get("outcome", "")),
                      detail={"params": p["params"], "report": report, "elapsed_ms": round(p["elapsed_ms"], 1),
                              **({"browser": p["browser"]} if p.get("browser") else {})},
                      evidence=[evidence_ref(record, f"step {p['index'] + 1}")])


def attestation_result(record: Record) -> StepResult:
    """An attestation as the reports show it, from its record (what the person confirmed)."""
    p = record.payload
    return StepResult(index=p["index"], kind="attest", description=p["statement"],
                      outcome="confirmed" if p["confirmed"] else "not confirmed", detail={"note": p.get("note")},
                      evidence=[evidence_ref(record, f"attestation {p['index'] + 1}")])


def rebuild(store: EvidenceStore, run_id: str | None = None, *, interrupted: str = KILLED) -> RunResult:
    """The results of run ``run_id`` (default: the last run the store holds), from its records alone; a run that
    never reached its end is closed in the evidence now, as ``interrupted`` (killed, unless the caller knows)."""
    start = _run_start(store, run_id)
    records = store.records(run_id=start.run_id)
    end = next((r for r in reversed(records) if r.kind == "run.end"), None)
    cause = end.payload.get("interrupted") if end else interrupted
    cases = [_case(store, start.run_id, plan, records, cause) for plan in start.payload.get("cases", [])]
    if end is None:
        end = store.append("run.end", {"counts": _counts(cases), "interrupted": cause, "rebuilt": True},
                           run_id=start.run_id)
    first = next(r for r in records if r.kind in RUN_STARTS)
    p = start.payload
    header = p["campaign"]
    return RunResult(
        run_id=start.run_id or "", started_at=first.recorded_at, finished_at=end.recorded_at,
        harness_version=p.get("harness_version", "unknown"),
        campaign=CampaignInfo(id=header["id"], version=header["version"], title=header["title"],
                              file=p.get("file", ""), sha256=p.get("campaign_sha256", ""),
                              requirements=p.get("requirements", {})),
        candidate=CandidateInfo(mode=p.get("mode", "driver"), **{k: v for k, v in p["candidate"].items()
                                                                 if k in ("name", "version", "vendor", "url")}),
        simulators=p.get("simulators", {}), cases=cases, evidence_chain_head=end.chain, evidence_records=end.seq,
        interrupted=cause)


def _run_start(store: EvidenceStore, run_id: str | None) -> Record:
    starts = [r for kind in RUN_STARTS for r in store.records(kind=kind, run_id=run_id)]
    if not starts:
        raise NoRunRecorded(f"{store.path}: no run recorded" + (f" under {run_id}" if run_id else ""))
    last = max(starts, key=lambda r: r.seq)
    if "cases" not in last.payload:
        raise NoRunRecorded(f"{store.path}: run {last.run_id} was recorded by a harness that did not name its "
                            "cases in the evidence: it cannot be rebuilt")
    return last


def _case(store: EvidenceStore, run_id: str | None, plan: dict[str, Any], records: list[Record],
          interrupted: str | None) -> CaseResult:
    mine = [r for r in records if r.case_id == plan["id"]]
    begun = next((r for r in reversed(mine) if r.kind == "case.start"), None)
    verdict = next((r for r in reversed(mine) if r.kind == "case.verdict"), None)
    since = begun.seq if begun else 0
    steps = [step_result(r) if r.kind == "step" else attestation_result(r)
             for r in mine if r.seq > since and r.kind in ("step", "attestation")]
    exchanges = [exchange_summary(e) for e in load_exchanges(store, run_id=run_id, case_id=plan["id"], since=since)]
    base = {"id": plan["id"], "title": plan["title"], "requirements": plan["requirements"],
            "severity": plan["severity"], "steps": steps, "exchanges": exchanges}
    if verdict is not None:
        v = verdict.payload
        return CaseResult(**base, verdict=Verdict(v["verdict"]), reason=v["reason"],
                          started_at=(begun or verdict).recorded_at, duration_ms=_ms(begun, verdict),
                          checks=[CheckResult.model_validate(c) for c in v.get("checks", [])])
    if begun is not None:
        return CaseResult(**base, verdict=Verdict.ERROR, started_at=begun.recorded_at, duration_ms=0,
                          reason=f"interrupted ({interrupted}) while this case played: not judged")
    reason = plan.get("skip") or f"not run: the run was interrupted ({interrupted})"
    return CaseResult(**base, verdict=Verdict.SKIPPED, reason=reason, started_at=utc_now(), duration_ms=0)


def _ms(begun: Record | None, ended: Record) -> float:
    if begun is None:
        return 0.0
    elapsed = datetime.fromisoformat(ended.recorded_at) - datetime.fromisoformat(begun.recorded_at)
    return round(elapsed.total_seconds() * 1000, 1)


def _counts(cases: list[CaseResult]) -> dict[str, int]:
    return {v.value: sum(c.verdict == v for c in cases) for v in Verdict}
