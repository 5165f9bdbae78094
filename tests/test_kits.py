"""Test kits are found by entry point, and their defect catalogues refuse what they cannot judge."""

from __future__ import annotations

from typing import Any

import pytest

from esante.harness.campaign import resolve_campaign
from esante.harness.kits import Defect, defects, kit, kits


def test_every_shipped_service_has_a_kit_with_a_campaign() -> None:
    assert set(kits()) == {"insi", "psc", "dmp", "mes", "mssante"}
    for registered in kits().values():
        assert registered.package == f"esante.scenarios.{registered.name}"
        assert resolve_campaign(registered.name) == registered.campaign_path


def test_an_unknown_kit_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: dmp, insi"):
        kit("nope")
    with pytest.raises(FileNotFoundError, match="no test kit"):
        resolve_campaign("nope")


@pytest.mark.parametrize(("entry", "reason"), [
    ({"name": "x", "description": "d"}, "missing field.*rule"),
    ({"name": "x", "description": "d", "rule": "psc.pkce_s256", "fail": []}, "unknown field"),
    ({"name": "x", "description": "d", "rule": "psc.pkce_s256", "campaign": "psc"}, "unknown field"),
    ("psc_pkce_plain", "not a mapping"),
])
def test_the_catalogue_refuses_a_malformed_entry(entry: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Defect.from_entry(entry, "psc", "defects.yaml")


def test_defects_are_named_once_across_kits_and_say_their_campaign() -> None:
    catalogue = defects()
    assert len(catalogue) >= 100
    assert all(defect.campaign in kits() and defect.fails for defect in catalogue.values())
