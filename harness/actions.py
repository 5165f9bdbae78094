"""Driver actions: how a campaign step becomes the parameters of a driver call.

A campaign names test patients by id (``patient: P007``); the candidate must receive what its user would
type or read (traits, a carte Vitale, a stored identity). Each protocol registers, beside itself, one
builder per action it defines (``simulators/insi/actions.py``) in the ``esante.actions`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from esante.harness.campaign import Step
from esante.simulators.dataset import Dataset

Builder = Callable[[Step, Dataset], dict[str, Any]]
#: What the user types on a simulator's page during a browser flow (login page fields), from the parameters.
FormFiller = Callable[[dict[str, Any]], dict[str, str]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    title: str
    build: Builder
    #: Shown to a person in operator mode; formatted with the built parameters (``{traits[birth_name]}``).
    instruction: str
    #: For actions that go through the user's browser: the fields the harness fills on simulators' pages.
    browser_form: FormFiller | None = None


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, *, title: str, instruction: str,
           browser_form: FormFiller | None = None) -> Callable[[Builder], Builder]:
    def register(build: Builder) -> Builder:
        ACTIONS[name] = ActionSpec(name, title, build, instruction, browser_form)
        return build

    return register


def load_actions() -> dict[str, ActionSpec]:
    for ep in entry_points(group="esante.actions"):
        ep.load()
    return ACTIONS
