"""What a run produces: verdicts per check and per test case, and the run's identity.

These models are the single source of every report (JSON, JUnit XML, HTML, evidence bundle); the JSON
report is ``RunResult.model_dump(mode="json")`` and its published schema is generated from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"            # the harness or the candidate's driver broke; nothing was judged
    SKIPPED = "skipped"        # not played (filtered out, or needs a mode this run is not in)
    INCONCLUSIVE = "inconclusive"  # played, but what was observed does not allow a judgement


#: Worst first: a case takes the worst verdict of its checks.
VERDICT_ORDER = [Verdict.ERROR, Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.PASSED, Verdict.SKIPPED]


def worst(verdicts: list[Verdict]) -> Verdict:
    return min(verdicts, key=VERDICT_ORDER.index) if verdicts else Verdict.INCONCLUSIVE


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceRef(Model):
    """A pointer into the evidence store: the record's sequence number and SHA-256 digest."""

    seq: int
    digest: str
    kind: str
    label: str = ""


class CheckResult(Model):
    check: str = Field(description="registered check name, e.g. insi.security_context")
    requirements: list[str]
    verdict: Verdict
    message: str = Field(description="what was found; on failure, what was wrong and where")
    evidence: list[EvidenceRef] = Field(default_factory=list)


class ExchangeSummary(Model):
    """One observed exchange as reports show it: the request line, headers and query, what the simulator noted
    (injected faults among it), and bounded excerpts of the bodies (whole bodies are in the evidence bundle,
    by digest)."""

    id: str
    simulator: str
    received_at: str
    method: str
    path: str
    status: int | None
    outcome: str
    operation: str | None = None
    client_cert_subject: str | None = None
    duration_ms: float | None = None
    request_sha256: str
    response_sha256: str | None = None
    request_excerpt: str = Field(default="", description="pretty-printed request body (bounded)")
    response_excerpt: str = ""
    request_seq: int
    response_seq: int | None = None
    # since schema 1.1: everything the journal holds about the exchange but the bodies
    scheme: str = ""
    query: str = Field(default="", description="the raw query string, without the '?'")
    request_headers: list[tuple[str, str]] = Field(default_factory=list, description="as received, in order")
    response_headers: list[tuple[str, str]] = Field(default_factory=list, description="as answered, in order")
    request_truncated: bool = Field(default=False, description="the body was over the size limit: the journal "
                                                               "kept a prefix")
    injected_faults: list[dict[str, Any]] = Field(default_factory=list, description="the fault rules that fired "
                                                                                    "for this exchange")
    notes: dict[str, Any] = Field(default_factory=dict, description="the simulator's other notes on the exchange")
    request_record_digest: str = Field(default="", description="digest of the exchange.request evidence record")
    response_record_digest: str | None = Field(default=None, description="digest of the exchange.response record")


class StepResult(Model):
    index: int
    kind: str = Field(description="action | attest | wait")
    description: str
    outcome: str = Field(description="what the candidate (or the person) answered, in short")
    detail: dict[str, Any] = Field(default_factory=dict)
    evidence: list[EvidenceRef] = Field(default_factory=list)


class CaseResult(Model):
    id: str
    title: str
    requirements: list[str]
    severity: str
    verdict: Verdict
    reason: str
    started_at: str
    duration_ms: float
    steps: list[StepResult] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    exchanges: list[ExchangeSummary] = Field(default_factory=list)


class CandidateInfo(Model):
    name: str
    version: str
    vendor: str | None = None
    url: str | None = None
    mode: str = Field(description="driver | operator")


class CampaignInfo(Model):
    id: str
    version: str
    title: str
    file: str
    sha256: str = Field(description="SHA-256 of the campaign file as played")
    requirements: dict[str, str] = Field(default_factory=dict, description="requirement id -> wording")


NOT_COVERED: Literal["not covered"] = "not covered"


def judged_requirements(case: CaseResult) -> list[str]:
    """The requirements a case judges: its own, and those of its checks."""
    return list(dict.fromkeys([*case.requirements, *(r for c in case.checks for r in c.requirements)]))


def verdict_on(case: CaseResult, requirement: str) -> Verdict:
    """A case's verdict on one requirement: the worst of the checks citing it. A case that failed on
    another requirement has not failed this one; a requirement no check cites takes the case's verdict."""
    citing = [c.verdict for c in case.checks if requirement in c.requirements]
    if case.verdict in (Verdict.SKIPPED, Verdict.ERROR) or not citing:
        return case.verdict
    return worst(citing)


