"""Mon espace santé's state stays bounded between resets (found by the soak, ``benchmarks/soak.py``): pairings
their codes and tokens no longer refer to are forgotten, past rate-limit windows dropped, the table capped."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.kits.oauth import server
from esante.simulators.kits.oauth.server import EXPIRED_KEPT, PendingAuthorization, new_id
from esante.simulators.mes.catalogue import Dossier
from esante.simulators.mes.protocol import ACCESS_LIFETIME, CODE_LIFETIME, PAIRING_LIFETIME
from esante.simulators.mes.service import MesSimulator
from esante.simulators.mes.state import MesState, Pairing
from tests.test_mes_simulator import REDIRECT, Mes, api, pair, token


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


def test_a_token_whose_pairing_was_forgotten_is_unknown(tmp_path: Path) -> None:
    """A pairing the cap forgot while a token still named it: the token is unknown (401, invalid_grant), no 500."""
    settings = SimulatorSettings(evidence_path=tmp_path / "evidence.sqlite")
    simulator, store = MesSimulator(load_dataset()), EvidenceStore(settings.evidence_path)
    with ServerHandle(create_app(simulator, settings, store)) as handle, httpx.Client(timeout=10) as http:
        mes = Mes(handle.url, settings.admin_token, store, http)
        tokens = pair(mes)
        simulator.state.pairings.clear()
        answer = api(mes, tokens, "GET", "/Observation")
        assert answer.status_code == 401 and "TOKEN_INVALID" in answer.text
        refreshed = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                          redirect_uri=REDIRECT)
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
