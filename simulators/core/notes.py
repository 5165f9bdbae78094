"""Notes: what a simulator observed about one exchange, typed, for the judge.

The journal gives every exchange (an HTTP call, an SMTP or IMAP session) a fresh instance of the simulator's
notes model (:attr:`Simulator.notes_model <esante.simulators.core.runtime.Simulator.notes_model>`); the
protocol handler fills it (``InsiNotes.of(request).code_cr = "00"``), the journal records it with the answer,
and the service's checks read it back from the exchange (``InsiNotes.read(exchange)``). Both sides use the
one model, so a field renamed on one side cannot silently go missing on the other.

A service subclasses :class:`Notes` in its own ``notes.py``. Assigning an unknown field fails (a typo is a
bug); reading evidence recorded by an older version ignores fields the model no longer has.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field


class Notes(BaseModel):
    """The notes every exchange may carry, whatever the protocol."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True, arbitrary_types_allowed=True)

    operation: str | None = Field(default=None, description="the operation the exchange was about")
    rejected: str | None = Field(default=None, description="why the core refused it before the handler ran")
    exception: str | None = Field(default=None, description="the handler crashed: the exception, in one line")
    injected_faults: list[dict[str, Any]] = Field(default_factory=list, description="fault rules that fired")

    @classmethod
    def of(cls, scope_or_request: Any) -> Self:
        """The notes of the exchange being handled (an ASGI scope or a request), of this model."""
        scope = getattr(scope_or_request, "scope", scope_or_request)
        state = scope.setdefault("state", {})
        notes = state.get(NOTES_KEY)
        if notes is None:
            notes = state[NOTES_KEY] = cls()
        if not isinstance(notes, cls):
            raise TypeError(f"this exchange's notes are {type(notes).__name__}, not {cls.__name__}: "
                            f"declare {cls.__name__} as the simulator's notes_model")
        return notes

    @classmethod
    def read(cls, exchange: Any) -> Self:
        """The notes journaled with an exchange (anything with a ``notes`` mapping), as this model."""
        return cls.model_validate(exchange.notes or {})

    def to_json(self) -> dict[str, Any]:
        """What the journal records: the fields that were set, as JSON."""
        return self.model_dump(mode="json", exclude_defaults=True)


#: Where the journal keeps an exchange's notes in the ASGI scope's state.
NOTES_KEY = "esante_notes"

