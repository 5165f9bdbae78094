"""What the simulated Mon espace santé remembers: pairings and their tokens, and each citizen's record
(measures, documents, appointments). Plain in-memory state behind one lock, forgotten on reset."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

PairingStatus = Literal["active", "revoked", "expired"]


def new_id(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(slots=True)
class Transaction:
    """An authorization request waiting for the citizen's login and consent."""

    id: str
    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    challenge: str
    created: float = field(default_factory=time.time)


@dataclass(slots=True)
class Pairing:
    """A partner app paired with a citizen's space (what the citizen sees, and can end, in MES)."""

    id: str
    client_id: str
    patient_id: str           # the data set's patient id
    scope: str
    created: float
    expires: float
    revoked_by: str | None = None  # "user" | "partner"

    def status(self, now: float | None = None) -> PairingStatus:
        if self.revoked_by:
            return "revoked"
        return "expired" if (now or time.time()) >= self.expires else "active"


@dataclass(slots=True)
class Code:
    value: str
    transaction: Transaction
    pairing_id: str
    expires: float
    used: bool = False


@dataclass(slots=True)
class Token:
    value: str
    kind: Literal["access", "refresh"]
    pairing_id: str
    scope: str
    expires: float
    active: bool = True


@dataclass(slots=True)
class Record:
    """One citizen's data in MES, by resource type; ``keys`` maps idempotency keys to resource ids."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"Observation": {}, "Device": {}, "DocumentReference": {}, "Appointment": {}})
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Window:
    """Calls per pairing in the current one-second window (the rate limit)."""

    second: int = 0
    calls: int = 0


class MesState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.transactions: dict[str, Transaction] = {}
            self.codes: dict[str, Code] = {}
            self.pairings: dict[str, Pairing] = {}
            self.tokens: dict[str, Token] = {}
            self.records: dict[str, Record] = {}
            self.windows: dict[str, Window] = {}
            self.dossiers: dict[str, Any] = {}

    def record(self, patient_id: str) -> Record:
        with self.lock:
            return self.records.setdefault(patient_id, Record())

    def issue(self, pairing: Pairing, access_lifetime: float, offline: bool) -> tuple[Token, Token | None]:
        now = time.time()
        access = Token(new_id(32), "access", pairing.id, pairing.scope, now + access_lifetime)
        refresh = Token(new_id(32), "refresh", pairing.id, pairing.scope, pairing.expires) if offline else None
        with self.lock:
            for token in (access, refresh):
                if token is not None:
                    self.tokens[token.value] = token
        return access, refresh

    def end_pairing(self, pairing: Pairing, by: str) -> None:
        with self.lock:
            pairing.revoked_by = pairing.revoked_by or by
            for token in self.tokens.values():
                if token.pairing_id == pairing.id:
                    token.active = False

    def over_limit(self, pairing_id: str, per_second: int) -> bool:
        second = int(time.time())
        with self.lock:
            window = self.windows.setdefault(pairing_id, Window())
            if window.second != second:
                window.second, window.calls = second, 0
            window.calls += 1
            return window.calls > per_second
