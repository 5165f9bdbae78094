"""What a run produces: verdicts per check and per test case, and the run's identity.

These models are the single source of every report (JSON, JUnit XML, HTML, evidence bundle); the JSON
report is ``RunResult.model_dump(mode="json")`` and its published schema is generated from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    """One observed exchange as reports show it (bodies are in the evidence bundle, by digest)."""

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


class RunResult(Model):
    """One run of one campaign against one candidate."""

    schema_version: str = "1.0"
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

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for c in self.cases if c.verdict == v) for v in Verdict}

    @property
    def verdict(self) -> Verdict:
        return worst([c.verdict for c in self.cases if c.verdict != Verdict.SKIPPED]) \
            if any(c.verdict != Verdict.SKIPPED for c in self.cases) else Verdict.SKIPPED
