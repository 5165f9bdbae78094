"""Operator mode: a person plays the candidate's side when it has no driver.

For each action step the runner shows the instruction (what to do in the software, with which test
patient), waits, then asks what the software showed: the outcome, the message, and the questions the action's
kit declares for its report's own fields (the identity stored, the professional signed in...). Those answers
become the same report a driver would give, so the same checks judge them, alongside the exchanges the
simulators observed.
Attestation steps record what the person confirms, with an optional attached file (a screenshot).

Input and output are injectable so tests can play the person at the prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from esante.harness.actions import ActionSpec
from esante.harness.driver import ActionOutcome, ActionReport, read_report

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024

Ask = Callable[[str], str]


@dataclass(slots=True)
class Attestation:
    confirmed: bool
    note: str
    attachment_name: str | None = None
    attachment: bytes | None = None


class Operator:
    """Prompts a person; ``ask`` defaults to :func:`input`."""

    def __init__(self, console: Console | None = None, ask: Ask | None = None) -> None:
        self.console = console or Console()
        self.ask = ask or input

    def _prompt(self, question: str, default: str = "") -> str:
        suffix = f" [{default}]" if default else ""
        answer = self.ask(f"{question}{suffix}: ").strip()
        return answer or default

    def perform(self, case_id: str, spec: ActionSpec, instruction: str, params: dict[str, Any]) -> ActionReport:
        self.console.print(Panel(instruction, title=f"{case_id} — {spec.title}", border_style="cyan"))
        self._prompt("Press Enter once done in the software")
        # a person follows redirects in their own browser: "redirect" is a driver's answer, never theirs
        outcomes = [o.value for o in ActionOutcome if o is not ActionOutcome.REDIRECT]
        choices = "/".join(outcomes)
        while True:
            outcome = self._prompt(f"What did the software report? ({choices})")
            if outcome in outcomes:
                break
            self.console.print(f"[red]Please answer one of: {choices}[/red]")
        report: dict[str, Any] = {"outcome": outcome, "message": self._prompt("Message shown (optional)")}
        if outcome == "error":
            report["error_code"] = self._prompt("Error code shown") or None
        if spec.operator_questions is not None:
            report |= spec.operator_questions(self._prompt, params, outcome)
        return read_report(report, spec.report, f"the operator's answers to {spec.name}")

    def attest(self, case_id: str, statement: str) -> Attestation:
        self.console.print(Panel(statement, title=f"{case_id} — please confirm", border_style="yellow"))
        answer = self._prompt("Is this true? (yes/no)").lower()
        note = self._prompt("Note (optional)")
        path = self._prompt("File to attach, e.g. a screenshot (optional)")
        attestation = Attestation(answer in ("y", "yes", "o", "oui"), note)
        if path:
            file = Path(path)
            if not file.is_file() or file.stat().st_size > MAX_ATTACHMENT_BYTES:
                self.console.print(f"[red]Not attached: {path} is not a file under {MAX_ATTACHMENT_BYTES} bytes[/red]")
            else:
                attestation.attachment_name, attestation.attachment = file.name, file.read_bytes()
        return attestation
