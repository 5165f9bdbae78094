"""The value sets the DMP judges a feed's metadata with: the CI-SIS ones and the DMP's own codes
(``data/value_sets.yaml``: its confidentiality codes, JDV_J58)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from esante.simulators.kits.ihe_xds.value_sets import ValueSets, cisis_value_sets

DMP_CODES_FILE = Path(__file__).parent.parent / "data" / "value_sets.yaml"


@cache
def dmp_value_sets() -> ValueSets:
    """The CI-SIS value sets extended with the DMP's codes, read once."""
    return cisis_value_sets().extended(yaml.safe_load(DMP_CODES_FILE.read_text(encoding="utf-8")))
