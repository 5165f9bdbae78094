"""The command line: ``esante run`` exit codes and output, ``check-campaign``, ``list-checks``, ``schema``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esante.harness.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"ESANTE_PKI_DIR": str(tmp_path / "pki"), "ESANTE_SIGNING_KEY": str(tmp_path / "k.pem")}


def test_run_exit_codes_and_output(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    passed = runner.invoke(app, ["run", "insi", "--out", str(tmp_path / "a"), "--case", "INSI-01"], env=env)
    assert passed.exit_code == 0, passed.output
    assert "report.html" in passed.output and "evidence-bundle.zip" in passed.output
    assert (tmp_path / "a" / "evidence-bundle.zip").is_file()
    failed = runner.invoke(app, ["run", "insi", "--out", str(tmp_path / "b"), "--case", "INSI-07",
                                 "--defect", "fixes_lunar_date"], env=env)
    assert failed.exit_code == 1 and "DateNaissance sent as '1969-01-01'" in failed.output
    missing = runner.invoke(app, ["run", str(tmp_path / "missing.yaml")], env=env)
    assert missing.exit_code == 4 and "cannot run" in missing.output
    unreachable = runner.invoke(app, ["run", "insi", "--candidate", "http://127.0.0.1:9/esante/v1",
                                      "--out", str(tmp_path / "c")], env=env)
    assert unreachable.exit_code == 4


def test_check_campaign_names_file_line_and_field(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["check-campaign", "insi"]).exit_code == 0
    bad = Path(__file__).parent / "vectors" / "campaigns" / "bad_severity.yaml"
    result = runner.invoke(app, ["check-campaign", str(bad)])
    assert result.exit_code == 1 and "bad_severity.yaml:21" in result.output


def test_list_checks_and_schemas() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["list-checks"])
    assert listed.exit_code == 0 and "insi.security_context" in listed.output
    for what in ("campaign", "report", "driver"):
        result = runner.invoke(app, ["schema", what])
        assert result.exit_code == 0 and json.loads(result.output)


def test_driver_contract_document_is_published_and_current() -> None:
    from esante.harness.actions import contract_app

    shipped = Path(__file__).parent.parent / "harness" / "driver-openapi.json"
    assert json.loads(shipped.read_text()) == json.loads(json.dumps(contract_app().openapi())), \
        "regenerate: esante schema driver --write harness/driver-openapi.json"


def test_sim_refuses_an_option_the_simulator_does_not_take(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "psc", "--option", "nope=1", "--evidence", str(tmp_path / "e.sqlite")])
    assert result.exit_code == 4
    assert "nope" in result.output
    result = CliRunner().invoke(app, ["sim", "psc", "--option", "novalue"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output
