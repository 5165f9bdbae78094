"""The defects the reference candidate can be switched into, as the test kits name them (each kit's
``defects.yaml``, read through :func:`esante.harness.kits.defects`).

The catalogue is data so that reports, the CLI and the tests all read the same list; the reference candidate
only needs the names, to refuse an unknown one and to ask whether one is on.
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.harness.kits import Defect, defects


def _check_known(names: Iterable[str]) -> None:
    known = defects()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(known)}")


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


__all__ = ["Defect", "Defects", "defects"]
