"""The referencing window of the Mon espace santé catalogue: the criteria, the editor's dossier, its
admissibility and its lifecycle.

The criteria (``data/criteria.yaml``) are ours in wording, modelled on the published referencing
framework (arrêté of 2022 and its updates): six families, some criteria mandatory. A dossier is a YAML or
JSON file with the service and one answer per criterion::

    dossier:
      service: {name: ..., editor: ..., data_exchange: true, categories: [...]}
      answers:
        - {id: SEC-01, family: security, mandatory: true, answer: "yes", evidence: ["doc:PAS.pdf"]}

Admissibility is completeness and form, not merit: every mandatory criterion answered, every ``yes`` to a
mandatory criterion backed by evidence, ids, families and flags that match the catalogue, answers and
evidence references in the expected form. Each finding names the file's line. The lifecycle is the
published one; each step is recorded with its time.

Evidence can be a campaign's result: ``bundle:<file>#<case>`` cites a test case of an evidence bundle
(``esante run``'s ``evidence-bundle.zip``). When the bundles are at hand (``evidence_dir``: the offline
check of a dossier file looks beside it), each cited bundle must verify as intact (``core.evidence.bundle``) and
the case must have passed in it.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from esante.simulators.core.evidence.bundle import verify_bundle

FAMILIES = ("security", "interoperability", "ethics", "accessibility", "sustainability", "urbanisation")
ANSWERS = ("yes", "no", "partial", "not_applicable")
LIFECYCLE = ("submitted", "admissible", "evaluation", "opinion", "agreement", "connection_tests", "referenced")
EVIDENCE = re.compile(r"^(doc|url|bundle):\S{1,500}$")
MAX_DOSSIER_BYTES = 1024 * 1024
MAX_NODES = 50_000  # bound on the parsed document (YAML aliases included)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same nodes and marks, faster


@dataclass(frozen=True, slots=True)
class Criterion:
    id: str
    family: str
    mandatory: bool
    wording: str


@cache
def criteria() -> dict[str, Criterion]:
    data = yaml.safe_load(files("esante.simulators.mes").joinpath("data/criteria.yaml").read_text(encoding="utf-8"))
    return {c["id"]: Criterion(c["id"], c["family"], bool(c["mandatory"]), c["wording"]) for c in data["criteria"]}


@dataclass(frozen=True, slots=True)
class Finding:
    line: int | None
    kind: str      # "missing" | "malformed"
    message: str

    def render(self, source: str) -> str:
        return f"{source}:{self.line}: {self.kind}: {self.message}" if self.line else \
            f"{source}: {self.kind}: {self.message}"


@dataclass(slots=True)
class Admissibility:
    findings: list[Finding] = field(default_factory=list)
    service: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def admissible(self) -> bool:
        return not self.findings

    def add(self, line: int | None, kind: str, message: str) -> None:
        self.findings.append(Finding(line, kind, message))


def _count_nodes(node: yaml.Node, seen: set[int], budget: list[int]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"the dossier has more than {MAX_NODES} elements")
        if id(current) in seen and isinstance(current, yaml.CollectionNode):
            budget[0] -= 1_000  # an alias to a collection counts as its expansion would, roughly
            continue
        seen.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend(v for pair in current.value for v in pair)


def check_dossier(text: str | bytes, evidence_dir: Path | None = None) -> Admissibility:
    """Admissibility of a dossier (YAML or JSON text): every finding, each with its line when known.
    With ``evidence_dir``, the evidence bundles the answers cite are verified there."""
    result = Admissibility()
    if len(text) > MAX_DOSSIER_BYTES:
        result.add(None, "malformed", f"the dossier is larger than {MAX_DOSSIER_BYTES} bytes")
        return result
    try:
        root = yaml.compose(text, Loader=_LOADER)
        if root is not None:
            _count_nodes(root, set(), [MAX_NODES])
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        result.add(mark.line + 1 if mark else None, "malformed", f"unreadable YAML/JSON: {str(exc)[:200]}")
        return result
    try:
        _read_dossier(root, result, evidence_dir)
    except yaml.constructor.ConstructorError as exc:  # an alias inside its own anchor: a value that never ends
        mark = exc.problem_mark or exc.context_mark
        result.add(mark.line + 1 if mark else None, "malformed", f"unreadable YAML/JSON: {str(exc)[:200]}")
    return result


def _read_dossier(root: yaml.Node | None, result: Admissibility, evidence_dir: Path | None) -> None:
    dossier = _mapping(root, "dossier")
    if dossier is None:
        result.add(1, "malformed", "the file must hold a mapping with a 'dossier' key")
        return
    _service(dossier, result)
    answers = _mapping(dossier, "answers")
    if not isinstance(answers, yaml.SequenceNode):
        result.add(_line(dossier), "missing", "dossier.answers (a list, one entry per criterion) is missing")
        return
    for item in answers.value:
        _answer(item, result, evidence_dir)
    for criterion in criteria().values():
        if criterion.mandatory and criterion.id not in result.answers:
            result.add(_line(answers), "missing", f"mandatory criterion {criterion.id} ({criterion.family}) is "
                                                  f"not answered: {criterion.wording}")


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _mapping(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _plain(node: yaml.Node) -> Any:
    """The plain data of a node already composed (and bounded) with the safe constructor."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _service(dossier: yaml.Node, result: Admissibility) -> None:
    node = _mapping(dossier, "service")
    service = _plain(node) if node is not None else None
    if not isinstance(service, dict):
        result.add(_line(dossier), "missing", "dossier.service (name, editor, data_exchange) is missing")
        return
    for key in ("name", "editor"):
        if not isinstance(service.get(key), str) or not service[key].strip():
            result.add(_line(node), "missing", f"service.{key} is missing")
    if not isinstance(service.get("data_exchange"), bool):
        result.add(_line(node), "malformed", "service.data_exchange must be true or false")
    result.service = service


