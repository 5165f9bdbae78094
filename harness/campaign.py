"""Campaign files: certification test campaigns as YAML a reviewer can read.

A campaign names its simulators and requirements, then lists test cases, each with a severity, preconditions
(data set, faults per simulator, modes it can be played in), steps (a driver action, which operator mode shows
as an instruction, or an attestation a person confirms) and expectations (named checks). A case's requirement
ids follow from its checks (each check declares those it judges). The JSON Schema of the format is generated
from the models below and shipped as ``scenarios/campaign.schema.json``.

:func:`load_campaign` reports a bad file by file, line and field: ``insi.yaml:42: cases[3].severity: Input
should be 'blocking', 'major' or 'minor'``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from esante.harness.kits import kits
from esante.simulators.core.faults import FaultRule

MAX_CAMPAIGN_BYTES = 2 * 1024 * 1024
#: Bound on the campaign's size once YAML aliases are expanded: anchors are welcome, alias bombs are not.
MAX_EXPANDED_NODES = 200_000


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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

    @model_validator(mode="after")
    def _coherent(self) -> Campaign:
        ids = [c.id for c in self.cases]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate test case ids: {', '.join(duplicates)}")
        for case in self.cases:
            unknown = [r for r in case.requirements if r not in self.requirements]
            if unknown:
                raise ValueError(f"case {case.id} cites requirements not declared: {', '.join(unknown)}")
        return self


class CampaignError(ValueError):
    """A campaign file that cannot be played; the message names file, line and field."""


class LoadedCampaign(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: Path
    sha256: str
    campaign: Campaign


class JudgesRequirements(Protocol):
    requirements: Sequence[str]


def load_campaign(path: str | Path, *, known_checks: Mapping[str, JudgesRequirements] | None = None
                  ) -> LoadedCampaign:
    """Read and validate a campaign file; raise :class:`CampaignError` naming file, line and field.

    With ``known_checks`` (the check registry), every expectation must name a known check, and each case's
    requirements are completed with those its checks judge: they follow from the checks, never kept in sync
    by hand."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) > MAX_CAMPAIGN_BYTES:
        raise CampaignError(f"{path}: file of {len(raw)} bytes is larger than {MAX_CAMPAIGN_BYTES}")
    text = raw.decode("utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # aliases stay shared nodes here: cheap
        data = yaml.safe_load(text)  # shares aliased objects too; only validation would walk them all
    except RecursionError:
        raise CampaignError(f"{path}:1: the YAML is nested too deeply to be a campaign") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise CampaignError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        expanded = _expanded_size(node)
    except RecursionError:
        raise CampaignError(f"{path}:1: the YAML is nested too deeply to be a campaign") from None
    if expanded > MAX_EXPANDED_NODES:
        raise CampaignError(f"{path}:1: the file expands to {expanded} YAML nodes through aliases "
                            f"(limit {MAX_EXPANDED_NODES}): refused")
    lines = _line_index(node)
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        raise CampaignError(_describe(path, exc, lines)) from None
    if known_checks is not None:
        _check_names(path, campaign, set(known_checks), lines)
        _derive_requirements(path, campaign, known_checks, lines)
    return LoadedCampaign(path=path, sha256=hashlib.sha256(raw).hexdigest(), campaign=campaign)


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


def _describe(path: Path, exc: ValidationError, lines: dict[tuple[Any, ...], int]) -> str:
    messages = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        messages.append(f"{path}:{_line_of(lines, loc)}: {_field(loc)}: {error['msg']}")
    return "\n".join(messages)


def _check_names(path: Path, campaign: Campaign, known: set[str], lines: dict[tuple[Any, ...], int]) -> None:
    problems = []
    for i, case in enumerate(campaign.cases):
        for j, expectation in enumerate(case.expect):
            if expectation.check not in known:
                loc = ("cases", i, "expect", j, "check")
                problems.append(f"{path}:{_line_of(lines, loc)}: {_field(loc)}: unknown check "
                                f"{expectation.check!r}")
    if problems:
        raise CampaignError("\n".join(problems))


def _derive_requirements(path: Path, campaign: Campaign, checks: Mapping[str, JudgesRequirements],
                         lines: dict[tuple[Any, ...], int]) -> None:
    problems = []
    for i, case in enumerate(campaign.cases):
        judged = (r for expectation in case.expect for r in checks[expectation.check].requirements)
        derived = list(dict.fromkeys([*case.requirements, *judged]))
        undeclared = [r for r in derived if r not in campaign.requirements]
        if undeclared:
            problems.append(f"{path}:{_line_of(lines, ('cases', i, 'expect'))}: cases[{i}]: its checks judge "
                            f"requirements the campaign does not declare: {', '.join(undeclared)}")
        case.requirements = derived
    if problems:
        raise CampaignError("\n".join(problems))


def campaign_schema() -> dict[str, Any]:
    schema = Campaign.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://esante-conformance.example/schemas/campaign-1.0.json",
            "title": "esante-conformance campaign", **schema}
