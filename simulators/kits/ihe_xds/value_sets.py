"""The XDS metadata value sets: which codes each coded attribute of a DocumentEntry or SubmissionSet accepts.

:func:`cisis_value_sets` are the CI-SIS "jeux de valeurs" (JDV) of the XDS metadata (``data/value_sets.yaml``,
a realistic subset); a national service adds its own codes with :meth:`ValueSets.extended` (the DMP's
confidentiality codes, JDV_J58).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from esante.simulators.kits.ihe_xds.ebrim import Coded

VALUE_SETS_FILE = Path(__file__).parent / "data" / "value_sets.yaml"

#: attribute → coding system → code → display; ``open: true`` on an attribute checks the coding system only.
ValueSetData = Mapping[str, Mapping[str, Any]]


class ValueSets:
    def __init__(self, data: ValueSetData) -> None:
        self._data = data
        self._open = {name for name, systems in data.items() if systems.get("open")}
        self._codes: dict[str, dict[str, dict[str, str]]] = {
            name: {system: dict(codes or {}) if isinstance(codes, dict) else {}
                   for system, codes in systems.items() if system != "open"}
            for name, systems in data.items()}

    @classmethod
    def read(cls, path: Path) -> ValueSets:
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    def extended(self, more: ValueSetData) -> ValueSets:
        """These value sets with ``more`` codes (same shape): a service's own codes added to the CI-SIS ones."""
        merged: dict[str, dict[str, Any]] = {name: dict(systems) for name, systems in self._data.items()}
        for name, systems in more.items():
            target = merged.setdefault(name, {})
            for system, codes in systems.items():
                target[system] = codes if system == "open" else {**(target.get(system) or {}), **(codes or {})}
        return ValueSets(merged)

    def problem(self, attribute: str, coded: Coded) -> str | None:
        """Why ``coded`` is not acceptable for ``attribute`` (e.g. ``format_code``), None when it is."""
        systems = self._codes[attribute]
        if coded.scheme not in systems:
            return (f"coding scheme {coded.scheme!r} is not one of {attribute}'s "
                    f"({', '.join(sorted(systems))})")
        if attribute not in self._open and coded.code not in systems[coded.scheme]:
            return f"code {coded.code!r} is not in the {attribute} value set of {coded.scheme}"
        return None


@cache
def cisis_value_sets() -> ValueSets:
    """The CI-SIS value sets of the XDS metadata, read once."""
    return ValueSets.read(VALUE_SETS_FILE)
