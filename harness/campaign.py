"""Campaign files: certification test campaigns as YAML a reviewer can read.

A campaign names its simulators and requirements, then lists test cases, each with a severity, preconditions
(data set, faults per simulator, modes it can be played in), steps (a driver action, which operator mode shows
as an instruction, or an attestation a person confirms) and expectations (named checks). A case's requirement
ids follow from its checks (each check declares those it judges). The JSON Schema of the format is generated
from the models below and shipped as ``scenarios/campaign.schema.json``.

:func:`load_campaign` reports a bad file by file, line and field, every problem in one pass, in file order:
``insi.yaml:42: cases[3].severity: Input should be 'blocking', 'major' or 'minor'``. Given the registries (as
``esante run`` and ``esante check-campaign`` give them), it also finds what a run would trip on: unknown checks,
driver actions and simulators, data-set references that do not exist (``patient: P999``), requirements a case's
checks judge that the campaign does not declare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from esante.harness.kits import kits
from esante.simulators.core.faults import FaultRule

MAX_CAMPAIGN_BYTES = 2 * 1024 * 1024
#: Bound on the campaign's size once YAML aliases are expanded: anchors are welcome, alias bombs are not.
MAX_EXPANDED_NODES = 200_000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


ModelT = TypeVar("ModelT", bound=BaseModel)


class Severity(StrEnum):
    BLOCKING = "blocking"
    MAJOR = "major"
    MINOR = "minor"


class Mode(StrEnum):
    DRIVER = "driver"
    OPERATOR = "operator"


class Step(Model):
    """Exactly one of ``action`` (a driver action, shown to a person as ``instruction`` in operator mode),
    ``attest`` (a statement a person confirms, with an optional attached file) or ``wait`` (seconds to let
    pass, e.g. until a token expires)."""

    action: str | None = Field(default=None, description="driver action, e.g. insi.lookup_traits")
    patient: str | None = Field(default=None, description="test patient id from the data set (e.g. P001)")
    professional: str | None = Field(default=None, description="test professional id from the data set (PS001)")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="extra action parameters")
    instruction: str | None = Field(default=None, description="what a person does in operator mode")
    attest: str | None = Field(default=None, description="statement the operator confirms (operator mode)")
    wait: float | None = Field(default=None, gt=0, le=300, description="seconds to wait before the next step")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if sum(x is not None for x in (self.action, self.attest, self.wait)) != 1:
            raise ValueError("a step has exactly one of 'action', 'attest' or 'wait'")
        return self


class Expectation(Model):
    check: str = Field(description="registered check name")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="check parameters")


class Preconditions(Model):
    dataset: str | None = None
    faults: dict[str, list[FaultRule]] = Field(default_factory=dict, description="simulator -> fault rules")
    modes: list[Mode] = Field(default_factory=lambda: [Mode.DRIVER, Mode.OPERATOR])


class TestCase(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str
    description: str = ""
    requirements: list[str] = Field(default_factory=list, description=(
        "requirement ids judged beyond those of the case's checks (which are added when the campaign is "
        "loaded): e.g. what an attestation covers"))
    severity: Severity
    preconditions: Preconditions = Field(default_factory=Preconditions)
    steps: list[Step] = Field(min_length=1)
    expect: list[Expectation] = Field(min_length=1)


class CampaignHeader(Model):
    id: str
    version: str
    title: str
    description: str = ""
    simulators: list[str] = Field(min_length=1)
    dataset: str = "default"


class Campaign(Model):
    campaign: CampaignHeader
    requirements: dict[str, str] = Field(description="requirement id -> wording")
    cases: list[TestCase] = Field(min_length=1)


class CampaignError(ValueError):
    """A campaign file that cannot be played; the message names file, line and field."""


class LoadedCampaign(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: Path
    sha256: str
    campaign: Campaign


class JudgesRequirements(Protocol):
    requirements: Sequence[str]


class BuildsParameters(Protocol):
    """A driver action as the runner plays it (:class:`esante.harness.actions.ActionSpec`)."""

    instruction: str

    def parameters(self, step: Step, dataset: Any) -> dict[str, Any]: ...


Lines = dict[tuple[Any, ...], int]
Problem = tuple[int, str]  # (line, "file:line: field: what is wrong"), sorted by line to be read in file order


def load_campaign(path: str | Path, *, known_checks: Mapping[str, JudgesRequirements] | None = None,
                  actions: Mapping[str, BuildsParameters] | None = None, simulators: Collection[str] | None = None,
                  datasets: Callable[[str], Any] | None = None) -> LoadedCampaign:
    """Read and validate a campaign file; raise :class:`CampaignError` naming file, line and field of every
    problem found, all in one pass.

    The more it is given, the more it checks what a run would trip on: with ``known_checks`` (the check
    registry) every expectation must name a known check, and each case's requirements are completed with those
    its checks judge (they follow from the checks, never kept in sync by hand); with ``simulators`` the
    simulators named must exist; with ``actions`` and ``datasets`` (a data set by name) every step must name a
    known driver action whose parameters build from the data set (patient ``P999`` does not) and whose
    instruction reads them."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) > MAX_CAMPAIGN_BYTES:
        raise CampaignError(f"{path}: file of {len(raw)} bytes is larger than {MAX_CAMPAIGN_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CampaignError(f"{path}:1: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    data, lines = _parse(path, text)
    where = _Where(path, lines)
    try:
        campaign: Campaign | None = Campaign.model_validate(data)
        problems: list[Problem] = []
    except ValidationError as exc:
        campaign, problems = None, _described(where, exc)
    header, requirements, cases = _parts(campaign, data)
    problems += _coherence(where, cases, requirements)
    if known_checks is not None:
        problems += _check_names(where, cases, known_checks, requirements)
    if header is not None and simulators is not None:
        problems += _simulators(where, header, cases, simulators)
    if header is not None and actions is not None and datasets is not None:
        problems += _steps(where, header, cases, actions, datasets)
    if problems:
        raise CampaignError("\n".join(text for _, text in sorted(problems, key=lambda p: p[0])))
    assert campaign is not None
    if known_checks is not None:
        for case in campaign.cases:
            judged = (r for expectation in case.expect for r in known_checks[expectation.check].requirements)
            case.requirements = list(dict.fromkeys([*case.requirements, *judged]))
    return LoadedCampaign(path=path, sha256=hashlib.sha256(raw).hexdigest(), campaign=campaign)


def _parse(path: Path, text: str) -> tuple[Any, Lines]:
    """The YAML document and the line of every value in it; a document that is not YAML, or that would blow up
    through its aliases, is refused at once (there is nothing further to check)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # aliases stay shared nodes here: cheap
        data = yaml.safe_load(text)  # shares aliased objects too; only validation would walk them all
        expanded = _expanded_size(node)
    except RecursionError:
        raise CampaignError(f"{path}:1: the YAML is nested too deeply to be a campaign") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise CampaignError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if expanded > MAX_EXPANDED_NODES:
        raise CampaignError(f"{path}:1: the file expands to {expanded} YAML nodes through aliases "
                            f"(limit {MAX_EXPANDED_NODES}): refused")
    return data, _line_index(node)


def resolve_campaign(name_or_path: str) -> Path:
    """A path to a campaign file, or the name of a test kit (``insi``: its ``campaign.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    registered = kits().get(name_or_path)
    if registered is not None and registered.campaign_path.is_file():
        return registered.campaign_path
    raise FileNotFoundError(f"no campaign file {name_or_path!r} and no test kit of that name "
                            f"(known: {', '.join(kits())})")


def _expanded_size(node: yaml.Node | None) -> int:
    """How many nodes the document would have with every alias expanded, computed without expanding."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = 1  # a cycle counts once (safe_load would build a recursive object, refused later)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in n.value)
        else:
            total = 1
        sizes[id(n)] = total
        return total

    return size(node) if node is not None else 0


def _line_index(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every YAML path (keys and list indexes) to its 1-based line."""
    index: dict[tuple[Any, ...], int] = {}
    if node is None:
        return index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index.update(_line_index(value, (*path, key.value)))
            index[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | str:
    loc = tuple("with" if part == "with_" else part for part in loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, "?")


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            text += f".{'with' if part == 'with_' else part}" if text else str(part)
    return text or "(file)"



@dataclass(frozen=True, slots=True)
class _Where:
    """Where a problem is: ``file:line: field:``, from a YAML path (keys and list indexes)."""

    path: Path
    lines: Lines

    def __call__(self, loc: tuple[Any, ...], message: str) -> Problem:
        line = _line_of(self.lines, loc)
        return (line if isinstance(line, int) else 0, f"{self.path}:{line}: {_field(loc)}: {message}")


def _described(where: _Where, exc: ValidationError) -> list[Problem]:
    found = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        found.append(where(loc, error["msg"]))
    return found


def _valid(model: type[ModelT], raw: Any) -> ModelT | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


Cases = list[tuple[int, TestCase]]


def _parts(campaign: Campaign | None, data: Any) -> tuple[CampaignHeader | None, dict[str, str] | None, Cases]:
    """What can be checked further: the whole campaign when it is well formed, else its header, requirements and
    each case that is well formed on its own (so one bad case does not hide the problems of the others)."""
    if campaign is not None:
        return campaign.campaign, campaign.requirements, list(enumerate(campaign.cases))
    if not isinstance(data, dict):
        return None, None, []
    declared = data.get("requirements")
    requirements = declared if isinstance(declared, dict) and all(isinstance(k, str) for k in declared) else None
    raw_cases = data.get("cases") if isinstance(data.get("cases"), list) else []
    cases = [(i, case) for i, raw in enumerate(raw_cases) if (case := _valid(TestCase, raw)) is not None]
    return _valid(CampaignHeader, data.get("campaign")), requirements, cases


def _coherence(where: _Where, cases: Cases, requirements: dict[str, str] | None) -> list[Problem]:
    found, seen = [], set()
    for i, case in cases:
        if case.id in seen:
            found.append(where(("cases", i, "id"), f"duplicate test case id {case.id!r}"))
        seen.add(case.id)
        for j, requirement in enumerate(case.requirements):
            if requirements is not None and requirement not in requirements:
                found.append(where(("cases", i, "requirements", j), f"requirement {requirement!r} is not declared "
                                                                    "under 'requirements'"))
    return found


def _check_names(where: _Where, cases: Cases, known: Mapping[str, JudgesRequirements],
                 requirements: dict[str, str] | None) -> list[Problem]:
    """Unknown checks, and requirements a case's checks judge that the campaign does not declare (at the check)."""
    found = []
    for i, case in cases:
        for j, expectation in enumerate(case.expect):
            loc = ("cases", i, "expect", j, "check")
            registered = known.get(expectation.check)
            if registered is None:
                found.append(where(loc, f"unknown check {expectation.check!r}{_close(expectation.check, known)}"))
                continue
            undeclared = [r for r in registered.requirements if requirements is not None and r not in requirements]
            if undeclared:
                found.append(where(loc, f"check {expectation.check!r} judges requirement(s) the campaign does not "
                                        f"declare: {', '.join(undeclared)}"))
    return found


def _simulators(where: _Where, header: CampaignHeader, cases: Cases, known: Collection[str]) -> list[Problem]:
    found = [where(("campaign", "simulators", k), f"unknown simulator {name!r} (known: {', '.join(sorted(known))})")
             for k, name in enumerate(header.simulators) if name not in known]
    for i, case in cases:
        found += [where(("cases", i, "preconditions", "faults", name), f"faults for the {name} simulator, which the "
                                                                       "campaign does not start")
                  for name in case.preconditions.faults if name not in header.simulators]
    return found


def _steps(where: _Where, header: CampaignHeader, cases: Cases, actions: Mapping[str, BuildsParameters],
           datasets: Callable[[str], Any]) -> list[Problem]:
    """Every action step as the run would play it: a known action, its parameters built from the case's data
    set, its instruction filled with them."""
    found: list[Problem] = []
    loaded: dict[str, Any] = {}
    for i, case in cases:
        name = case.preconditions.dataset or header.dataset
        loc = ("cases", i, "preconditions", "dataset") if case.preconditions.dataset else ("campaign", "dataset")
        if name not in loaded:
            try:
                loaded[name] = datasets(name)
            except (OSError, ValueError) as exc:
                loaded[name] = None
                found.append(where(loc, f"data set {name!r} cannot be loaded: {_first_line(exc)}"))
        for j, step in enumerate(case.steps):
            if step.action is not None and loaded[name] is not None:
                found += _step(where, ("cases", i, "steps", j), step, actions, loaded[name])
    return found


def _step(where: _Where, loc: tuple[Any, ...], step: Step, actions: Mapping[str, BuildsParameters],
          dataset: Any) -> list[Problem]:
    assert step.action is not None
    spec = actions.get(step.action)
    if spec is None:
        return [where((*loc, "action"), f"unknown driver action {step.action!r}{_close(step.action, actions)}")]
    try:
        params = spec.parameters(step, dataset)
    except Exception as exc:  # a kit's builder meets whatever the file holds: any failure is the file's problem
        return [where(loc, f"{step.action}: {_first_line(exc)}")]
    try:
        (step.instruction or spec.instruction).format_map(params)
    except (LookupError, ValueError, AttributeError) as exc:
        return [where((*loc, "instruction") if step.instruction else loc,
                      f"{step.action}: the instruction names a parameter the action does not have ({exc})")]
    return []


def _close(name: str, known: Iterable[str]) -> str:
    matches = get_close_matches(name, list(known), n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text).splitlines()[0] if str(text) else type(exc).__name__


def campaign_schema() -> dict[str, Any]:
    schema = Campaign.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://esante-conformance.example/schemas/campaign-1.0.json",
            "title": "esante-conformance campaign", **schema}
