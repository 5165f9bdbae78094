"""The command line: ``esante run`` exit codes and output (in a CI log: one unwrapped line per case as it goes,
each failure with its requirement ids), the lists, the refusals (a defect of another campaign, a bundle that is
not a file, a port in use), ``check-campaign``, ``schema``."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from esante.harness.cli import app
from esante.harness.kits import defects, kits
from esante.harness.run_display import MAX_REASON, RunDisplay, shorten
from esante.harness.runner import CaseProgress
from esante.harness.session import load
from esante.reports.model import CaseResult, CheckResult, Verdict

VECTORS = Path(__file__).parent / "vectors"


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


def test_run_in_a_ci_log_prints_each_case_unwrapped_as_it_goes(tmp_path: Path, env: dict[str, str]) -> None:
    """stdout is a pipe, as in CI: each case's line is there before the run ends, whole, and a failure names
    its check and the requirements that check judges."""
    command = [sys.executable, "-m", "esante.harness.cli", "run", "insi", "--out", str(tmp_path / "run"),
               "--defect", "fixes_lunar_date"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **env, "COLUMNS": "80"}) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        running = process.poll() is None
        rest = process.stdout.read()
    assert first.startswith("[ 1/17] passed") and "INSI-01" in first
    assert running, "the first case's line came only when the run was over"
    assert process.returncode == 1
    lines = (first + rest).splitlines()
    assert "[ 4/17] passed       INSI-04 Twins whose traits collide, found by their second first name (" in rest
    assert any(line.startswith("[ 7/17] failed       INSI-07") for line in lines)
    failure = next(line for line in lines if "insi.lunar_date_kept" in line)
    assert failure.strip().startswith("insi.lunar_date_kept [INSI-REQ-02]: call 1 (POST /lps at ")
    assert failure.rstrip().endswith("(unknown parts must stay 00)")
    assert "identity.ins_as_returned [IDV-01]:" in rest


def test_a_long_reason_is_cut_at_a_word_with_an_ellipsis() -> None:
    reason = "DateNaissance " * 200
    shortened = shorten(reason)
    assert len(shortened) <= MAX_REASON + 2 and shortened.endswith("DateNaissance …")
    assert shorten("short enough") == "short enough"


def test_on_a_terminal_a_progress_bar_runs_beneath_the_lines() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    case = load("insi").campaign.cases[0]
    result = CaseResult(id=case.id, title=case.title, requirements=[], severity="major", verdict=Verdict.FAILED,
                        reason="r", started_at="", duration_ms=120.0, checks=[CheckResult(
                            check="insi.soap12_envelope", requirements=["INSI-EXG-01"], verdict=Verdict.FAILED,
                            message="body is not a SOAP envelope")])
    with RunDisplay(console, live=True) as display:
        display(CaseProgress(1, 2, case))
        display(CaseProgress(1, 2, case, result))
    shown = screen.getvalue()
    assert "1/2" in shown and "\x1b[" in shown  # the bar, drawn with terminal codes
    assert "INSI-01 Identity found from traits (0.1 s)" in shown
    assert "insi.soap12_envelope [INSI-EXG-01]: body is not a SOAP envelope" in shown


def test_an_operator_session_without_input_stops_and_says_how_to_resume(tmp_path: Path,
                                                                          env: dict[str, str]) -> None:
    out = tmp_path / "session"
    stopped = CliRunner().invoke(app, ["run", "insi", "--operator", "--out", str(out), "--case", "INSI-02"],
                                 input="", env=env)
    assert stopped.exit_code == 130, stopped.output
    assert f"resume: esante run insi --candidate reference --operator --resume {out}" in stopped.output
    assert (out / "operator-session.json").is_file()  # resumable though no case was judged
    assert CliRunner().invoke(app, ["run", "insi", "--resume", str(out)], env=env).exit_code == 2  # no --operator


def test_check_campaign_names_file_line_and_field(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["check-campaign", "insi"]).exit_code == 0
    bad = VECTORS / "campaigns" / "bad_severity.yaml"
    result = runner.invoke(app, ["check-campaign", str(bad)])
    assert result.exit_code == 1 and "bad_severity.yaml:21" in result.output


def test_check_campaign_names_every_problem_in_one_pass() -> None:
    result = CliRunner().invoke(app, ["check-campaign", str(VECTORS / "campaigns" / "many_problems.yaml")])
    assert result.exit_code == 1
    for found in ("unknown driver action 'insi.lookup_trait'", "no patient with id 'P999'",
                  "unknown check 'insi.does_not_exist'", "many_problems.yaml:28: cases[2].requirements[0]",
                  "many_problems.yaml:38: cases[3].severity", "invalid: 7 problem(s)"):
        assert found in result.output, result.output


def test_lists() -> None:
    runner = CliRunner()
    campaigns = runner.invoke(app, ["list", "campaigns"])
    assert campaigns.exit_code == 0 and all(name in campaigns.output for name in kits())
    assert "INSI-CLIENT" in campaigns.output
    checks = runner.invoke(app, ["list", "checks"])
    row = next(line for line in checks.output.splitlines() if "insi.lunar_date_kept" in line)
    assert "INSI-REQ-02" in row and "insi" in row
    listed = runner.invoke(app, ["list", "defects"])
    assert listed.exit_code == 0
    assert all(f"{name}:" in listed.output for name in {d.campaign for d in defects().values()})
    row = next(line for line in listed.output.splitlines() if "fixes_lunar_date" in line)
    assert "insi.lunar_date_kept" in row and "INSI-07" in row
    only = runner.invoke(app, ["list", "defects", "--campaign", "psc"])
    assert "psc_ignores_state" in only.output and "fixes_lunar_date" not in only.output
    actions = runner.invoke(app, ["list", "actions"])
    row = next(line for line in actions.output.splitlines() if "insi.lookup_traits" in line)
    assert "traits, id_document_checked" in row and "InsiReport" in row and "signed_in" not in row
    assert runner.invoke(app, ["list-checks"]).exit_code == 0  # the former name still works


def test_a_defect_of_another_campaign_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    foreign = runner.invoke(app, ["run", "insi", "--defect", "psc_ignores_state", "--out", str(tmp_path / "a")],
                            env=env)
    assert foreign.exit_code == 4
    assert "defect psc_ignores_state belongs to the psc campaign" in foreign.output
    assert not (tmp_path / "a").exists()  # refused before anything started
    unknown = runner.invoke(app, ["run", "insi", "--defect", "no_such_defect"], env=env)
    assert unknown.exit_code == 4 and "unknown defect(s) no_such_defect" in unknown.output
    not_reference = runner.invoke(app, ["run", "insi", "--candidate", "http://127.0.0.1:9/esante/v1",
                                        "--defect", "fixes_lunar_date"], env=env)
    assert not_reference.exit_code == 4 and "needs --candidate reference" in not_reference.output


def test_verify_refuses_what_is_not_a_bundle_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["verify", str(tmp_path / "missing.zip")]).exit_code == 2
    assert runner.invoke(app, ["verify", str(tmp_path)]).exit_code == 2


def test_verify_says_once_that_a_bundle_was_rezipped(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["run", "insi", "--case", "INSI-01", "--out", str(tmp_path / "run")],
                         env=env).exit_code == 0
    rezipped = tmp_path / "rezipped.zip"
    with zipfile.ZipFile(tmp_path / "run" / "evidence-bundle.zip") as signed, \
            zipfile.ZipFile(rezipped, "w") as again:  # as `unzip` then `zip -r` would: folders get entries
        folders = sorted({name.rsplit("/", 1)[0] + "/" for name in signed.namelist() if "/" in name})
        for folder in folders:
            again.writestr(zipfile.ZipInfo(folder), b"")
        for info in signed.infolist():
            again.writestr(info, signed.read(info))
    result = runner.invoke(app, ["verify", str(rezipped)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "re-zipped" in lines[0] and "folder entries" in lines[0], result.output


def test_sim_with_its_port_in_use_says_so_first_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["sim", "insi", "--port", str(port),
                                          "--evidence", str(tmp_path / "evidence.sqlite")])
    assert result.exit_code == 4
    assert result.output.startswith(f"cannot serve on 127.0.0.1:{port}: the port is in use"), result.output
    assert "admin token" not in result.output
    assert not (tmp_path / "evidence.sqlite").exists()


def test_the_containers_hint_keeps_its_brackets(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["run", "insi", "--simulators", "containers"], env=env)
    assert result.exit_code == 4
    assert "pip install 'esante-conformance[containers]'" in result.output


def test_list_checks_and_schemas() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "checks"])
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
