"""The reference candidate's defect catalogue, kept as data in ``defects.yaml``.

The catalogue is data so that reports, the CLI and the tests all read the same list, and so that other
fields (for instance which test cases a defect makes fail) can be added there without touching code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Defect:
    """One named way the reference candidate can be broken on purpose."""

    name: str
    description: str
    rule: str
    campaign: str  # the shipped campaign whose cases ``fails`` names (insi, psc, dmp...)
    fails: tuple[str, ...] = ()  # test cases this defect makes fail, when the catalogue lists them


#: The shipped campaigns a defect can be judged by (``scenarios/<campaign>/``).
CAMPAIGNS = ("insi", "psc", "dmp", "mes", "mssante")
_REQUIRED = ("name", "description", "rule", "campaign")


def _defect(entry: dict[str, Any]) -> Defect:
    """One catalogue entry; unknown or missing keys and unknown campaigns are refused, so a typo in the YAML
    fails loudly instead of leaving a defect unjudged."""
    if not isinstance(entry, dict):
        raise ValueError(f"defect entry {entry!r} is not a mapping")
    unknown = set(entry) - {*_REQUIRED, "fails"}
    if unknown:
        raise ValueError(f"defect {entry.get('name')!r}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = [key for key in _REQUIRED if not entry.get(key)]
    if missing:
        raise ValueError(f"defect {entry.get('name')!r}: missing field(s) {', '.join(missing)}")
    if entry["campaign"] not in CAMPAIGNS:
        raise ValueError(f"defect {entry['name']!r}: campaign {entry['campaign']!r} is not one of "
                         f"{', '.join(CAMPAIGNS)}")
    return Defect(name=str(entry["name"]), description=str(entry["description"]), rule=str(entry["rule"]),
                  campaign=str(entry["campaign"]), fails=tuple(str(case) for case in entry.get("fails") or ()))


def load_defects() -> dict[str, Defect]:
    """Read ``defects.yaml`` from the package (works from a wheel as well as from a checkout)."""
    text = files("esante.harness.reference").joinpath("defects.yaml").read_text(encoding="utf-8")
    entries = yaml.safe_load(text)["defects"]
    catalogue: dict[str, Defect] = {}
    for entry in entries:
        defect = _defect(entry)
        if defect.name in catalogue:
            raise ValueError(f"defect {defect.name!r} is listed twice in defects.yaml")
        catalogue[defect.name] = defect
    return catalogue


#: Every known defect, by name, in catalogue order.
DEFECTS: dict[str, Defect] = load_defects()


def _check_known(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(DEFECTS))
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")


class Defects(frozenset[str]):
    """The defects switched on in one reference candidate; constructing it refuses unknown names."""

    def __new__(cls, names: Iterable[str] = ()) -> Defects:
        names = tuple(names)
        _check_known(names)
        return super().__new__(cls, names)

    def on(self, name: str) -> bool:
        """Whether ``name`` is active; an unknown name is a programming error, not a silent False."""
        _check_known([name])
        return name in self

    def label(self) -> str:
        """The active names, sorted and comma-separated (for the declared version string)."""
        return ",".join(sorted(self))
