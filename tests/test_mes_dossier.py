"""The referencing window's admissibility, offline (``esante mes check-dossier``) and on evidence bundles:
what is missing and malformed, file:line; cited campaign evidence must be intact and passed; hostile files
are refused cleanly."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from esante.harness.cli import app
from esante.simulators.mes.catalogue import FAMILIES, LIFECYCLE, Dossier, check_dossier, criteria

REFERENCE = Path(__file__).parents[1] / "harness/reference/mes/dossier.yaml"
BAD = Path(__file__).parent / "vectors/mes/bad_dossier.yaml"


def test_criteria_catalogue_is_realistic() -> None:
    catalogue = criteria()
    assert len(catalogue) == 150
    assert {c.family for c in catalogue.values()} == set(FAMILIES)
    assert 40 < sum(c.mandatory for c in catalogue.values()) < 100


def test_complete_dossier_is_admissible() -> None:
    result = check_dossier(REFERENCE.read_text(encoding="utf-8"))
    assert result.admissible, result.findings[:3]
    assert len(result.answers) == 150


def test_every_kind_of_problem_is_named_with_its_line() -> None:
    findings = {(f.line, f.kind, f.message.split(":")[0]) for f in check_dossier(BAD.read_bytes()).findings}
    assert (4, "missing", "service.editor is missing") in findings
    assert (7, "missing", "SEC-01") in findings          # yes without evidence
    assert (8, "malformed", "SEC-02") in findings        # wrong family
    assert (9, "malformed", "SEC-03") in findings        # answer not in the list
    assert (10, "malformed", "criterion 'XYZ-99' is not in the catalogue") in findings
    assert (11, "malformed", "INT-01") in findings       # evidence not a reference
    assert (12, "malformed", "criterion SEC-03 is answered twice") in findings
    missing = [f for f in check_dossier(BAD.read_bytes()).findings if "is not answered" in f.message]
    assert len(missing) == sum(c.mandatory for c in criteria().values()) - 3  # SEC-01, SEC-03, INT-01 answered


@pytest.mark.parametrize("text", [
    (Path(__file__).parent / "vectors/mes/alias_bomb.yaml").read_text(encoding="utf-8"),
    "[" * 5000 + "]" * 5000,
    "dossier: {answers: 12}",
    "\x00\x01binary",
    "x" * (1024 * 1024 + 1),
])
def test_hostile_dossiers_are_refused_cleanly(text: str) -> None:
    result = check_dossier(text)
    assert not result.admissible and result.findings


def test_lifecycle_moves_one_step_at_a_time() -> None:
    dossier = Dossier("d1", {}, "submitted", [])
    for status in LIFECYCLE[1:]:
        dossier.advance(status)
    assert dossier.status == "referenced" and [h["status"] for h in dossier.history] == list(LIFECYCLE[1:])
    with pytest.raises(ValueError, match="cannot move on"):
        dossier.advance("referenced")
    with pytest.raises(ValueError, match="next step is evaluation"):
        Dossier("d2", {}, "admissible", []).advance("opinion")


def test_cli_says_what_is_missing_and_malformed() -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["mes", "check-dossier", str(BAD)])
    assert bad.exit_code == 1
    assert f"{BAD}:10: malformed: criterion 'XYZ-99' is not in the catalogue" in bad.output
    assert "not admissible" in bad.output
    good = runner.invoke(app, ["mes", "check-dossier", str(REFERENCE)])
    assert good.exit_code == 0 and "admissible: 150 criteria answered" in good.output
    assert runner.invoke(app, ["mes", "check-dossier", "/nonexistent.yaml"]).exit_code == 4


def test_dossier_cites_a_passed_case_of_an_intact_bundle(tmp_path: Path) -> None:
    env = {"ESANTE_PKI_DIR": str(tmp_path / "pki"), "ESANTE_SIGNING_KEY": str(tmp_path / "k.pem")}
    runner = CliRunner()
    run = runner.invoke(app, ["run", "mes", "--out", str(tmp_path / "run"), "--case", "MES-19"], env=env)
    assert run.exit_code == 0, run.output
    shutil.copy(tmp_path / "run/evidence-bundle.zip", tmp_path / "evidence.zip")
    dossier = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    answers = dossier["dossier"]["answers"]
    answers[0]["evidence"] = ["bundle:evidence.zip#MES-19"]
    answers[2]["evidence"] = ["bundle:evidence.zip#MES-01"]          # skipped in that run
    answers[4]["evidence"] = ["bundle:../outside.zip#MES-19"]        # outside the dossier's folder
    path = tmp_path / "dossier.yaml"
    path.write_text(yaml.safe_dump(dossier, sort_keys=False), encoding="utf-8")
    messages = [f.message for f in check_dossier(path.read_bytes(), tmp_path).findings]
    assert len(messages) == 2, messages
    assert "case MES-01 did not pass in that run (skipped)" in messages[0] and "no bundle ../outside.zip" in messages[1]
    with zipfile.ZipFile(tmp_path / "run/evidence-bundle.zip") as original, \
            zipfile.ZipFile(tmp_path / "evidence.zip", "w") as tampered:  # MES-01 "passed", after signing
        for member in original.infolist():
            data = original.read(member)
            tampered.writestr(member, data.replace(b'"verdict": "skipped"', b'"verdict": "passed"')
                              if member.filename == "report.json" else data)
    messages = [f.message for f in check_dossier(path.read_bytes(), tmp_path).findings]
    assert any("not intact" in m for m in messages), messages
