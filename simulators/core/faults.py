"""Fault injection: make a simulator misbehave on purpose so a candidate's error handling can be tested.

Each simulator names its own faults and misbehaviours in a ``faults.yaml`` beside it, in one schema
(:class:`FaultCatalogue`, read by the simulator base class). A :class:`FaultRule` says *what* goes wrong (added
latency, an HTTP error, the service's own fault message, a dropped connection, or a named misbehaviour of the
protocol itself such as a tampered redirect) and *when* (the next N matching calls, or a share of them). The
:class:`FaultInjector` holds the active rules; the journal asks it, once per exchange, which rules fire.
"""

from __future__ import annotations

import random
import threading
from enum import StrEnum
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class FaultKind(StrEnum):
    LATENCY = "latency"          # answer normally, after ``latency_ms``
    HTTP_ERROR = "http_error"    # answer ``status`` with a short plain-text body, as a broken proxy would
    SERVICE_FAULT = "service_fault"  # answer with the service's own fault message ``fault_code``
    DROP = "drop"                # close the connection without answering
    BEHAVIOUR = "behaviour"      # answer, but misbehave as the simulator's named behaviour ``fault_code`` says


class FaultRule(BaseModel):
    """One misbehaviour. Exactly one of ``count`` (next N calls) or ``ratio`` (share of calls) applies;
    with neither, the rule fires on every matching call until removed. ``after`` delays it: "the second
    sign-in is tampered with" is ``after: 1, count: 1``."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    status: int = Field(default=503, ge=400, le=599)
    fault_code: str | None = None
    count: int | None = Field(default=None, ge=1)
    ratio: float | None = Field(default=None, gt=0, le=1)
    path_prefix: str | None = None
    path: str | None = Field(default=None, description="this exact path only (a prefix would also match "
                                                        "/token/introspect under /token)")
    after: int = Field(default=0, ge=0, description="let this many matching calls through before the rule applies")
    remaining: int | None = Field(default=None, description="calls left for a count rule (read only)")
    passed: int = Field(default=0, description="matching calls let through so far under 'after' (read only)")

    @model_validator(mode="after")
    def _coherent(self) -> FaultRule:
        if self.count is not None and self.ratio is not None:
            raise ValueError("a fault rule takes either count or ratio, not both")
        if self.kind == FaultKind.LATENCY and self.latency_ms == 0:
            raise ValueError("a latency fault needs latency_ms > 0")
        if self.kind in (FaultKind.SERVICE_FAULT, FaultKind.BEHAVIOUR) and not self.fault_code:
            raise ValueError(f"a {self.kind.value} fault needs a fault_code naming the service's fault or behaviour")
        if self.remaining is None and self.count is not None:
            self.remaining = self.count
        return self

    def matches(self, path: str) -> bool:
        if self.path is not None and path != self.path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


class FaultInjector:
    """Active fault rules of one simulator; thread-safe; reproducible with a seed."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = [r.model_copy() for r in rules]

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule.model_copy())

    def clear(self) -> None:
        self.set([])

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def draw(self, path: str) -> list[FaultRule]:
        """The rules that fire for this call, consuming one use of each count rule that fires."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if not rule.matches(path):
                    continue
                if rule.passed < rule.after:
                    rule.passed += 1
                    continue
                if rule.ratio is not None and self._random.random() >= rule.ratio:
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                fired.append(rule.model_copy())
            self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
        return fired


class ServiceFault(BaseModel):
    """A fault the service answers in its own error form (``service_fault`` rules name it).

    ``source`` says where its wording comes from: ``public`` (seen in the service's public material),
    ``standard`` (a standard's own fault, e.g. WS-Addressing) or ``chosen`` (the service's catalogue is not
    public: ours, in the same style). ``answer`` holds the protocol's own wording of it (a SOAP fault's code,
    subcode and reason, a FHIR issue type...), which the service's error form reads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    status: int = Field(ge=400, le=599, description="the HTTP status it is answered with (or its equivalent)")
    source: Literal["public", "standard", "chosen"] = "chosen"
    answer: dict[str, Any] = Field(default_factory=dict)


class Behaviour(BaseModel):
    """A named misbehaviour (``behaviour`` rules name it): the service answers, but wrongly on purpose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    endpoint: str | None = Field(default=None, description="where it applies, for people reading the catalogue")


class FaultCatalogue(BaseModel):
    """A simulator's ``faults.yaml``: its service faults and its behaviours, each with its description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_faults: dict[str, ServiceFault] = Field(default_factory=dict)
    behaviours: dict[str, Behaviour] = Field(default_factory=dict)

    @classmethod
    def read(cls, text: str, *, origin: str = "faults.yaml") -> FaultCatalogue:
        """Parse and validate a catalogue; a malformed one fails loudly, naming the file and the entry."""
        try:
            return cls.model_validate(yaml.safe_load(text) or {})
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{origin}: {exc}") from None

    def knows(self, rule: FaultRule) -> bool:
        """Whether a rule's ``fault_code`` names one of this catalogue's faults or behaviours (as its kind says)."""
        if not rule.fault_code:
            return True
        known = self.behaviours if rule.kind == FaultKind.BEHAVIOUR else self.service_faults
        return rule.fault_code in known

    def names(self, kind: FaultKind) -> list[str]:
        return sorted(self.behaviours if kind == FaultKind.BEHAVIOUR else self.service_faults)
