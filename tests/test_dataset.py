"""Tests of the shared fictitious data set and of the identifier utilities it relies on."""

from __future__ import annotations

import copy
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from esante.simulators.dataset import (
    Dataset,
    Patient,
    dataset_from_mapping,
    load_dataset,
)
from esante.simulators.dataset.identifiers import (
    is_valid_finess,
    is_valid_luhn,
    is_valid_nir,
    is_valid_rpps,
    luhn_check_digit,
    nir_key,
    normalise_name,
)

TEST_OID = "1.2.250.1.213.1.4.10"
DATA_DIR = Path(__file__).resolve().parents[1] / "simulators" / "dataset" / "data" / "default"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset("default")


def _with_note(dataset: Dataset, keyword: str) -> list[Patient]:
    return [p for p in dataset.patients if keyword.lower() in p.notes.lower()]


def _traits(patient: Patient) -> tuple[str, str, str, str]:
    return patient.birth_name, patient.sex, patient.birth_date, patient.birth_place


# --- Loading and validation ------------------------------------------------------------------------------


def test_default_dataset_loads(dataset: Dataset) -> None:
    assert dataset.name == "default"
    assert len(dataset.patients) >= 28
    assert len(dataset.professionals) >= 8
    assert len(dataset.structures) >= 5
    assert len(dataset.lps) >= 4


def test_load_from_filesystem_path(tmp_path: Path) -> None:
    copy_dir = tmp_path / "mine"
    shutil.copytree(DATA_DIR, copy_dir)
    from_path = load_dataset(copy_dir)
    assert from_path == load_dataset(str(copy_dir)) == load_dataset()


def test_unknown_dataset_name_is_refused() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-set"):
        load_dataset("no-such-set")


def test_lookups(dataset: Dataset) -> None:
    assert dataset.patient("P001").birth_name == "MOREAU"
    assert dataset.professional("PS001").structure_ids == ["S003"]
    assert dataset.structure("S004").sector_code == "SA33"
    assert dataset.lps_by_idam("ESANTE-REF-0001").name == "esante-reference-candidate"
    for finder, missing in [
        (dataset.patient, "P999"),
        (dataset.professional, "PS999"),
        (dataset.structure, "S999"),
        (dataset.lps_by_idam, "NOPE"),
    ]:
        with pytest.raises(KeyError, match=missing):
            finder(missing)


def test_models_are_frozen(dataset: Dataset) -> None:
    with pytest.raises(ValidationError):
        dataset.patient("P001").birth_name = "X"  # type: ignore[misc]


# --- Identifiers in the data ----------------------------------------------------------------------------


def test_all_ins_use_the_test_oid_and_valid_keys(dataset: Dataset) -> None:
    for patient in dataset.patients:
        for record in [patient.ins, *patient.ins_history]:
            assert record.oid == TEST_OID, patient.id
            assert is_valid_nir(record.nir, record.key), patient.id
        if patient.vitale:
            assert is_valid_nir(patient.vitale.holder_nir, patient.vitale.holder_key), patient.id


def test_active_nir_is_coherent_with_traits(dataset: Dataset) -> None:
    for patient in dataset.patients:
        nir = patient.ins.nir
        year, month = patient.birth_date[2:4], patient.birth_date[5:7]
        assert nir[0] == {"M": "1", "F": "2"}[patient.sex], patient.id
        assert nir[1:3] == year, patient.id
        assert (int(nir[3:5]) >= 20) if month == "00" else (nir[3:5] == month), patient.id
        assert nir[5:10] == patient.birth_place, patient.id


def test_professional_and_structure_numbers_are_valid(dataset: Dataset) -> None:
    for professional in dataset.professionals:
        # Invented numbers start with 1; the official DMP examples' ANS test cards (ids DMPEX-*) keep their 999...
        invented = professional.rpps.startswith("1") or professional.id.startswith("DMPEX-")
        assert invented and is_valid_rpps(professional.rpps), professional.id
    for structure in dataset.structures:
        assert is_valid_finess(structure.finess), structure.id
        assert structure.finess_legal is None or is_valid_finess(structure.finess_legal), structure.id
        assert structure.siret is None or is_valid_luhn(structure.siret), structure.id


