"""Mon espace santé's state stays bounded between resets (found by the soak, ``benchmarks/soak.py``): pairings
their codes and tokens no longer refer to are forgotten, past rate-limit windows dropped, the table capped."""

from __future__ import annotations

import time

import pytest

from esante.simulators.kits.oauth import server
from esante.simulators.kits.oauth.server import EXPIRED_KEPT, PendingAuthorization, new_id
from esante.simulators.mes.catalogue import Dossier
from esante.simulators.mes.protocol import ACCESS_LIFETIME, CODE_LIFETIME, PAIRING_LIFETIME
from esante.simulators.mes.state import MesState, Pairing


def _pair(state: MesState, scope: str = "patient/Observation.read") -> Pairing:
    """What a pairing leaves behind: its pairing, its used code, its access token, a rate-limit window."""
    now = time.time()
    pending = PendingAuthorization(id=new_id(), client_id="app", redirect_uri="https://app.example/cb", state=None,
                                   scope=scope, code_challenge="x", code_challenge_method="S256")
    pairing = Pairing(new_id(12), "app", "P001", scope, now, now + PAIRING_LIFETIME)
    with state.lock:
        state.issue_code(pending, pairing.id, CODE_LIFETIME)
        state.add_pairing(pairing)
    state.issue(pairing, ACCESS_LIFETIME, offline=False)
    state.over_limit(pairing.id, 50)
    return pairing


def test_a_pairing_no_code_or_token_refers_to_is_forgotten_with_its_window() -> None:
    state = MesState()
    pairing = _pair(state)
    with state.lock:
        state.purge(time.time())
    assert state.pairing(pairing.id) is pairing  # its token is live: the app still uses it
    with state.lock:
        state.purge(time.time() + ACCESS_LIFETIME + EXPIRED_KEPT + 1)
    assert state.pairing(pairing.id) is None
    assert not state.windows and not state.tokens and not state.codes


def test_the_pairings_table_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_ENTRIES", 5)
    state = MesState()
    pairings = [_pair(state) for _ in range(8)]
    assert len(state.pairings) == 5
    assert state.pairing(pairings[0].id) is None and state.pairing(pairings[-1].id) is pairings[-1]


def test_the_referencing_dossiers_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone may submit a dossier (the referencing window is open): their number must not grow without end."""
    monkeypatch.setattr(server, "MAX_ENTRIES", 3)
    state = MesState()
    for _ in range(6):
        state.add_dossier(Dossier(new_id(9), {}, "submitted", []))
    assert len(state.dossiers) == 3
