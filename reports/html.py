"""The human report: one self-contained HTML file a reviewer can open, archive, or print to PDF.

Everything is inline (CSS, one tiny optional script), nothing is fetched, and the content is readable with
scripts disabled: cases and exchanges fold with ``<details>``/``<summary>``, and cases that did not pass
start unfolded. The page carries a Content-Security-Policy that only lets that one script run (by hash),
so even a hypothetical escaping slip could not execute anything.

Everything that came from outside the harness (exchange excerpts, headers, query strings, notes, check messages,
the candidate's declared name, version and URL) is escaped by Jinja2's autoescape, or by :func:`highlighted`
piece by piece; URLs are shown as text, never as links. The only links are the report's own anchors and the
bundle members the report names itself (``exchanges/<case>/…``, which resolve once the bundle is unpacked).

The exchange viewer shows each exchange whole: request line and query (parsed, so PSC's ``state``, ``nonce``
and ``code_challenge`` are read at a glance), request and response headers, the faults injected into it and the
simulator's notes, and the bodies. Each finding links to the exchanges it cites (``#record-<seq>``, the evidence
record's sequence number), each exchange back to its findings and to its records in the bundle, and the values a
finding names are highlighted where they occur (:mod:`esante.reports.findings`). A fragment opens what it names:
``#case-7`` or ``#record-42`` unfolds the case (and the exchange) on load, with the one script; without scripts
cases that did not pass start unfolded anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from esante.reports.bundle import exchange_member
from esante.reports.findings import ExpectedObserved, FindingView, exchange_terms, findings, segments
from esante.reports.model import (
    NOT_COVERED,
    CaseResult,
    ExchangeSummary,
    RunResult,
    Verdict,
    interruption,
    judged_requirements,
    requirement_rows,
    requirement_status,
    verdict_on,
)
from esante.reports.text import readable_body
from esante.simulators.core.evidence import utc_now

TEMPLATES = Path(__file__).parent / "templates"
DETAIL_CHARS = 20_000
QUERY_FIELDS = 200

__all__ = ["NOT_COVERED", "MatrixEntry", "MatrixRow", "judged_requirements", "render_html", "traceability",
           "verdict_on", "write_html"]

#: Optional: expand/collapse buttons, unfold everything before printing, and open what a fragment names (the
#: case, the exchange) on load and on every jump. The page works without it.
SCRIPT = ("document.getElementById('tools').hidden=false;"
          "function setAll(o){document.querySelectorAll('details').forEach(function(d){d.open=o;});}"
          "document.getElementById('expand').onclick=function(){setAll(true);};"
          "document.getElementById('collapse').onclick=function(){setAll(false);};"
          "window.addEventListener('beforeprint',function(){setAll(true);});"
          "function reveal(){var id=decodeURIComponent(location.hash.slice(1));"
          "var t=id&&document.getElementById(id);if(!t)return;"
          "for(var e=t;e;e=e.parentElement){if(e.tagName==='DETAILS')e.open=true;}t.scrollIntoView();}"
          "window.addEventListener('hashchange',reveal);reveal();")

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
        return str(requirement_status([(e.case, e.verdict) for e in self.entries]))

    def with_verdict(self, verdict: Verdict) -> list[MatrixEntry]:
        return [e for e in self.entries if e.verdict == verdict]


def traceability(result: RunResult) -> list[MatrixRow]:
    """Rows = the campaign's requirements, then any other requirement a case names, in order of appearance
    (the same rows as the JSON report's ``requirement_summary``)."""
    return [MatrixRow(rid, text, [MatrixEntry(case, verdict) for case, verdict in entries])
            for rid, text, entries in requirement_rows(result.cases, result.campaign.requirements)]


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
        "interruption": interruption(result),
        "covered": sum(row.covered for row in matrix), "judged": sum(row.judged for row in matrix),
        "anchors": _anchors(result), "detail": _detail, "generated_at": generated_at or utc_now(),
        "script": SCRIPT, "csp": _csp(), "Verdict": Verdict,
        "unfolded": {Verdict.FAILED, Verdict.ERROR, Verdict.INCONCLUSIVE},
        "viewer": CaseViewer, "highlighted": highlighted, "query_fields": query_fields, "readable": readable_body,
    }
    return _ENV.get_template("report.html").render(context)


def _anchors(result: RunResult) -> dict[str, str]:
    """Case id → a safe fragment id (ids come from the campaign file and may hold any character)."""
    return {case.id: f"case-{n}" for n, case in enumerate(result.cases, 1)}


def highlighted(text: str, terms: list[str] | None = None) -> Markup:
    """``text`` escaped, with each occurrence of ``terms`` wrapped in ``<mark>``."""
    return Markup("").join(Markup("<mark>{}</mark>").format(chunk) if marked else escape(chunk)
                           for chunk, marked in segments(text, terms or []))


def query_fields(query: str) -> list[tuple[str, str]]:
    """A query string's fields, in order (blank values kept), for the viewer's table."""
    return parse_qsl(query, keep_blank_values=True, max_num_fields=None)[:QUERY_FIELDS]


class CaseViewer:
    """What the template needs to show one case's findings and exchanges, linked both ways."""

    def __init__(self, case: CaseResult) -> None:
        self.case = case
        self.findings: list[FindingView] = findings(case)
        self.terms = exchange_terms(case)
        self._by_check = {view.number: view for view in self.findings}
        self.records = {seq for e in case.exchanges for seq in (e.request_seq, e.response_seq) if seq} | \
            {ref.seq for step in case.steps for ref in step.evidence}

    def finding(self, number: int) -> FindingView | None:
        """The finding of the case's check number ``number`` (1-based), if that check did not pass."""
        return self._by_check.get(number)

    def expected_observed(self, number: int) -> ExpectedObserved | None:
        view = self.finding(number)
        return view.expected_observed if view else None

    def cited_by(self, exchange: ExchangeSummary) -> list[FindingView]:
        """The findings citing this exchange: its viewer links back to them."""
        return [view for view in self.findings if any(e.id == exchange.id for e in view.exchanges)]

    def linked(self, seq: int) -> bool:
        """The report shows evidence record ``seq`` (an exchange's request or response, a step)."""
        return seq in self.records

    def member(self, number: int, exchange: ExchangeSummary, part: str) -> str:
        return exchange_member(self.case.id, number, exchange, part)


def write_html(result: RunResult, path: Path) -> Path:
    path = Path(path)
    path.write_text(render_html(result), encoding="utf-8")
    return path