def test_professions_and_sectors_are_varied(dataset: Dataset) -> None:
    assert {"10", "21", "40", "50", "60", "70"} <= {p.profession_code for p in dataset.professionals}
    assert {"SM26", "SM04", "SM03"} <= {p.specialty_code for p in dataset.professionals}
    assert {"SA01", "SA04", "SA07", "SA25", "SA33"} <= {s.sector_code for s in dataset.structures}


def test_lps_list(dataset: Dataset) -> None:
    reference = dataset.lps_by_idam("ESANTE-REF-0001")
    assert (reference.version, reference.authorised) == ("1.0.0", True)
    assert dataset.lps_by_idam("ESANTE-REVOKED-0099").authorised is False
    assert sum(lps.authorised for lps in dataset.lps) >= 3


# --- Hard cases present ---------------------------------------------------------------------------------


def test_happy_path_patients(dataset: Dataset) -> None:
    for pid in ("P001", "P002", "P003", "P004", "P005"):
        patient = dataset.patient(pid)
        assert "happy path" in patient.notes
        assert len(patient.first_names) == 1 and patient.local_traits is None and not patient.ins_history


@pytest.mark.parametrize("name", ["LÉVÊQUE", "NOËL", "MARÇAIS", "ŒUVRARD", "D'AUBIGNÉ", "N'DIAYE"])
def test_accented_and_apostrophe_names(dataset: Dataset, name: str) -> None:
    assert any(p.birth_name == name for p in dataset.patients)


def test_compound_and_unusual_birth_names(dataset: Dataset) -> None:
    names = [p.birth_name for p in dataset.patients]
    assert "MARTIN-DUBOIS" in names and "DE LA FONTAINE" in names
    assert max(len(n) for n in names) >= 60
    assert min(len(n) for n in names) == 1


def test_first_name_cases(dataset: Dataset) -> None:
    assert any("JEAN-PIERRE" in p.first_names for p in dataset.patients)
    assert any(len(p.first_names) >= 3 for p in dataset.patients)
    pairs = [
        (p.first_names, p.local_traits.first_names)
        for p in dataset.patients
        if p.local_traits and p.local_traits.first_names
    ]
    assert any(sorted(civil) == sorted(local) and civil != local for civil, local in pairs)
    assert any(set(civil) < set(local) for civil, local in pairs)


def test_lunar_dates(dataset: Dataset) -> None:
    dates = [p.birth_date for p in dataset.patients]
    assert any(d.endswith("-00") and not d.endswith("-00-00") for d in dates)
    assert any(d.endswith("-00-00") for d in dates)
    assert all(isinstance(d, str) for d in dates)


def test_birth_places(dataset: Dataset) -> None:
    places = {p.birth_place for p in dataset.patients}
    assert {"99134", "99350", "99109"} <= places
    assert {"2A004", "2B033"} <= places
    corsican = [p for p in dataset.patients if p.birth_place.startswith("2") and p.birth_place[1] in "AB"]
    assert all(p.ins.nir[5:7] == p.birth_place[:2] for p in corsican)


def test_twins_collide_except_first_names(dataset: Dataset) -> None:
    first, second = dataset.patient("P020"), dataset.patient("P021")
    assert "twins" in first.notes and "twins" in second.notes
    assert _traits(first) == _traits(second)
    assert (first.first_names_list, second.first_names_list) == ("JEAN LUC", "JEAN MARC")
    assert first.ins.nir != second.ins.nir


def test_namesakes_are_identical_but_distinct(dataset: Dataset) -> None:
    namesakes = _with_note(dataset, "namesakes")
    assert len(namesakes) == 2
    first, second = namesakes
    assert _traits(first) == _traits(second) and first.first_names == second.first_names
    assert first.ins.nir != second.ins.nir and first.id != second.id


