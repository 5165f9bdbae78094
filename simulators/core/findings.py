"""A finding: one precise thing a received message (a DMP feed, a mail, a referencing dossier) does wrong.

Simulators record findings in an exchange's notes, and the test kits' checks read them back; the offline
checkers (``esante mes check-dossier``) print them. One class for every service, so that reports and checks
read them the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What was wrong (``message``), by which rule (``rule``, e.g. ``cda_header`` or ``xdm.hash``), where
    (``location``: a header, an archive member, an XPath, a file line), and which requirement of the campaign
    it breaks. ``code`` is the service's own error code for it when it answers one (an XDS RegistryError)."""

    rule: str
    message: str
    location: str = ""
    requirement: str = ""
    code: str | None = None
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def render(self, source: str = "") -> str:
        """One line for people: ``dossier.yaml:12: missing: ...`` (the location as a file line when numeric)."""
        where = f"{source}:{self.location}" if source and self.location.isdigit() else \
            f"{source}{': ' if source else ''}{self.location}" if self.location else source
        return f"{where}: {self.rule}: {self.message}" if where else f"{self.rule}: {self.message}"


def errors(findings: list[Finding]) -> list[Finding]:
    """The findings that make a message refused (not the warnings)."""
    return [finding for finding in findings if finding.severity == "error"]
