"""Checks: small named functions, each judging one rule, registered with the requirement ids they judge.

A test kit keeps its checks in its ``checks.py`` (``scenarios/insi/checks.py``); the harness imports it through
the kit's entry point (:mod:`esante.harness.kits`). Kit authors use them through :mod:`esante.harness.suite`::

    @check("insi.security_context", requirements=["INSI-SEC-01"],
           title="Every call carries ContexteBAM, ContexteLPS and wsse:Security")
    def security_context(ctx: CheckContext) -> Outcome:
        ...
        return fail("call 2 has no ContexteLPS header", exchange)

A check sees only what was observed in its test case (:class:`CheckContext`) and returns an
:class:`Outcome`: passed, failed (saying what was wrong and where) or inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from esante.harness.driver import ActionReport
from esante.harness.kits import load_kits
from esante.reports.model import Verdict
from esante.simulators.core.journal import Exchange
from esante.simulators.dataset import Dataset


@dataclass(slots=True)
class StepObservation:
    """One step as played: the action, the parameters sent, what the candidate (or person) reported."""

    index: int
    action: str | None
    params: dict[str, Any]
    report: ActionReport | None
    elapsed_ms: float | None = None
    attested: bool | None = None
    seq: int | None = None  # evidence record of the step


@dataclass(slots=True)
class CheckContext:
    case_id: str
    exchanges: list[Exchange]
    steps: list[StepObservation]
    params: dict[str, Any]
    dataset: Dataset
    candidate: dict[str, Any] = field(default_factory=dict)

    def of(self, simulator: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.simulator == simulator]

    def reports(self, action_prefix: str = "") -> list[tuple[StepObservation, ActionReport]]:
        return [(s, s.report) for s in self.steps
                if s.report is not None and (s.action or "").startswith(action_prefix)]

    def last_report(self, action_prefix: str = "") -> ActionReport | None:
        found = self.reports(action_prefix)
        return found[-1][1] if found else None


@dataclass(slots=True)
class Outcome:
    verdict: Verdict
    message: str
    exchanges: list[Exchange] = field(default_factory=list)


def ok(message: str, *exchanges: Exchange) -> Outcome:
    return Outcome(Verdict.PASSED, message, list(exchanges))


def fail(message: str, *exchanges: Exchange) -> Outcome:
    return Outcome(Verdict.FAILED, message, list(exchanges))


def inconclusive(message: str, *exchanges: Exchange) -> Outcome:
    return Outcome(Verdict.INCONCLUSIVE, message, list(exchanges))


class Judged(Exception):
    """Raised (through :func:`stop`) by a check's helper that already knows the outcome, such as "nothing
    to judge: no call was observed", so checks read straight through instead of testing every helper."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def stop(outcome: Outcome) -> NoReturn:
    raise Judged(outcome)


CheckFunction = Callable[[CheckContext], Outcome]


@dataclass(frozen=True, slots=True)
class RegisteredCheck:
    name: str
    requirements: tuple[str, ...]
    title: str
    function: CheckFunction

    def __call__(self, ctx: CheckContext) -> Outcome:
        try:
            return self.function(ctx)
        except Judged as judged:
            return judged.outcome


REGISTRY: dict[str, RegisteredCheck] = {}


def check(name: str, *, requirements: list[str], title: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function`` as the check ``name``; names are unique across all protocols."""

    def register(function: CheckFunction) -> CheckFunction:
        existing = REGISTRY.get(name)
        if existing is not None and existing.function.__qualname__ != function.__qualname__:
            raise ValueError(f"check {name!r} registered twice ({existing.function.__module__})")
        REGISTRY[name] = RegisteredCheck(name, tuple(requirements), title, function)
        return function

    return register


def load_checks() -> dict[str, RegisteredCheck]:
    """Import every test kit's checks; return the registry."""
    load_kits()
    return REGISTRY
