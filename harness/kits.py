"""Test kits: one per national service, found by entry point, as simulators are.

A test kit is a package (``esante.scenarios.insi``) that reads like its specification: ``campaign.yaml`` (the
certification-style campaign), ``checks.py`` (small named checks with requirement ids), ``actions.py`` (the
driver actions, with typed parameters and reports) and ``defects.yaml`` (the reference candidate's named
defects, each failing the cases of one check). It is registered in the ``esante.kits`` entry-point group::

    [project.entry-points."esante.kits"]
    insi = "esante.scenarios.insi"

The harness never imports a kit by name: the runner, the CLI and the defect catalogue ask this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

KITS_GROUP = "esante.kits"
CAMPAIGN_FILE, DEFECTS_FILE = "campaign.yaml", "defects.yaml"


@dataclass(frozen=True, slots=True)
class Kit:
    """One registered test kit: its name (the campaign's short name, ``insi``) and its package."""

    name: str
    package: str

    def resource(self, name: str) -> Traversable:
        return files(self.package).joinpath(name)

    @property
    def campaign_path(self) -> Path:
        """The kit's campaign file (a real path: the package is installed as files)."""
        return Path(str(self.resource(CAMPAIGN_FILE)))

    def load(self) -> None:
        """Import the kit's checks and actions, which register themselves."""
        for module in ("checks", "actions"):
            if self.resource(f"{module}.py").is_file():
                import_module(f"{self.package}.{module}")


@cache
def kits() -> dict[str, Kit]:
    """Every registered kit, by name."""
    return {ep.name: Kit(ep.name, ep.value) for ep in sorted(entry_points(group=KITS_GROUP), key=lambda e: e.name)}


def kit(name: str) -> Kit:
    found = kits().get(name)
    if found is None:
        raise KeyError(f"no test kit {name!r}; known: {', '.join(kits())}")
    return found


def load_kits() -> None:
    """Import every kit's checks and actions (idempotent)."""
    for registered in kits().values():
        registered.load()


# -- the reference candidate's defects, as the kits declare them ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Defect:
    """One named way the reference candidate can be broken on purpose, and how the kit's campaign sees it."""

    name: str
    description: str
    rule: str            # the check it breaks
    campaign: str        # the kit whose campaign judges it
    fails: tuple[str, ...] = ()  # the cases of that campaign it makes fail

    @classmethod
    def from_entry(cls, entry: Any, campaign: str, origin: str) -> Defect:
        """One catalogue entry; unknown or missing keys are refused, so a typo fails loudly instead of leaving
        a defect unjudged."""
        if not isinstance(entry, dict):
            raise ValueError(f"{origin}: defect entry {entry!r} is not a mapping")
        required = ("name", "description", "rule")
        unknown = set(entry) - {*required, "fails"}
        if unknown:
            raise ValueError(f"{origin}: defect {entry.get('name')!r}: unknown field(s) {', '.join(sorted(unknown))}")
        missing = [key for key in required if not entry.get(key)]
        if missing:
            raise ValueError(f"{origin}: defect {entry.get('name')!r}: missing field(s) {', '.join(missing)}")
        return cls(name=str(entry["name"]), description=str(entry["description"]), rule=str(entry["rule"]),
                   campaign=campaign, fails=tuple(str(case) for case in entry.get("fails") or ()))


def _read_defects(registered: Kit) -> Iterable[Defect]:
    source = registered.resource(DEFECTS_FILE)
    if not source.is_file():
        return ()
    origin = f"{registered.package}/{DEFECTS_FILE}"
    entries = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("defects") or []
    return [Defect.from_entry(entry, registered.name, origin) for entry in entries]


@cache
def defects() -> dict[str, Defect]:
    """Every kit's defects, by name (names are unique across kits)."""
    catalogue: dict[str, Defect] = {}
    for registered in kits().values():
        for defect in _read_defects(registered):
            if defect.name in catalogue:
                raise ValueError(f"defect {defect.name!r} is declared by two kits ({catalogue[defect.name].campaign} "
                                 f"and {defect.campaign})")
            catalogue[defect.name] = defect
    return catalogue
