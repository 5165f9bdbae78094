"""The XDS metadata value sets (``data/value_sets.yaml``): which codes each coded attribute accepts."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from esante.simulators.dmp.ebrim import Coded

VALUE_SETS_FILE = Path(__file__).parent / "data" / "value_sets.yaml"


class ValueSets:
    def __init__(self, data: dict[str, dict[str, object]]) -> None:
        self._open = {name for name, systems in data.items() if systems.get("open")}
        self._codes: dict[str, dict[str, dict[str, str]]] = {
            name: {system: dict(codes or {}) if isinstance(codes, dict) else {}
                   for system, codes in systems.items() if system != "open"}
            for name, systems in data.items()}

    def problem(self, attribute: str, coded: Coded) -> str | None:
        """Why ``coded`` is not acceptable for ``attribute`` (e.g. ``format_code``), None when it is."""
        systems = self._codes[attribute]
        if coded.scheme not in systems:
            return (f"coding scheme {coded.scheme!r} is not one of {attribute}'s "
                    f"({', '.join(sorted(systems))})")
        if attribute not in self._open and coded.code not in systems[coded.scheme]:
            return f"code {coded.code!r} is not in the {attribute} value set of {coded.scheme}"
        return None

    def codes(self, attribute: str) -> dict[str, dict[str, str]]:
        return self._codes[attribute]


@cache
def value_sets() -> ValueSets:
    return ValueSets(yaml.safe_load(VALUE_SETS_FILE.read_text(encoding="utf-8")))
