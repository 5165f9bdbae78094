"""The layers, as a test: dependencies run one way, and nothing imports in a circle.

    simulators.dataset ← simulators.core ← simulators.kits ← simulators.<service> ← reports ← harness
                                                                                     ↖ scenarios.<service>

* a simulator never imports the judge (harness, scenarios) nor another service's internals: only its
  ``protocol`` module (constants from the specification);
* a kit never imports a service; the core never imports a kit;
* reports read their results model and the evidence, never the harness;
* a test kit (``scenarios.<service>``) reaches the harness through its public suite module only, and its own
  simulator through ``protocol`` and ``notes`` (the typed hand-off);
* the reference candidate imports the driver contract, protocol constants, the test PKI and the data set:
  never a kit, a check or a simulator's internals (a candidate must not share the judge's code);
* nothing imports the test kits: the harness finds them by entry point.

Every import counts, including those inside functions and under ``TYPE_CHECKING``. The rules are data
(``RULES``): a new layer or exception is one line, and says why.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulators", "harness", "reports", "scenarios")
FIRST_PARTY = (*PACKAGES, "tests", "benchmarks")


@dataclass(frozen=True, slots=True)
class Import:
    source: str   # importing module, without the esante. prefix (harness.runner)
    target: str   # imported module, without the prefix (simulators.core.journal)
    line: int
    path: Path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in (*PACKAGES, "tests", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module an import names: ``a.b.c`` when it is a module of the tree, else its longest module prefix
    (``from a.b import some_function`` imports ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                full = f"{base}.{node.module}" if node.module else base
            else:
                full = node.module or ""
            names = [f"{full}.{alias.name}" for alias in node.names] if full else []
        for name in names:
            local = name.removeprefix("esante.")
            if local.split(".")[0] in FIRST_PARTY and (target := _resolve(local)):
                found.append(Import(module, target, node.lineno, path))
    return found


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


# -- the rules ----------------------------------------------------------------------------------------------
SERVICE = r"simulators\.(?!core\b|kits\b|dataset\b)(\w+)"
PROTOCOL = rf"{SERVICE}\.protocol"

#: (who imports, what it may import): the first pattern matching the importer decides; ``{own}`` is the
#: importer's own service (its first capture group).
RULES: list[tuple[str, list[str]]] = [
    (r"simulators\.dataset(\..*)?", [r"simulators\.dataset(\..*)?"]),
    (r"simulators\.core(\..*)?", [r"simulators\.core(\..*)?", r"simulators\.dataset(\..*)?"]),
    (r"simulators\.kits(\..*)?", [r"simulators\.(kits|core|dataset)(\..*)?"]),
    (rf"{SERVICE}(\..*)?", [r"simulators\.(kits|core|dataset)(\..*)?", r"simulators\.{own}(\..*)?", PROTOCOL]),
    (r"reports(\..*)?", [r"reports(\..*)?", r"simulators\.(core|kits)(\..*)?"]),
    # The reference candidate: the driver contract, its defect names (the kits' catalogue, data), protocol
    # constants, the test PKI and the data set only.
    (r"harness\.reference(\..*)?", [r"harness\.reference(\..*)?", r"harness\.driver", r"harness\.kits", PROTOCOL,
                                    r"simulators\.core\.pki", r"simulators\.dataset(\.models)?"]),
    (r"harness(\..*)?", [r"harness(\..*)?", r"reports(\..*)?", r"simulators(\..*)?"]),
    # A test kit reads like its specification: the suite module, its service's protocol and notes, the kits.
    (r"scenarios\.(\w+)(\..*)?", [r"scenarios\.{own}(\..*)?", r"scenarios", r"harness\.suite",
                                  r"simulators\.(kits|core|dataset)(\..*)?", PROTOCOL,
                                  r"simulators\.{own}\.notes"]),
    (r"scenarios", [r"harness\.suite"]),
    (r"benchmarks(\..*)?", [r"benchmarks(\..*)?", r"simulators(\..*)?", r"harness(\..*)?", r"reports(\..*)?"]),
    (r"tests(\..*)?", [r".*"]),
]


def _allowed(source: str, target: str) -> bool:
    for importer, allowed in RULES:
        match = re.fullmatch(importer, source)
        if match:
            own = match.group(1) if match.groups() and match.group(1) and importer.startswith(("simulators",
                                                                                                "scenarios")) \
                else ""
            return any(re.fullmatch(pattern.replace("{own}", re.escape(own)), target) for pattern in allowed)
    raise AssertionError(f"no layering rule covers {source}")


def test_every_import_runs_down_the_layers() -> None:
    wrong = sorted({f"{imp.path.relative_to(ROOT)}:{imp.line}: {imp.source} imports {imp.target}"
                    for imp in IMPORTS if not _allowed(imp.source, imp.target)})
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_circle_anywhere() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in IMPORTS:
        if imp.target != imp.source:
            graph[imp.source].add(imp.target)
    circles = [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]
    assert not circles, "import circles (lazy and TYPE_CHECKING imports count):\n" + \
        "\n".join(" <-> ".join(c) for c in circles)


def test_first_party_code_is_imported_through_the_esante_namespace() -> None:
    """``import simulators`` works from a checkout and nowhere else: the installed names are esante.*."""
    bare = []
    for module, path in MODULES.items():
        if module.split(".")[0] not in PACKAGES and module.split(".")[0] != "benchmarks":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bare += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names
                     if name.split(".")[0] in PACKAGES]
    assert not bare, "import these as esante.<package>:\n" + "\n".join(bare)


def test_the_rules_bite() -> None:
    """Each kind of wrong import is refused, so a green run means something."""
    assert not _allowed("simulators.insi.service", "harness.suite")
    assert not _allowed("simulators.mssante.inspection", "simulators.dmp.ebrim")
    assert _allowed("simulators.mssante.auth", "simulators.psc.protocol")
    assert not _allowed("simulators.core.journal", "simulators.kits.soap")
    assert not _allowed("reports.html", "harness.runner")
    assert not _allowed("harness.reference.insi.client", "simulators.kits.soap")
    assert not _allowed("harness.runner", "scenarios.insi.checks")
    assert not _allowed("scenarios.insi.checks", "harness.runner")
    assert not _allowed("scenarios.insi.checks", "simulators.dmp.notes")
    assert _allowed("scenarios.insi.checks", "simulators.insi.notes")
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(c) for c in _strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the tree is deep enough to make recursion a risk)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {t for targets in graph.values() for t in targets}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found
