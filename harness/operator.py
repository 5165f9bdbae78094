"""Operator mode: a person plays the candidate's side when it has no driver.

At the start the person is shown where the simulators are (the URLs and the CA file to point their software
at). For each action step the runner shows the instruction (what to do in the software, with which test
patient, as a readable card), waits, then asks what the software showed: the outcome (only those of the step's
service), the message, and the questions the action's kit declares for its report's own fields (the identity
stored, the professional signed in...). Those answers become the same report a driver would give, so the same
checks judge them, alongside the exchanges the simulators observed. An answer the report cannot hold (a
matricule of 12 characters) is asked again, that question alone, saying why.
Attestation steps record what the person confirms, with an optional attached file (a screenshot).

At a step's first prompt the person may type ``skip``: the case is skipped, with the reason they give.

Input and output are injectable so tests can play the person at the prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esante.harness.actions import ActionSpec, Ask
from esante.harness.driver import ActionOutcome, ActionReport

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
SKIP = "skip"
YES = ("y", "yes", "o", "oui")

Prompt = Callable[[str], str]


class CaseSkipped(Exception):
    """The person skipped the case; ``reason`` is theirs, for the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Attestation:
    confirmed: bool
    note: str
    attachment_name: str | None = None
    attachment: bytes | None = None


class Operator:
    """Prompts a person; ``ask`` defaults to :func:`input`."""

    def __init__(self, console: Console | None = None, ask: Prompt | None = None) -> None:
        self.console = console or Console()
        self.ask = ask or input

    def _prompt(self, question: str, default: str = "") -> str:
        suffix = f" [{default}]" if default else ""
        answer = self.ask(f"{question}{suffix}: ").strip()
        return answer or default

    def _gate(self, question: str) -> str:
        """The first prompt of a step: ``skip`` there skips the case."""
        answer = self._prompt(f"{question} (or type {SKIP} to skip this case)")
        if answer.lower() == SKIP:
            raise CaseSkipped(self._prompt("Why skip this case? (goes into the report)") or "no reason given")
        return answer

    def introduce(self, endpoints: Mapping[str, str], ca_file: Path | None) -> None:
        """What the person points their software at before the first case."""
        table = Table.grid(padding=(0, 2))
        for name, url in endpoints.items():
            table.add_row(Text(name, style="bold"), Text(url))
        table.add_row(Text("CA file", style="bold"),
                      Text(str(ca_file) if ca_file else "(plain HTTP: no certificate to trust)"))
        how = Text("Your software calls these simulators (trusting the CA file for HTTPS). At each step, do what "
                   "is asked in your software, press Enter, then say what it showed. Type skip at a step's first "
                   "prompt to skip its case with a reason; Ctrl-C stops, and --resume takes up where you stopped.")
        self.console.print(Panel(Group(table, Text(), how), title="Operator mode", border_style="cyan"))

    def perform(self, case_id: str, spec: ActionSpec, instruction: str, params: dict[str, Any]) -> ActionReport:
        """Show the step (``instruction`` is a template over ``params``), then ask what the software reported."""
        shown = Group(Text(instruction_text(instruction, params)), Text(), card(params))
        self.console.print(Panel(shown, title=f"{case_id} — {spec.title}", border_style="cyan"))
        self._gate("Press Enter once done in the software")
        outcome = self._outcome(spec)
        base: dict[str, Any] = {"outcome": outcome, "message": self._prompt("Message shown (optional)")}
        if outcome == ActionOutcome.ERROR.value:
            base["error_code"] = self._prompt("Error code shown") or None
        return self._report(spec, params, base)

    def _outcome(self, spec: ActionSpec) -> str:
        # a person follows redirects in their own browser: "redirect" is a driver's answer, never theirs
        offered = [o.value for o in spec.outcomes or ActionOutcome if o is not ActionOutcome.REDIRECT]
        choices = ", ".join(f"{n} {o}" for n, o in enumerate(offered, 1))
        while True:
            answer = self._prompt(f"What did the software report? ({choices})")
            if answer in offered:
                return answer
            if answer.isdigit() and 1 <= int(answer) <= len(offered):
                return offered[int(answer) - 1]
            self.console.print(Text(f"Please answer one of: {choices}", style="red"))

    def _report(self, spec: ActionSpec, params: dict[str, Any], base: dict[str, Any]) -> ActionReport:
        """Ask the kit's questions until the report's model takes the answers; a refused answer is asked again
        (its question alone when the kit said where it goes, else every question, pre-filled)."""
        answers: dict[str, str] = {}
        refused: dict[str, str] = {}
        while True:
            asked: set[str] = set()
            fields = (spec.operator_questions(self._asker(answers, refused, asked), params, base["outcome"])
                      if spec.operator_questions else {})
            try:
                return spec.report.model_validate({k: v for k, v in {**base, **fields}.items() if v is not None})
            except ValidationError as exc:
                refused = {".".join(str(p) for p in error["loc"]): error["msg"] for error in exc.errors()}
            for where, why in refused.items():
                self.console.print(Text(f"Not accepted: {where}: {why}", style="red"))
            if not all(_under(where, asked) for where in refused):
                refused = {"": "asked again"}

    def _asker(self, answers: dict[str, str], refused: dict[str, str], asked: set[str]) -> Ask:
        def ask(question: str, default: str = "", field: str | None = None) -> str:
            if field is not None:
                asked.add(field)
            again = "" in refused or (field is not None and any(_under(where, {field}) for where in refused))
            if question not in answers or again:
                answers[question] = self._prompt(question, answers.get(question, default))
            return answers[question]

        return ask

    def attest(self, case_id: str, statement: str) -> Attestation:
        self.console.print(Panel(Text(statement), title=f"{case_id} — please confirm", border_style="yellow"))
        answer = self._gate("Is this true? (yes/no)").lower()
        note = self._prompt("Note (optional)")
        path = self._prompt("File to attach, e.g. a screenshot (optional)")
        attestation = Attestation(answer in YES, note)
        if path:
            file = Path(path)
            if not file.is_file() or file.stat().st_size > MAX_ATTACHMENT_BYTES:
                self.console.print(Text(f"Not attached: {path} is not a file under {MAX_ATTACHMENT_BYTES} bytes",
                                        style="red"))
            else:
                attestation.attachment_name, attestation.attachment = file.name, file.read_bytes()
        return attestation


