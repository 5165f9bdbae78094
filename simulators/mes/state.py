"""What the simulated Mon espace santé remembers: besides the pending authorizations, codes and tokens of its
authorization server (:class:`~esante.simulators.kits.oauth.server.AuthorizationState`; a token's
``grant_id`` is its pairing), the pairings, each citizen's record (a FHIR resource store: the citizen,
measures, documents, appointments), the rate-limit windows and the referencing dossiers. Plain in-memory
state behind one lock, forgotten on reset. Between resets (a simulator left running) it stays bounded: a
pairing no token or code refers to any more is forgotten (its app can no longer reach it), past windows are
dropped, and the pairings and dossiers tables are capped like the tokens (``MAX_ENTRIES``, the oldest forgotten
first), so a lookup may find a pairing gone: it is then an unknown grant."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from esante.simulators.kits.fhir.store import ResourceStore
from esante.simulators.kits.oauth.server import AuthorizationState, IssuedToken, new_id

PairingStatus = Literal["active", "revoked", "expired"]


@dataclass(slots=True)
class Pairing:
    """A partner app paired with a citizen's space (what the citizen sees, and can end, in MES)."""

    id: str
    client_id: str
    patient_id: str           # the data set's patient id
    scope: str
    created: float
    expires: float
    revoked_by: str | None = None  # "user" | "partner" | "replay"

    def status(self, now: float | None = None) -> PairingStatus:
        if self.revoked_by:
            return "revoked"
        return "expired" if (now or time.time()) >= self.expires else "active"

    def ended(self) -> str:
        """Why the pairing cannot be used, in the words of MES's refusals (``revoked by the user``)."""
        status = self.status()
        return f"the pairing is {status}{' by the user' if self.revoked_by == 'user' else ''}"


@dataclass(slots=True)
class Window:
    """Calls per pairing in the current one-second window (the rate limit)."""

    second: int = 0
    calls: int = 0


class MesState(AuthorizationState):
    def __init__(self) -> None:
        super().__init__()
        self.pairings: dict[str, Pairing] = {}
        self.records: dict[str, ResourceStore] = {}
        self.windows: dict[str, Window] = {}
        self.dossiers: dict[str, Any] = {}

    def reset(self) -> None:
        with self.lock:
            super().reset()
            for table in (self.pairings, self.records, self.windows, self.dossiers):
                table.clear()

    def purge(self, now: float) -> None:
        """Forget, besides expired codes and tokens, the pairings they no longer refer to and past windows."""
        super().purge(now)
        referred = {t.grant_id for t in self.tokens.values()} | {c.grant_id for c in self.codes.values()}
        for pairing_id in [p for p in self.pairings if p not in referred]:
            del self.pairings[pairing_id]
        for pairing_id in [p for p, w in self.windows.items() if w.second < int(now) - 1]:
            del self.windows[pairing_id]

    def add_pairing(self, pairing: Pairing) -> None:
        self._stored(self.pairings, pairing.id, pairing)

    def add_dossier(self, dossier: Any) -> None:
        """A referencing dossier (anyone may submit one: the table is capped, the oldest forgotten first)."""
        self._stored(self.dossiers, dossier.id, dossier)

    def pairing(self, pairing_id: str) -> Pairing | None:
        """The pairing, or None once it is forgotten (see the module's docstring)."""
        with self.lock:
            return self.pairings.get(pairing_id)

    def record(self, patient_id: str, patient: dict[str, Any]) -> ResourceStore:
        """The citizen's record: their FHIR resources, their ``Patient`` first."""
        with self.lock:
            store = self.records.get(patient_id)
            if store is None:
                store = self.records[patient_id] = ResourceStore()
                store.create(patient, patient["id"])
            return store

    def issue(self, pairing: Pairing, access_lifetime: float, offline: bool
              ) -> tuple[IssuedToken, IssuedToken | None]:
        """An access token and, for an offline scope, a refresh token good until the pairing's end."""
        access = IssuedToken(id=new_id(32), kind="access", client_id=pairing.client_id, grant_id=pairing.id,
                             scope=pairing.scope, expires=time.time() + access_lifetime)
        refresh = IssuedToken(id=new_id(32), kind="refresh", client_id=pairing.client_id, grant_id=pairing.id,
                              scope=pairing.scope, expires=pairing.expires) if offline else None
        self.keep(access, refresh)
        return access, refresh

    def end_pairing(self, pairing: Pairing, by: str) -> None:
        """End the pairing (the first reason stays) and revoke its tokens."""
        with self.lock:
            pairing.revoked_by = pairing.revoked_by or by
            self.revoke_grant(pairing.id)

    def over_limit(self, pairing_id: str, per_second: int) -> bool:
        second = int(time.time())
        with self.lock:
            window = self.windows.setdefault(pairing_id, Window())
            if window.second != second:
                window.second, window.calls = second, 0
            window.calls += 1
            return window.calls > per_second
