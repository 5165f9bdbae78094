"""The PDT-INF-526 rights matrix as data (simulators/dmp/data/rights.yaml) and decide()."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from esante.simulators.dataset import load_dataset
from esante.simulators.dmp.patient.rights import ACCESS_DENIED, actor_of, decide, matrix
from esante.simulators.dmp.transport.vihf import Code, Vihf, parse_vihf
from tests.dmp_examples import TD_REQUESTS, example

DOCTOR = parse_vihf(example("VIHF_DIRECTE_non signe.xml"))  # 899900063480, Médecin SM26, DIRECTE, normal
CELL = re.compile(r"^(oui|non)( \((\d+)\))?$")


def _as(actor: str, mode: str = "normal") -> tuple[Vihf, bool]:
    """A VIHF (and the treating-doctor flag) that the matrix reads as ``actor`` in ``mode``."""
    vihf = replace(DOCTOR, purpose=Code(mode, DOCTOR.purpose.system))
    if actor == "ps_non_medecin":
        vihf = replace(vihf, profession=Code("60", "1.2.250.1.71.1.2.7"), savoir_faire=None)
    elif actor == "medecin_du_travail":
        vihf = replace(vihf, savoir_faire=Code("SM25", "1.2.250.1.71.4.2.5"))
    elif actor == "cpe":
        vihf = replace(vihf, national_id="3690990031/SECR01", profession=Code("SECRETAIRE", "1.2.250.1.213.1.1.4.6"))
    elif actor == "structure":
        vihf = replace(vihf, auth_mode="INDIRECTE")
    return vihf, actor == "medecin_traitant"


def _decide(transaction: str, actor: str, mode: str = "normal", action: str | None = None):
    vihf, treating = _as(actor, mode)
    decision = decide(transaction, vihf, action=action, is_treating_doctor=treating)
    assert decision.actor == actor
    return decision


def test_every_row_has_one_well_formed_cell_per_column() -> None:
    data = matrix()
    for transaction, rows in data["transactions"].items():
        for action, row in rows.items():
            assert len(row["cells"]) == len(data["columns"]), (transaction, action)
            for cell in row["cells"]:
                match = CELL.match(cell)
                assert match, (transaction, action, cell)
                assert match.group(3) is None or match.group(3) in data["notes"], (transaction, action, cell)


@pytest.mark.parametrize("transaction", list(matrix()["transactions"]) + list(matrix()["unlisted"]))
def test_every_transaction_answers_every_actor_in_every_mode(transaction: str) -> None:
    data = matrix()
    for actor in data["actors"]:
        for mode in data["modes"]:
            for action in data["transactions"].get(transaction, {None: None}):
                decision = _decide(transaction, actor, mode, action)
                assert decision.reason.startswith(f"PDT-INF-526 v1.8 {transaction}")
                assert decision.allowed == (decision.code is None)
                if decision.cell is not None:
                    assert decision.cell in decision.reason


# (transaction, action, actor, mode, sheet cell) read by hand from the sheet's text
HAND_CHECKED = [
    ("TD0.3", "se_supprimer_mt", "medecin_traitant", "normal", "oui"),
    ("TD0.3", "se_supprimer_mt", "medecin", "normal", "non"),
    ("TD0.3", "se_declarer_autorise", "cpe", "normal", "oui (1)"),
    ("TD0.4", None, "cpe", "normal", "oui (2)"),
    ("TD0.4", None, "structure", "normal", "oui (3)"),
    ("TD0.4", None, "structure", "centre_15", "non"),
    ("TD0.5", None, "medecin", "normal", "non"),
    ("TD0.5", None, "medecin", "centre_15", "oui"),
    ("TD0.5", None, "structure", "centre_15", "oui"),
    ("TD1.6", None, "medecin_du_travail", "normal", "oui"),
    ("TD1.6", None, "medecin_traitant", "bris_de_glace", "non"),
    ("TD2.1", None, "medecin_du_travail", "bris_de_glace", "oui"),
    ("TD2.1", None, "cpe", "normal", "non"),
    ("TD2.1", None, "structure", "normal", "oui (4)"),
    ("TD2.2", None, "cpe", "normal", "oui (4)"),
    ("TD3.1", "metadonnees", "structure", "normal", "non"),
    ("TD3.1", "reference", "structure", "normal", "oui (5)"),
    ("TD3.2", "non_masques", "medecin_du_travail", "normal", "non"),
    ("TD3.2", "masques", "medecin", "normal", "oui (6)"),
    ("TD3.2", "masques", "ps_non_medecin", "bris_de_glace", "oui (7)"),
    ("TD3.2", "masques", "medecin_traitant", "normal", "oui"),
    ("TD3.3a", "demasquer", "medecin_traitant", "normal", "oui"),
    ("TD3.3a", "demasquer", "medecin", "normal", "oui (8)"),
    ("TD3.3b", None, "ps_non_medecin", "centre_15", "non"),
    ("TD3.3c", None, "cpe", "normal", "oui (9)"),
    ("TD3.3d", "archiver", "medecin", "centre_15", "oui"),
    ("TD3.3d", "archiver", "ps_non_medecin", "centre_15", "non"),
]


@pytest.mark.parametrize(("transaction", "action", "actor", "mode", "cell"), HAND_CHECKED)
def test_cells_read_by_hand(transaction: str, action: str | None, actor: str, mode: str, cell: str) -> None:
    decision = _decide(transaction, actor, mode, action)
    assert decision.cell == cell
    assert decision.allowed == cell.startswith("oui")
    assert decision.code == (None if decision.allowed else ACCESS_DENIED)


def test_conditional_cells_carry_their_note() -> None:
    assert "Imputabilité à la structure" in _decide("TD2.1", "structure").reason
    assert "que par le MT" in _decide("TD3.3c", "medecin").reason


def test_a_mode_the_sheet_has_no_column_for_is_refused() -> None:
    for actor, mode in [("medecin_traitant", "centre_15"), ("cpe", "bris_de_glace"), ("structure", "bris_de_glace")]:
        decision = _decide("TD0.2", actor, mode)
        assert not decision.allowed and "no such column" in decision.reason


def test_transactions_without_a_row_are_not_restricted_and_unknown_ones_refused() -> None:
    assert _decide("TD1.4", "medecin").allowed
    assert "no row" in _decide("TD1.3b", "cpe").reason
    unknown = _decide("TD9.9", "medecin")
    assert (unknown.allowed, unknown.code) == (False, ACCESS_DENIED)
    assert not _decide("TD3.2", "medecin", action="imaginaire").allowed


def test_actor_categories() -> None:
    assert actor_of(DOCTOR) == "medecin"
    assert actor_of(DOCTOR, is_treating_doctor=True) == "medecin_traitant"
    assert actor_of(replace(DOCTOR, auth_mode="INDIRECTE")) == "structure"
    assert actor_of(replace(DOCTOR, auth_mode="INDIRECTE_RENFORCEE")) == "medecin"  # AIR: the professional's own
    # without a savoir-faire in the VIHF, the data set says who practises occupational health
    dataset = load_dataset()
    assert actor_of(replace(DOCTOR, savoir_faire=None), dataset=dataset) == "medecin"


@pytest.mark.parametrize("name", TD_REQUESTS)
def test_official_requests_against_the_matrix(name: str) -> None:
    """The official requests are a GP in DIRECTE, normal mode: every one is allowed but TD0.5, which the sheet
    opens only in régulation (the example shows the message form, not a permitted access)."""
    transaction = name.split(" ")[0]
    decision = decide(transaction, parse_vihf(example(name)))
    assert decision.allowed == (transaction != "TD0.5"), decision.reason