def _under(where: str, fields: set[str]) -> bool:
    """Whether the refused location ``where`` (``identity.traits.first_names.0``) is one of ``fields`` or in it."""
    return any(where == f or where.startswith(f + ".") for f in fields)


# -- the step, as a person reads it ------------------------------------------------------------------------------
def instruction_text(template: str, params: dict[str, Any]) -> str:
    """The instruction with its parameters as words: ``{traits}`` reads ``birth name DUPONT; first names JEAN;
    sex M...``, not as a Python dict (``{traits[birth_name]}`` still picks one field)."""
    return template.format_map(_Shown(params))


class _Shown(dict[str, Any]):
    def __getitem__(self, key: str) -> Any:
        return _shown(super().__getitem__(key))

    def __format__(self, spec: str) -> str:
        return "; ".join(f"{_label(k)} {format(_shown(v), spec)}" for k, v in self.items() if not _empty(v))


class _ShownList(list[Any]):
    def __format__(self, spec: str) -> str:
        return " ".join(format(_shown(v), spec) for v in self)


def _shown(value: Any) -> Any:
    if isinstance(value, dict):
        return _Shown(value)
    if isinstance(value, list):
        return _ShownList(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def card(params: dict[str, Any]) -> Table:
    """The step's parameters as a card: one line per field, nested ones indented (a patient's traits, INS...)."""
    table = Table.grid(padding=(0, 2))
    for label, value in _rows(params, ""):
        table.add_row(Text(label, style="bold"), Text(value))
    return table


def _rows(values: dict[str, Any], indent: str) -> Iterator[tuple[str, str]]:
    for key, value in values.items():
        if _empty(value):
            continue
        if isinstance(value, dict):
            yield indent + _label(key), ""
            yield from _rows(value, indent + "  ")
        else:
            yield indent + _label(key), str(format(_shown(value), ""))


def _label(key: str) -> str:
    return key.replace("_", " ")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}
