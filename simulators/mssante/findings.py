"""A finding: one precise thing a received message does wrong, recorded in the session's notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str          # mss.<area>.<what>, e.g. xdm.hash
    requirement: str   # the campaign's requirement id, e.g. MSS-XDM-01
    location: str      # where: a header, an archive member, an XPath
    message: str
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
