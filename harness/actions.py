"""Driver actions: how a campaign step becomes the typed parameters of a driver call, and what its report is.

A campaign names test patients by id (``patient: P007``); the candidate must receive what its user would
type or read (traits, a carte Vitale, a stored identity). Each test kit registers, in its ``actions.py``, one
builder per action, declaring the action's parameter model and report model::

    @action("insi.lookup_traits", title="Look up the INS from identity traits", params=LookupTraits,
            report=InsiReport, instruction="Search the INS of {traits}...")
    def lookup_traits(step: Step, dataset: Dataset) -> LookupTraits: ...

The driver contract's OpenAPI document is generated from these declarations (:func:`contract_app`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import BaseModel, create_model

from esante.harness.campaign import Step
from esante.harness.driver import API_PREFIX, ActionOutcome, ActionReport
from esante.harness.driver import contract_app as base_contract
from esante.harness.kits import load_kits
from esante.simulators.dataset import Dataset

Params = BaseModel | dict[str, Any]
Builder = Callable[[Step, Dataset], Params]
#: What the user types on a simulator's page during a browser flow (login page fields), from the parameters.
FormFiller = Callable[[dict[str, Any]], dict[str, str]]


class Ask(Protocol):
    """Asks a person one question in operator mode and returns the answer (``default`` when they just press
    Enter). ``field`` is where the answer goes in the report (``identity.ins.key``): an answer the report's model
    refuses is asked again, that question alone."""

    def __call__(self, question: str, default: str = "", field: str | None = None) -> str: ...


#: What a person is asked in operator mode, beyond the outcome and message, to fill the report's own fields:
#: ``(ask, params, outcome) -> fields``.
OperatorQuestions = Callable[[Ask, dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    title: str
    build: Builder
    #: Shown to a person in operator mode; formatted with the built parameters (``{traits[birth_name]}``).
    instruction: str
    #: The parameters' model (the driver receives them as JSON); None: the builder's dict as it is.
    params: type[BaseModel] | None = None
    #: The report's model: the candidate's answer is read as it.
    report: type[ActionReport] = ActionReport
    #: For actions that go through the user's browser: the fields the harness fills on simulators' pages.
    browser_form: FormFiller | None = None
    #: For operator mode: the questions that fill the report's own fields.
    operator_questions: OperatorQuestions | None = None
    #: The outcomes the software may report for this action (its service's), offered to a person in operator
    #: mode; empty: every outcome.
    outcomes: tuple[ActionOutcome, ...] = ()

    def parameters(self, step: Step, dataset: Dataset) -> dict[str, Any]:
        """The parameters of this step as the driver receives them (JSON-ready)."""
        built = self.build(step, dataset)
        if isinstance(built, BaseModel):
            return built.model_dump(mode="json", by_alias=True)
        return dict(built)


ACTIONS: dict[str, ActionSpec] = {}


def action(name: str, *, title: str, instruction: str, params: type[BaseModel] | None = None,
           report: type[ActionReport] = ActionReport, browser_form: FormFiller | None = None,
           operator_questions: OperatorQuestions | None = None,
           outcomes: Iterable[ActionOutcome] = ()) -> Callable[[Builder], Builder]:
    """Register the builder of the driver action ``name`` (names are unique across kits)."""

    def register(build: Builder) -> Builder:
        ACTIONS[name] = ActionSpec(name, title, build, instruction, params, report, browser_form, operator_questions,
                                   tuple(outcomes))
        return build

    return register


def load_actions() -> dict[str, ActionSpec]:
    load_kits()
    return ACTIONS


def contract_app(actions: Iterable[ActionSpec] | None = None) -> FastAPI:
    """The driver contract as an app whose OpenAPI document *is* the published contract: the generic calls,
    then one path per registered action with its parameter and report models."""
    app = base_contract()
    for spec in sorted(actions if actions is not None else load_actions().values(), key=lambda s: s.name):
        _declare(app, spec)
    return app


def _declare(app: FastAPI, spec: ActionSpec) -> None:
    params = spec.params or dict[str, Any]
    request = create_model(f"{_camel(spec.name)}Request", __config__=None, params=(params, ...),
                           case_id=(str | None, None))

    def act(body):  # type: ignore[no-untyped-def]  # pragma: no cover - contract only
        raise NotImplementedError

    act.__annotations__ = {"body": request, "return": spec.report}  # resolved now, not as strings
    app.post(f"{API_PREFIX}/actions/{spec.name}", response_model=spec.report, summary=spec.title,
             operation_id=f"action_{spec.name.replace('.', '_')}", tags=[spec.name.split(".")[0]])(act)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))