def test_deceased_patient(dataset: Dataset) -> None:
    deceased = [p for p in dataset.patients if p.deceased]
    assert deceased and all(p.death_date for p in deceased)


def test_replaced_ins(dataset: Dataset) -> None:
    replaced = [p for p in dataset.patients if p.ins_history]
    assert {len(p.ins_history) for p in replaced} >= {1, 2}
    for patient in replaced:
        for old in patient.ins_history:
            assert old.nir != patient.ins.nir and old.end is not None and old.start is not None
            assert patient.ins.start is not None and old.end < patient.ins.start


def test_carte_vitale_cases(dataset: Dataset) -> None:
    own = [p for p in dataset.patients if p.vitale and p.vitale.holder_nir == p.ins.nir]
    assert len(own) >= 5 and all(p.vitale and p.vitale.rank == 1 for p in own)
    children = [p for p in dataset.patients if p.vitale and p.vitale.holder_nir != p.ins.nir]
    assert any(p.vitale and p.vitale.rank == 2 for p in children)
    holders = {p.ins.nir for p in dataset.patients}
    assert all(p.vitale and p.vitale.holder_nir in holders for p in children)


def test_every_patient_says_what_it_exercises(dataset: Dataset) -> None:
    assert all(p.notes.strip() for p in dataset.patients)


def test_first_names_list_joins_with_spaces(dataset: Dataset) -> None:
    assert dataset.patient("P014").first_names_list == "JEAN-PIERRE ANDRÉ"


# --- Broken data is refused, naming the culprit -----------------------------------------------------------


@pytest.fixture()
def mapping(dataset: Dataset) -> dict[str, Any]:
    return copy.deepcopy(dataset.model_dump(mode="json"))


def test_round_trip(dataset: Dataset, mapping: dict[str, Any]) -> None:
    assert dataset_from_mapping(mapping) == dataset


def test_unknown_structure_reference(mapping: dict[str, Any]) -> None:
    mapping["professionals"][0]["structure_ids"] = ["S404"]
    with pytest.raises(ValueError, match=r"PS001.*S404"):
        dataset_from_mapping(mapping)


def test_duplicate_patient_id(mapping: dict[str, Any]) -> None:
    mapping["patients"][1]["id"] = mapping["patients"][0]["id"]
    with pytest.raises(ValueError, match="duplicate patient id: P001"):
        dataset_from_mapping(mapping)


def test_wrong_ins_key(mapping: dict[str, Any]) -> None:
    record = mapping["patients"][2]["ins"]
    record["key"] = f"{(int(record['key']) + 1) % 100:02d}"
    with pytest.raises(ValueError, match="P003"):
        dataset_from_mapping(mapping)


def test_wrong_rpps_and_finess(mapping: dict[str, Any]) -> None:
    bad = copy.deepcopy(mapping)
    rpps = bad["professionals"][1]["rpps"]
    bad["professionals"][1]["rpps"] = rpps[:-1] + str((int(rpps[-1]) + 1) % 10)
    with pytest.raises(ValueError, match="PS002"):
        dataset_from_mapping(bad)
    finess = mapping["structures"][0]["finess"]
    mapping["structures"][0]["finess"] = finess[:-1] + str((int(finess[-1]) + 1) % 10)
    with pytest.raises(ValueError, match="S001"):
        dataset_from_mapping(mapping)


def test_unknown_field_and_bad_date(mapping: dict[str, Any]) -> None:
    bad = copy.deepcopy(mapping)
    bad["patients"][0]["nickname"] = "X"
    with pytest.raises(ValueError, match="nickname"):
        dataset_from_mapping(bad)
    mapping["patients"][0]["birth_date"] = "1985-02-30"
    with pytest.raises(ValueError, match="1985-02-30"):
        dataset_from_mapping(mapping)


# --- Identifier utilities -------------------------------------------------------------------------------