def _answer(node: yaml.Node, result: Admissibility, evidence_dir: Path | None) -> None:
    line, entry = _line(node), _plain(node)
    if not isinstance(entry, dict):
        result.add(line, "malformed", "an answer must be a mapping (id, family, mandatory, answer, evidence)")
        return
    criterion = criteria().get(str(entry.get("id")))
    if criterion is None:
        result.add(line, "malformed", f"criterion {entry.get('id')!r} is not in the catalogue")
        return
    if criterion.id in result.answers:
        result.add(line, "malformed", f"criterion {criterion.id} is answered twice")
        return
    result.answers[criterion.id] = entry
    if entry.get("family") != criterion.family:
        result.add(line, "malformed", f"{criterion.id}: family {entry.get('family')!r} should be {criterion.family}")
    if entry.get("mandatory") is not criterion.mandatory:
        result.add(line, "malformed", f"{criterion.id}: mandatory should be {str(criterion.mandatory).lower()}")
    answer = entry.get("answer")
    if answer is True:  # YAML 1.1 reads an unquoted yes as true: accept the editor's evident meaning
        answer = "yes"
    if answer not in ANSWERS:
        result.add(line, "malformed", f"{criterion.id}: answer {answer!r} is not one of {', '.join(ANSWERS)}")
    evidence = entry.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) and EVIDENCE.match(e) for e in evidence):
        result.add(line, "malformed", f"{criterion.id}: evidence must be a list of doc:<file>, url:<address> or "
                                      "bundle:<file>#<case> references")
    elif criterion.mandatory and answer == "yes" and not evidence:
        result.add(line, "missing", f"{criterion.id}: a mandatory criterion answered yes needs evidence")
    elif evidence_dir is not None:
        for reference in evidence:
            if reference.startswith("bundle:"):
                problem = bundle_evidence_problem(reference, evidence_dir)
                if problem:
                    result.add(line, "malformed", f"{criterion.id}: {reference}: {problem}")


def bundle_evidence_problem(reference: str, evidence_dir: Path) -> str | None:
    """Why ``bundle:<file>#<case>`` is not valid evidence (no such bundle, altered, case absent or not
    passed), or None. The file must lie inside ``evidence_dir``."""

    name, _, case = reference.removeprefix("bundle:").partition("#")
    if not case:
        return "a bundle reference names the case it cites: bundle:<file>#<case id>"
    base = evidence_dir.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return f"no bundle {name} beside the dossier"
    verification = verify_bundle(path)
    if not verification.ok:
        return f"the bundle is not intact: {'; '.join(verification.problems[:3])}"
    try:
        with zipfile.ZipFile(path) as archive:
            report = json.loads(archive.read("report.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return "the bundle holds no readable report.json"
    verdict = next((c.get("verdict") for c in report.get("cases", []) if c.get("id") == case), None)
    if verdict is None:
        return f"the bundle has no case {case}"
    if verdict != "passed":
        return f"case {case} did not pass in that run ({verdict})"
    return None


@dataclass(slots=True)
class Dossier:
    """A dossier in the window: its status and the history of its steps."""

    id: str
    service: dict[str, Any]
    status: str
    findings: list[Finding]
    history: list[dict[str, Any]] = field(default_factory=list)

    def step(self, status: str, note: str = "") -> None:
        self.status = status
        self.history.append({"status": status, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "note": note})

    def advance(self, to: str, note: str = "") -> None:
        """Move to the next step of the lifecycle; steps are not skipped, and an inadmissible dossier stays."""
        if self.status not in LIFECYCLE or self.status == LIFECYCLE[-1]:
            raise ValueError(f"a dossier {self.status} cannot move on")
        expected = LIFECYCLE[LIFECYCLE.index(self.status) + 1]
        if to != expected:
            raise ValueError(f"from {self.status} the next step is {expected}, not {to}")
        self.step(to, note)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "status": self.status, "history": self.history,
                "findings": [{"line": f.line, "kind": f.kind, "message": f.message} for f in self.findings]}
