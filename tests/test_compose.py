"""The compose file and the Dockerfile, read statically: these hold on any machine, engine or not.

Every registered simulator must have its compose service (adding a simulator is adding one service); the
container tests then start each service for real.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from esante.harness.containers import compose_services
from esante.harness.remote import RemoteConfig

DOCKER = Path(__file__).resolve().parent.parent / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
SIMULATORS = {s: v for s, v in SERVICES.items() if "reference" not in v.get("profiles", [])}


def _port(service: dict) -> int:
    return int(service["ports"][0].rsplit(":", 1)[1])


def test_every_registered_simulator_has_its_own_service_and_port() -> None:
    registered = {ep.name for ep in entry_points(group="esante.simulators")}
    assert set(SIMULATORS) == registered
    for name, service in SIMULATORS.items():
        env = service["environment"]
        assert env["ESANTE_SIMULATOR"] == name
        assert int(env["ESANTE_PORT"]) == _port(service)
        assert service["ports"][0].startswith("127.0.0.1:"), "a lab is not published beyond this machine"
        assert env["ESANTE_EVIDENCE"] == f"/data/evidence/{name}.sqlite"
        assert name in env["ESANTE_TLS_HOSTNAMES"].split(), "other containers reach it by service name"
    ports = [_port(s) for s in SERVICES.values()]
    assert len(ports) == len(set(ports))
    assert _port(SERVICES["insi"]) == 8001


def test_services_share_the_settings_of_local_mode_and_the_volumes() -> None:
    for name, service in SIMULATORS.items():
        env = service["environment"]
        assert env["ESANTE_ADMIN_TOKEN"].startswith("${ESANTE_ADMIN_TOKEN:?"), name
        assert env["ESANTE_DATASET"] == "${ESANTE_DATASET:-default}"
        assert env["ESANTE_TLS"] == "${ESANTE_TLS:-true}"
        assert set(service["volumes"]) == {"evidence:/data/evidence", "pki:/data/pki"}
        assert service["healthcheck"]["test"] == ["CMD", "python", "/opt/esante/healthcheck.py"]
    assert set(COMPOSE["volumes"]) == {"evidence", "pki"}


def test_reference_candidate_is_a_profile_waiting_for_healthy_simulators() -> None:
    reference = SERVICES["reference"]
    assert reference["profiles"] == ["reference"]
    assert reference["command"][0] == "reference"
    assert reference["depends_on"]["insi"]["condition"] == "service_healthy"
    assert "pki:/data/pki" in reference["volumes"]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check_and_a_base_image_argument() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"
    assert len([line for line in lines if line.startswith("FROM ${BASE_IMAGE}")]) == 2
    assert re.search(r"^USER esante$", text, re.M) and "--uid 10001" in text
    assert re.search(r"^HEALTHCHECK .*healthcheck\.py", text, re.M)


def test_shipped_simulator_files_match_the_compose_ports() -> None:
    for name in ("simulators.yaml", "simulators-reference.yaml"):
        config = RemoteConfig.load(DOCKER / name)
        assert set(config.simulators) == set(SIMULATORS)
        for sim, endpoint in config.simulators.items():
            assert endpoint.url.port == _port(SERVICES[sim])
            if endpoint.candidate_url is not None:
                assert endpoint.candidate_url.host == sim


def test_compose_refuses_to_start_without_an_admin_token() -> None:
    with pytest.raises(ValueError, match="ESANTE_ADMIN_TOKEN is not set"):
        compose_services(DOCKER / "compose.yaml", {})
    services = compose_services(DOCKER / "compose.yaml", {"ESANTE_ADMIN_TOKEN": "x"})
    assert set(services) == set(SIMULATORS), "the reference candidate starts only with its profile"
    assert services["insi"]["image"] == "esante-conformance:latest"