def test_nir_key_examples() -> None:
    assert nir_key("2690549588157") == "80"
    # 2A -> 19 and 2B -> 18 before the modulo.
    assert nir_key("180032A020401") == f"{97 - 1800319020401 % 97:02d}"
    assert nir_key("180032B020401") == f"{97 - 1800318020401 % 97:02d}"


MALFORMED_NIRS = ["", "123", "12345678901234", "1800320A20401", "180032C020401", "18003 2020401"]


@pytest.mark.parametrize("bad", MALFORMED_NIRS)
def test_nir_key_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        nir_key(bad)
    assert not is_valid_nir(bad, "00")


def test_luhn_examples() -> None:
    assert luhn_check_digit("7992739871") == "3"
    assert is_valid_luhn("79927398713") and not is_valid_luhn("79927398710")
    assert not is_valid_luhn("12a4") and not is_valid_rpps("123") and not is_valid_finess("75099001")
    with pytest.raises(ValueError):
        luhn_check_digit("")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Lévêque", "LEVEQUE"),
        ("  d’Aubigné  ", "D'AUBIGNE"),
        ("N‘DIAYE", "N'DIAYE"),
        ("Œuvrard", "OEUVRARD"),
        ("Lætitia", "LAETITIA"),
        ("jean-pierre\t\n andré", "JEAN-PIERRE ANDRE"),
        ("Marçais", "MARCAIS"),
    ],
)
def test_normalise_name_examples(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


# --- Property tests -------------------------------------------------------------------------------------

_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
_department = st.one_of(st.text(alphabet="0123456789", min_size=2, max_size=2), st.sampled_from(["2A", "2B"]))
nirs = st.builds(
    lambda sex, head, department, tail: sex + head + department + tail,
    st.sampled_from("12345678"),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    _department,
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)


@given(nirs)
def test_nir_key_is_two_digits_and_validates(nir: str) -> None:
    key = nir_key(nir)
    assert len(key) == 2 and key.isdigit() and 1 <= int(key) <= 97
    assert is_valid_nir(nir, key)
    assert is_valid_nir(nir.lower(), key)


@given(nirs, st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=9))
def test_changing_one_nir_digit_breaks_the_key(nir: str, position: int, delta: int) -> None:
    assume(nir[position].isdigit())
    changed = nir[:position] + str((int(nir[position]) + delta) % 10) + nir[position + 1 :]
    assume(not (position == 5 and nir[6] in "AB"))  # "3A" is no department: malformed, not a key test
    assert not is_valid_nir(changed, nir_key(nir))


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_luhn_check_digit_validates(digits: str) -> None:
    assert is_valid_luhn(digits + luhn_check_digit(digits))


@given(st.text(alphabet="0123456789", min_size=1, max_size=20), st.data())
def test_luhn_detects_single_digit_change(digits: str, data: st.DataObject) -> None:
    number = digits + luhn_check_digit(digits)
    position = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    delta = data.draw(st.integers(min_value=1, max_value=9))
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not is_valid_luhn(changed)


@given(st.text())
def test_normalise_name_is_idempotent_upper_and_markless(text: str) -> None:
    once = normalise_name(text)
    assert normalise_name(once) == once
    assert once == once.upper()
    assert not any(unicodedata.combining(char) for char in once)
    assert once == once.strip() and "  " not in once


_ACCENTED = {
    "a": "àâäáã",
    "c": "ç",
    "e": "éèêë",
    "i": "îïí",
    "n": "ñ",
    "o": "ôöó",
    "u": "ùûüú",
    "y": "ÿý",
}


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz -'", min_size=1, max_size=30), st.data())
def test_normalise_name_ignores_case_and_accents(plain: str, data: st.DataObject) -> None:
    variant = ""
    for char in plain:
        options = [char, char.upper(), *_ACCENTED.get(char, "")]
        options += [accented.upper() for accented in _ACCENTED.get(char, "")]
        variant += data.draw(st.sampled_from(options))
    assert normalise_name(variant) == normalise_name(plain)
