"""What ``esante run`` prints while it plays.

One line per case as soon as it is judged, written and flushed at once so that a CI log shows the run as it
goes (``[ 7/17] failed       INSI-07 Unknown birth day and month (0.4 s)``), then, for a case that did not
pass, one line per check that did not, with the requirement ids it judges and its reason (cut, if ever, at a
word and with an ellipsis: the whole reason is in the reports). On a terminal, a progress bar stays under
those lines while the run lasts.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from esante.harness.runner import CaseProgress
from esante.reports.model import CaseResult, Verdict

COLOURS = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim", "inconclusive": "yellow"}
MAX_REASON = 1000  # characters of one reason in the log; the reports hold every word
INDENT = " " * 8


def shorten(text: str, limit: int = MAX_REASON) -> str:
    """``text`` whole when it fits, else cut at the last word boundary before ``limit``, ending with "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + " …"


def failure_lines(result: CaseResult) -> list[str]:
    """Why a case did not pass: each check that did not, with the requirements it judges; else the reason (an
    error, a case the operator skipped)."""
    lines = [f"{c.check} [{', '.join(c.requirements) or 'no requirement'}]: {shorten(c.message)}"
             for c in result.checks if c.verdict not in (Verdict.PASSED, Verdict.SKIPPED)]
    return lines or [shorten(result.reason)]


def case_line(event: CaseProgress) -> Text:
    assert event.result is not None
    return result_line(event.result, event.position, event.total)


def result_line(result: CaseResult, position: int, total: int) -> Text:
    width, verdict = len(str(total)), result.verdict.value
    return Text.assemble(f"[{position:>{width}}/{total}] ", (f"{verdict:<12}", COLOURS[verdict]),
                         f" {result.id} {result.title} ({result.duration_ms / 1000:.1f} s)")


def print_results(console: Console, results: list[CaseResult]) -> None:
    """Cases judged all at once (``esante judge``), printed as a run prints them one by one."""
    for position, result in enumerate(results, 1):
        console.print(result_line(result, position, len(results)), soft_wrap=True, highlight=False)
        if result.verdict is not Verdict.PASSED:
            for line in failure_lines(result):
                console.print(Text(INDENT + line, style="dim"), soft_wrap=True, highlight=False)


class RunDisplay:
    """The progress callback of a run (``live``: with a progress bar, for a terminal where no one is prompted)."""

    def __init__(self, console: Console, *, live: bool) -> None:
        self.console = console
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True) if live else None
        self._task: TaskID | None = None

    def __enter__(self) -> RunDisplay:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, event: CaseProgress) -> None:
        if event.result is None:
            self._starting(event)
            return
        self.console.print(case_line(event), soft_wrap=True, highlight=False)
        if event.result.verdict is not Verdict.PASSED:  # a case played and skipped was skipped by the operator
            for line in failure_lines(event.result):
                self.console.print(Text(INDENT + line, style="dim"), soft_wrap=True, highlight=False)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=event.position)

    def _starting(self, event: CaseProgress) -> None:
        if self._bar is None:
            return
        description = f"{event.case.id} {event.case.title}"
        if self._task is None:
            self._task = self._bar.add_task(description, total=event.total, completed=event.position - 1)
        else:
            self._bar.update(self._task, description=description)
