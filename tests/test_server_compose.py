"""The lab's compose services (docker/lab.yaml, included by compose.yaml), read statically like tests/test_compose.py:
the lab must not change what the simulators' own ``up`` needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from esante.harness.containers import compose_services

DOCKER = Path(__file__).resolve().parent.parent / "docker"


def test_the_lab_is_included_and_needs_no_variable_of_the_simulators_users() -> None:
    assert "lab.yaml" in yaml.safe_load((DOCKER / "compose.yaml").read_text())["include"]
    assert compose_services(DOCKER / "lab.yaml", {}) == {}  # interpolated, but off without its profile
    lab = compose_services(DOCKER / "lab.yaml", {"ESANTE_LAB_DB_PASSWORD": "pw"}, profiles=("lab",))
    assert set(lab) == {"lab-db", "lab", "lab-worker"}
    assert lab["lab"]["environment"]["ESANTE_LAB_DATABASE"] == "postgresql://lab:pw@lab-db:5432/lab"
    assert lab["lab-worker"]["command"][:2] == ["serve", "--worker"]
