"""The CI examples (``examples/github-actions.yml``, ``examples/gitlab-ci.yml``): valid YAML, calling only
``esante`` commands and options that exist, keeping the reports and the bundle whatever happened, never
swallowing the run's exit code — and the GitHub job's steps, played here against the reference candidate as
the test build, pass on a conformant build and fail on a defective one."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from esante.harness.cli import app
from esante.simulators.core.server import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GITHUB, GITLAB = EXAMPLES / "github-actions.yml", EXAMPLES / "gitlab-ci.yml"
BUILD = "./ci/start-test-build.sh"  # the editor's own script, the one command the examples cannot know
SWALLOWING = ("|| true", "set +e", "continue-on-error", "allow_failure")


def github_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
    assert workflow.get("on", workflow.get(True)), "no trigger"  # YAML 1.1 reads the key `on` as True
    [job] = workflow["jobs"].values()
    return job["steps"]


def gitlab_job() -> dict[str, Any]:
    [job] = yaml.safe_load(GITLAB.read_text(encoding="utf-8")).values()
    return job


def commands() -> dict[str, list[str]]:
    """Every shell line of each example."""
    github = [line for step in github_steps() for line in step.get("run", "").splitlines()]
    job = gitlab_job()
    gitlab = [line for key in ("before_script", "script", "after_script") for line in job.get(key, [])]
    return {"github": [c for c in github if c.strip()], "gitlab": gitlab}


def _check_esante(words: list[str]) -> None:
    """``esante ...`` names a command that exists, with options it takes and no more arguments than it has
    (the command line's own click objects tell, read by duck typing: typer ships its own click)."""
    command: Any = typer.main.get_command(app)
    rest = words[1:]
    while hasattr(command, "get_command"):  # a group: its next word names a command
        found = command.get_command(typer.Context(command), rest[0])
        assert found is not None, f"esante has no command {' '.join(words[:len(words) - len(rest) + 1])!r}"
        command, rest = found, rest[1:]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    takes_value = {opt for param in command.params if param.param_type_name == "option" and not param.is_flag
                   for opt in param.opts}
    arguments, skip = 0, False
    for word in rest:
        if skip:
            skip = False
        elif word.startswith("--"):
            assert word.split("=")[0] in options, f"esante {command.name} takes no option {word}"
            skip = word in takes_value
        else:
            arguments += 1
    assert arguments <= sum(p.param_type_name == "argument" for p in command.params), words


@pytest.mark.parametrize("example", ["github", "gitlab"])
def test_the_example_calls_only_commands_that_exist(example: str) -> None:
    lines = commands()[example]
    assert any(line.startswith("pip install esante-conformance") for line in lines)
    ran = [shlex.split(line.rstrip("&").strip(), comments=True) for line in lines]
    assert [words for words in ran if words[:2] == ["esante", "run"]], "the example plays no campaign"
    for words in ran:
        assert words[0] in ("pip", "esante", "curl", BUILD), f"an unknown command: {words}"
        if words[0] == "esante":
            _check_esante(words)
    assert not [line for line in lines for bad in SWALLOWING if bad in line]


def test_the_examples_keep_the_reports_and_the_bundle_whatever_happened() -> None:
    upload = next(step for step in github_steps() if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "${{ !cancelled() }}" and "conformance/insi/" in upload["with"]["path"]
    assert not any(step.get("continue-on-error") for step in github_steps())
    job = gitlab_job()
    assert job["artifacts"]["when"] == "always" and "conformance/insi/" in job["artifacts"]["paths"]
    assert job["artifacts"]["reports"]["junit"] == "conformance/insi/junit.xml"
    assert job["variables"]["OUT"] == "conformance/insi" and "allow_failure" not in job


def _play_github_job(tmp_path: Path, *build: str) -> subprocess.CompletedProcess[str]:
    """The GitHub job's shell steps, in order, as its runner plays them (bash -e, stopping at the first that
    fails): the package is already installed here, and the test build is ``esante reference``."""
    port = free_port()
    steps = []
    for step in github_steps():
        script = step.get("run", "")
        if not script or script.startswith("pip install"):
            continue
        steps.append(script.replace(BUILD, shlex.join(["esante", "reference", "--port", str(port), *build])))
    env = {**os.environ, "DRIVER_URL": f"http://127.0.0.1:{port}/esante/v1", "ESANTE_PKI_DIR": str(tmp_path / "pki"),
           "ESANTE_SIGNING_KEY": str(tmp_path / "key.pem"), "OUT": "conformance/insi",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + "\n".join(steps)
    return subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
def test_the_github_job_passes_a_conformant_build_and_fails_a_defective_one(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    good = _play_github_job(tmp_path / "good")
    assert good.returncode == 0, good.stdout + good.stderr
    assert (tmp_path / "good" / "conformance" / "insi" / "evidence-bundle.zip").is_file()
    assert "intact" in good.stdout
    (tmp_path / "bad").mkdir()
    bad = _play_github_job(tmp_path / "bad", "--defect", "fixes_lunar_date")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "[ 7/17] failed       INSI-07" in bad.stdout
    assert (tmp_path / "bad" / "conformance" / "insi" / "report.json").is_file()  # what the artefact step keeps
