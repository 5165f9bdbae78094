"""The simulators as containers, for real: the image, the compose services, the container backend of the runner.

These tests need a Docker-compatible engine. Where none answers they skip, saying why; they never fail for it.
The image is built once per session (layers cached by the engine: quick when ``.ci/run`` built it already);
set ``ESANTE_IMAGE`` to test an image built elsewhere instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from esante.harness.containers import (
    HEALTH_CHECK,
    SimulatorContainer,
    build_image,
    compose_services,
    engine_problem,
    image_name,
    start_service,
)
from esante.harness.session import CONTAINERS, RunRequest, play
from esante.reports import verify_bundle
from esante.simulators.core.evidence.remote import verify_imported

pytestmark = [pytest.mark.container, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
ENGINE_PROBLEM = engine_problem()


@pytest.fixture(scope="module")
def image() -> str:
    if ENGINE_PROBLEM:
        pytest.skip(f"container tests need a container engine: {ENGINE_PROBLEM}")
    tag = image_name()
    if not os.environ.get("ESANTE_IMAGE"):
        build_image(tag)
    return tag


def _exec(container: SimulatorContainer, *command: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = container.container.get_wrapped_container().exec_run(list(command), environment=env or {})
    return result.exit_code, result.output.decode(errors="replace")


def test_image_runs_as_a_non_root_user_and_checks_the_simulator_it_serves(image: str) -> None:
    container = SimulatorContainer("insi", image=image, admin_token="t", ca=None).start()
    try:
        assert _exec(container, "id", "-u") == (0, "10001\n")
        assert _exec(container, *HEALTH_CHECK)[0] == 0
        code, output = _exec(container, *HEALTH_CHECK, env={"ESANTE_SIMULATOR": "psc"})
        assert code == 1 and "'simulator': 'insi'" in output, "a health check must name the simulator it expects"
        code, output = _exec(container, *HEALTH_CHECK, env={"ESANTE_PORT": "8999"})
        assert code == 1 and "unhealthy" in output
    finally:
        container.stop()


def _verdicts(out: Path) -> dict[str, str]:
    return {case["id"]: case["verdict"] for case in json.loads((out / "report.json").read_text())["cases"]}


@pytest.mark.parametrize("defects", [(), ("wrong_oid", "wrong_certificate")], ids=["correct", "defective"])
def test_insi_campaign_in_containers_gives_the_local_verdicts(image: str, tmp_path: Path,
                                                              defects: tuple[str, ...]) -> None:
    """Simulators in containers, the reference candidate outside (this process): same verdicts as local mode,
    and the run's bundle holds, verifiably, everything the containers observed."""
    pki, key = tmp_path / "pki", tmp_path / "signing.pem"
    local = play(RunRequest("insi", out_dir=tmp_path / "local", pki_dir=pki, defects=defects, signing_key=key))
    contained = play(RunRequest("insi", out_dir=tmp_path / "containers", pki_dir=pki, defects=defects,
                                signing_key=key, simulators=CONTAINERS, image=image))
    assert _verdicts(contained.out_dir) == _verdicts(local.out_dir)
    if defects:
        assert "failed" in _verdicts(contained.out_dir).values()
    assert all(url.startswith("https://") for url in contained.result.simulators.values())
    assert verify_bundle(contained.reports.bundle).ok
    with zipfile.ZipFile(contained.reports.bundle) as bundle:
        rows = [json.loads(line) for line in bundle.read("evidence/records.jsonl").splitlines() if line]
    assert verify_imported(rows) == []
    exchanges = sum(len(case.exchanges) for case in contained.result.cases)
    assert exchanges > 0 and sum(r["kind"] == "exchange.request" for r in rows) == exchanges
    assert any(case.exchanges and case.exchanges[0].client_cert_subject for case in contained.result.cases), \
        "the candidate authenticated to the containers with its test-PKI certificate, as in local mode"


@pytest.mark.parametrize("defects", [(), ("psc_ignores_nonce",)], ids=["correct", "defective"])
def test_psc_campaign_in_containers_gives_the_local_verdicts(image: str, tmp_path: Path,
                                                             defects: tuple[str, ...]) -> None:
    """The PSC federator in a container, the harness's browser and the reference candidate outside: the issuer,
    redirects and login page work through the published port, and the verdicts are those of local mode."""
    pki, key = tmp_path / "pki", tmp_path / "signing.pem"
    local = play(RunRequest("psc", out_dir=tmp_path / "local", pki_dir=pki, defects=defects, signing_key=key))
    contained = play(RunRequest("psc", out_dir=tmp_path / "containers", pki_dir=pki, defects=defects,
                                signing_key=key, simulators=CONTAINERS, image=image))
    assert _verdicts(contained.out_dir) == _verdicts(local.out_dir)
    assert ("failed" in _verdicts(contained.out_dir).values()) == bool(defects)
    assert verify_bundle(contained.reports.bundle).ok


@pytest.mark.parametrize("defects", [(), ("vihf_unsigned",)], ids=["correct", "defective"])
def test_dmp_campaign_in_containers_gives_the_local_verdicts(image: str, tmp_path: Path,
                                                             defects: tuple[str, ...]) -> None:
    """The DMP in a container verifies the candidate's VIHF signatures against the run's test CA, copied in,
    and gives the verdicts of local mode."""
    pki, key = tmp_path / "pki", tmp_path / "signing.pem"
    local = play(RunRequest("dmp", out_dir=tmp_path / "local", pki_dir=pki, defects=defects, signing_key=key))
    contained = play(RunRequest("dmp", out_dir=tmp_path / "containers", pki_dir=pki, defects=defects,
                                signing_key=key, simulators=CONTAINERS, image=image))
    assert _verdicts(contained.out_dir) == _verdicts(local.out_dir)
    assert ("failed" in _verdicts(contained.out_dir).values()) == bool(defects)
    assert verify_bundle(contained.reports.bundle).ok


# -- the compose file, service by service --------------------------------------------------------------------

def test_every_compose_service_comes_up_healthy(image: str) -> None:
    """No compose tool is needed: each service (the reference profile's too) is started with its own
    environment and command, and waited for with its own health check command."""
    env = {"ESANTE_ADMIN_TOKEN": "compose-token", "ESANTE_IMAGE": image}
    services = compose_services(COMPOSE, env, profiles=("reference",))
    assert {"insi", "psc", "dmp", "reference"} <= set(services)
    started = []
    try:
        for name, service in services.items():
            started.append(start_service(service))
            assert started[-1].get_wrapped_container().attrs["Config"]["User"] == "esante", name
    finally:
        for container in started:
            container.stop()


# -- the pytest plugin, in containers ------------------------------------------------------------------------

def test_plugin_fixtures_run_the_example_in_containers(image: str, tmp_path: Path) -> None:
    from tests.test_pytest_plugin import example, example_passes

    (tmp_path / "test_example.py").write_text(example())
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--esante-simulators",
                          "container", "--esante-image", image, str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(example_passes(), run.stdout), run.stdout