#: One requirement: its id, its wording, and each case judging it with the verdict on that requirement.
RequirementRow = tuple[str, str, list[tuple[CaseResult, Verdict]]]


def requirement_rows(cases: list[CaseResult], wording: dict[str, str]) -> list[RequirementRow]:
    """The campaign's requirements, then any other requirement a case names, in order of appearance; the
    one computation behind the JSON summary, the HTML matrix, the PDF and the terminal."""
    rows: dict[str, RequirementRow] = {rid: (rid, text, []) for rid, text in wording.items()}
    for case in cases:
        for rid in judged_requirements(case):
            rows.setdefault(rid, (rid, "", []))[2].append((case, verdict_on(case, rid)))
    return list(rows.values())


def requirement_status(entries: list[tuple[CaseResult, Verdict]]) -> Verdict | Literal["not covered"]:
    """The worst verdict of the cases judging a requirement; "not covered" when no case of the campaign does."""
    return worst([verdict for _, verdict in entries]) if entries else NOT_COVERED


class RequirementCase(Model):
    case: str = Field(description="case id")
    verdict: Verdict = Field(description="the case's verdict on this requirement (the worst of its checks citing "
                                         "it; the case's own verdict when none does, or when it was skipped or "
                                         "broke)")


class RequirementSummary(Model):
    """One requirement's status in the run: the worst verdict of the cases judging it."""

    id: str
    text: str = Field(default="", description="the campaign's wording (empty for a requirement only a check names)")
    status: Verdict | Literal["not covered"]
    cases: list[RequirementCase] = Field(default_factory=list, description="every case judging it, in order")


class RunResult(Model):
    """One run of one campaign against one candidate."""

    schema_version: str = "1.2"
    run_id: str
    started_at: str
    finished_at: str
    harness_version: str
    campaign: CampaignInfo
    candidate: CandidateInfo
    simulators: dict[str, str] = Field(default_factory=dict, description="simulator name -> base URL")
    cases: list[CaseResult]
    evidence_chain_head: str = Field(description="chain value of the last evidence record of the run")
    evidence_records: int
    # since schema 1.2
    interrupted: str | None = Field(default=None, description=(
        "why the run stopped before its end: SIGINT or SIGTERM (the case under way is an error saying so, the "
        "cases after it skipped as not run), or killed (nothing could be written: esante report rebuilt the "
        "reports from the evidence store); null for a run that played to its end"))

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        """A report read back (``esante report``) carries its derived summary: it is recomputed, not trusted."""
        if isinstance(data, dict) and "requirement_summary" in data:
            data = {k: v for k, v in data.items() if k != "requirement_summary"}
        return data

    @computed_field(description="status per requirement (since schema 1.1), derived from the cases")  # type: ignore[prop-decorator]
    @property
    def requirement_summary(self) -> list[RequirementSummary]:
        return [RequirementSummary(id=rid, text=text, status=requirement_status(entries),
                                   cases=[RequirementCase(case=case.id, verdict=v) for case, v in entries])
                for rid, text, entries in requirement_rows(self.cases, self.campaign.requirements)]

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for c in self.cases if c.verdict == v) for v in Verdict}

    @property
    def verdict(self) -> Verdict:
        return worst([c.verdict for c in self.cases if c.verdict != Verdict.SKIPPED]) \
            if any(c.verdict != Verdict.SKIPPED for c in self.cases) else Verdict.SKIPPED


def interruption(result: RunResult) -> str:
    """What a run stopped before its end says about itself, in one line (empty for a complete run): the reports,
    the terminal and the bundle's verifier all say it in these words."""
    if not result.interrupted:
        return ""
    cause = ("killed before its end (these reports were rebuilt from the evidence store)"
             if result.interrupted == "killed" else f"interrupted by {result.interrupted}")
    broken = [c.id for c in result.cases if c.verdict is Verdict.ERROR and c.reason.startswith("interrupted")]
    not_run = sum(c.verdict is Verdict.SKIPPED and c.reason.startswith("not run") for c in result.cases)
    return (f"INCOMPLETE RUN: {cause}; " + (f"{', '.join(broken)} not judged, " if broken else "")
            + f"{not_run} case(s) not run")
