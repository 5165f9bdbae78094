"""What a run prints for people at the end: the per-requirement summary and what to do next."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from esante.reports.model import VERDICT_ORDER, RequirementCase, RunResult, Verdict

COLOURS = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim", "inconclusive": "yellow",
           "not covered": "red"}
MAX_IDS = 8


def requirement_table(result: RunResult) -> Table:
    """One row per requirement: its status (worst verdict of the checks judging it) and the cases that did not
    pass it (passed and skipped ones counted), as ``report.json``'s ``requirement_summary`` says."""
    table = Table("requirement", "status", "cases", title="Requirements", title_justify="left")
    for row in result.requirement_summary:
        status = str(row.status)
        colour = COLOURS.get(status, "")
        table.add_row(row.id, f"[{colour}]{status}[/{colour}]" if colour else status, _cases(row.cases))
    return table


def _cases(cases: Sequence[RequirementCase]) -> str:
    parts = []
    for verdict in VERDICT_ORDER:
        ids = [c.case for c in cases if c.verdict == verdict]
        if ids:
            shown = ", ".join(ids[:MAX_IDS]) + (f" (+{len(ids) - MAX_IDS})" if len(ids) > MAX_IDS else "")
            counted = verdict in (Verdict.PASSED, Verdict.SKIPPED)  # named in the report, counted here
            parts.append(f"{len(ids)} {verdict.value}" if counted else f"{verdict.value}: {shown}")
    return "; ".join(parts) or "no case"


def not_passed(result: RunResult) -> list[str]:
    """The ids of the cases that failed, broke or stayed inconclusive: what to play again."""
    return [c.id for c in result.cases if c.verdict in (Verdict.FAILED, Verdict.ERROR, Verdict.INCONCLUSIVE)]


def what_next(result: RunResult, html: Path, pdf: Path, bundle: Path, rerun: Sequence[str]) -> list[str]:
    """The next steps after a run: open the report, verify the bundle, play the cases that did not pass again
    (``rerun`` is the command that played this run, without its ``--case`` options)."""
    steps = [f"open {html} (or {pdf})", f"esante verify {shlex.quote(str(bundle))}"]
    again = not_passed(result)
    if again:
        steps.append(shlex.join([*rerun, *(arg for case in again for arg in ("--case", case))]))
    return steps
