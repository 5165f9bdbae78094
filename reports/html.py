"""The human report: one self-contained HTML file a reviewer can open, archive, or print to PDF.

Everything is inline (CSS, one tiny optional script), nothing is fetched, and the content is readable with
scripts disabled: cases and exchanges fold with ``<details>``/``<summary>``, and cases that did not pass
start unfolded. The page carries a Content-Security-Policy that only lets that one script run (by hash),
so even a hypothetical escaping slip could not execute anything.

Everything that came from outside the harness (exchange excerpts, check messages, the candidate's declared
name, version and URL) is escaped by Jinja2's autoescape; URLs are shown as text, never as links.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from esante.reports.model import CaseResult, RunResult, Verdict, worst
from esante.simulators.core.evidence import utc_now

TEMPLATES = Path(__file__).parent / "templates"
DETAIL_CHARS = 20_000
NOT_COVERED = "not covered"

#: Optional: expand/collapse buttons, and unfold everything before printing. The page works without it.
SCRIPT = ("document.getElementById('tools').hidden=false;"
          "function setAll(o){document.querySelectorAll('details').forEach(function(d){d.open=o;});}"
          "document.getElementById('expand').onclick=function(){setAll(true);};"
          "document.getElementById('collapse').onclick=function(){setAll(false);};"
          "window.addEventListener('beforeprint',function(){setAll(true);});")

_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@dataclass(frozen=True, slots=True)
class MatrixEntry:
    """One case judging one requirement, with the verdict *on that requirement*."""

    case: CaseResult
    verdict: Verdict


@dataclass(slots=True)
class MatrixRow:
    """One requirement of the traceability matrix."""

    id: str
    text: str
    entries: list[MatrixEntry] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        """Some case of the campaign judges it (even if that case was skipped in this run)."""
        return bool(self.entries)

    @property
    def judged(self) -> bool:
        """Some case that judges it was actually played in this run."""
        return any(e.verdict != Verdict.SKIPPED for e in self.entries)

    @property
    def status(self) -> str:
        return worst([e.verdict for e in self.entries]).value if self.entries else NOT_COVERED

    def with_verdict(self, verdict: Verdict) -> list[MatrixEntry]:
        return [e for e in self.entries if e.verdict == verdict]


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


def traceability(result: RunResult) -> list[MatrixRow]:
    """Rows = the campaign's requirements, then any other requirement a case names, in order of appearance."""
    rows = {rid: MatrixRow(rid, text) for rid, text in result.campaign.requirements.items()}
    for case in result.cases:
        for rid in judged_requirements(case):
            rows.setdefault(rid, MatrixRow(rid, "")).entries.append(MatrixEntry(case, verdict_on(case, rid)))
    return list(rows.values())


def _detail(value: dict[str, Any]) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str) if value else ""
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "\n… (truncated)"


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def render_html(result: RunResult, generated_at: str | None = None) -> str:
    matrix = traceability(result)
    context = {
        "result": result, "counts": result.counts(), "verdict": result.verdict.value, "matrix": matrix,
        "covered": sum(row.covered for row in matrix), "judged": sum(row.judged for row in matrix),
        "anchors": _anchors(result), "detail": _detail, "generated_at": generated_at or utc_now(),
        "script": SCRIPT, "csp": _csp(), "Verdict": Verdict,
        "unfolded": {Verdict.FAILED, Verdict.ERROR, Verdict.INCONCLUSIVE},
    }
    return _ENV.get_template("report.html").render(context)


def _anchors(result: RunResult) -> dict[str, str]:
    """Case id → a safe fragment id (ids come from the campaign file and may hold any character)."""
    return {case.id: f"case-{n}" for n, case in enumerate(result.cases, 1)}


def write_html(result: RunResult, path: Path) -> Path:
    path = Path(path)
    path.write_text(render_html(result), encoding="utf-8")
    return path
