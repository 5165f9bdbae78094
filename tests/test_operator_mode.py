"""Operator mode, with a test playing the person at the prompts: doing the step in "the software" (the
reference candidate) when told to, then telling the runner what the software showed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from esante.harness.actions import ActionSpec
from esante.harness.campaign import Mode, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import API_PREFIX, ActionReport, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.operator import Operator
from esante.harness.reference import create_reference_app
from esante.harness.runner import CampaignRunner
from esante.reports.model import Verdict
from esante.scenarios.insi.models import InsiReport
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset


class ScriptedPerson:
    """Answers the runner's prompts like a tester would; ``lie`` makes them report a wrong INS."""

    def __init__(self, software: DriverClient, screenshot: Path, *, confirm: bool = True, lie: bool = False):
        self.software, self.screenshot, self.confirm, self.lie = software, screenshot, confirm, lie
        self.report: InsiReport | None = None
        self.prompts: list[str] = []

    def do_in_software(self, action: str, params: dict[str, Any]) -> None:
        self.report, _ = self.software.act(action, params, None, InsiReport)

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        report = self.report
        identity = report.identity if report else None
        ins = identity.ins if identity else None
        answers = {
            "Press Enter": "", "What did the software report": report.outcome.value if report else "",
            "Message shown": "", "Identity status shown": identity.status.value if identity else "PROV",
            "INS matricule shown": ("1" * 13 if self.lie else ins.nir) if ins else "",
            "INS key": ins.key if ins else "", "INS OID": ins.oid if ins else "",
            "Local patient id": identity.local_id if identity else "", "Is this true": "yes" if self.confirm else "no",
            "Note": "seen on the patient banner", "File to attach": str(self.screenshot),
        }
        for start, answer in answers.items():
            if prompt.startswith(start):
                return answer
        return ""  # accept the default (traits shown, pre-filled with what was typed)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[LocalEnvironment, DriverClient]]:
    with LocalEnvironment(["insi"], store=EvidenceStore(tmp_path / "e.sqlite"), pki_dir=tmp_path / "pki") as env, \
            ServerHandle(create_reference_app(pki_dir=tmp_path / "pki")) as software:
        driver = DriverClient(software.url + API_PREFIX)
        driver.reset(env.endpoints)
        yield env, driver
        driver.close()


def _run(env: LocalEnvironment, person: ScriptedPerson, cases: set[str]) -> Any:
    loaded = load_campaign(resolve_campaign("insi"), known_checks=load_checks())
    dataset = load_dataset()
    operator = Operator(Console(file=io.StringIO()), ask=person)
    original = operator.perform

    def perform(case_id: str, spec: ActionSpec, instruction: str, params: dict[str, Any]) -> ActionReport:
        # The person reads the instruction and does it in the software before pressing Enter.
        assert params["traits"]["birth_name"] in instruction
        person.do_in_software(spec.name, params)
        return original(case_id, spec, instruction, params)

    operator.perform = perform  # type: ignore[method-assign]
    assert dataset.patient("P001")
    return CampaignRunner(loaded, env, mode=Mode.OPERATOR, operator=operator, case_ids=cases).run()


def test_operator_plays_and_attests_with_a_screenshot(world, tmp_path: Path) -> None:
    env, software = world
    shot = tmp_path / "banner.png"
    shot.write_bytes(b"\x89PNG fake screenshot")
    result = _run(env, ScriptedPerson(software, shot), {"INSI-01", "INSI-03"})
    verdicts = {c.id: c.verdict for c in result.cases if c.verdict != Verdict.SKIPPED}
    assert verdicts == {"INSI-01": Verdict.PASSED, "INSI-03": Verdict.PASSED}
    attestation = env.store.records(kind="attestation")[0]
    assert attestation.payload["confirmed"] is True
    assert env.store.blob(attestation.payload["attachment_sha256"]) == b"\x89PNG fake screenshot"
    assert result.candidate.mode == "operator"


def test_attestation_not_confirmed_fails_the_case(world, tmp_path: Path) -> None:
    env, software = world
    result = _run(env, ScriptedPerson(software, tmp_path / "none.png", confirm=False), {"INSI-01"})
    case = next(c for c in result.cases if c.id == "INSI-01")
    assert case.verdict == Verdict.FAILED and "operator did not confirm" in case.reason


def test_operator_reporting_a_wrong_ins_fails_the_check(world, tmp_path: Path) -> None:
    env, software = world
    result = _run(env, ScriptedPerson(software, tmp_path / "none.png", lie=True), {"INSI-01"})
    case = next(c for c in result.cases if c.id == "INSI-01")
    assert case.verdict == Verdict.FAILED and "identity.ins_as_returned" in case.reason
