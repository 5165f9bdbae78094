"""Operator mode, with a test playing the person at the prompts: pointing "the software" (the reference
candidate) at the simulators it is shown, doing each step there when told to, then telling the runner what the
software showed — mistyping, skipping a case, walking away mid-session and coming back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from esante.harness.actions import ActionSpec
from esante.harness.campaign import Mode
from esante.harness.driver import API_PREFIX, ActionReport, DriverClient
from esante.harness.operator import Operator
from esante.harness.reference import create_reference_app
from esante.harness.session import SESSION_FILE, RunInterrupted, RunOutput, RunRequest, play
from esante.reports import verify_bundle
from esante.reports.model import Verdict
from esante.scenarios.insi.models import InsiReport
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.server import ServerHandle


class ScriptedPerson:
    """Answers the runner's prompts like a tester would. ``lie`` makes them report a wrong INS, ``typo`` type a
    12-character matricule first, ``skip`` skip the named case, ``leave`` walk away (Ctrl-C) at the named case."""

    def __init__(self, software: DriverClient, screenshot: Path, *, confirm: bool = True, lie: bool = False,
                 typo: bool = False, skip: str | None = None, leave: str | None = None) -> None:
        self.software, self.screenshot, self.confirm, self.lie = software, screenshot, confirm, lie
        self.typo, self.skip, self.leave = typo, skip, leave
        self.report: InsiReport | None = None
        self.case: str | None = None
        self.prompts: list[str] = []

    def do_in_software(self, case_id: str, action: str, params: dict[str, Any]) -> None:
        self.case = case_id
        self.report, _ = self.software.act(action, params, None, InsiReport)

    def _matricule(self, nir: str) -> str:
        if self.typo and not any(p.startswith("INS matricule") for p in self.prompts[:-1]):
            return nir[:12]
        return "1" * 13 if self.lie else nir

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if prompt.startswith("Press Enter") and self.case == self.leave:
            raise KeyboardInterrupt
        identity = self.report.identity if self.report else None
        ins = identity.ins if identity else None
        answers = {
            "Press Enter": "skip" if self.case == self.skip else "",
            "Why skip": "the test build has no INS search screen yet",
            "What did the software report": self.report.outcome.value if self.report else "",
            "Message shown": "", "Identity status shown": identity.status.value if identity else "PROV",
            "INS matricule shown": self._matricule(ins.nir) if ins else "",
            "INS key": ins.key if ins else "", "INS OID": ins.oid if ins else "",
            "Local patient id": identity.local_id if identity else "", "Is this true": "yes" if self.confirm else "no",
            "Note": "seen on the patient banner", "File to attach": str(self.screenshot),
        }
        for start, answer in answers.items():
            if prompt.startswith(start):
                return answer
        return ""  # accept the default (traits shown, pre-filled with what was typed)


class Bench:
    """The person's desk: their software (the reference candidate, reached through its driver API only to play
    the person's clicks) and the screen the runner prints to."""

    def __init__(self, software: DriverClient, tmp_path: Path) -> None:
        self.software, self.tmp_path = software, tmp_path
        self.screen = io.StringIO()

    def operator(self, person: ScriptedPerson) -> Operator:
        operator = Operator(Console(file=self.screen, width=120), ask=person)
        introduce, perform = operator.introduce, operator.perform

        def point_software(endpoints: dict[str, str], ca_file: Path | None) -> None:
            introduce(endpoints, ca_file)
            self.software.reset(endpoints)  # the person configures their software with what they were shown

        def step(case_id: str, spec: ActionSpec, instruction: str, params: dict[str, Any]) -> ActionReport:
            person.do_in_software(case_id, spec.name, params)  # what they read, done in the software
            return perform(case_id, spec, instruction, params)

        operator.introduce, operator.perform = point_software, step  # type: ignore[method-assign]
        return operator

    def play(self, person: ScriptedPerson, cases: set[str] | None, out: str = "run", *,
             resume: bool = False) -> RunOutput:
        return play(RunRequest(campaign="insi", mode=Mode.OPERATOR, operator=self.operator(person),
                               case_ids=cases, out_dir=self.tmp_path / out, pki_dir=self.tmp_path / "pki",
                               signing_key=self.tmp_path / "key.pem", resume=resume))


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with ServerHandle(create_reference_app(pki_dir=tmp_path / "pki")) as software, \
            DriverClient(software.url + API_PREFIX) as driver:
        yield Bench(driver, tmp_path)


def _verdicts(output: RunOutput) -> dict[str, Verdict]:
    return {c.id: c.verdict for c in output.result.cases if c.reason != "not selected for this run"}


def test_operator_plays_and_attests_with_a_screenshot(bench: Bench, tmp_path: Path) -> None:
    shot = tmp_path / "banner.png"
    shot.write_bytes(b"\x89PNG fake screenshot")
    output = bench.play(ScriptedPerson(bench.software, shot), {"INSI-01", "INSI-03"})
    assert _verdicts(output) == {"INSI-01": Verdict.PASSED, "INSI-03": Verdict.PASSED}
    store = EvidenceStore(output.evidence_path)
    attestation = store.records(kind="attestation")[0]
    assert attestation.payload["confirmed"] is True
    assert store.blob(attestation.payload["attachment_sha256"]) == b"\x89PNG fake screenshot"
    assert output.result.candidate.mode == "operator"


def test_the_person_is_shown_where_to_point_their_software_and_a_readable_patient(bench: Bench,
                                                                                   tmp_path: Path) -> None:
    person = ScriptedPerson(bench.software, tmp_path / "none.png")
    output = bench.play(person, {"INSI-02"})
    screen = bench.screen.getvalue()
    assert output.result.simulators["insi"] in screen
    assert str(tmp_path / "pki" / "ca.crt.pem") in screen
    assert "{'birth_name'" not in screen and "birth_name" not in screen  # no Python dict: words
    assert "birth name" in screen and "first names" in screen
    offered = next(p for p in person.prompts if p.startswith("What did the software report"))
    assert "found" in offered and "not_found" in offered
    assert "signed_in" not in offered and "redirect" not in offered  # PSC's outcomes are not INSi's


def test_related_fields_are_asked_together(bench: Bench, tmp_path: Path) -> None:
    person = ScriptedPerson(bench.software, tmp_path / "none.png")
    bench.play(person, {"INSI-11"})
    asked = [p.split(" (")[0].split(" [")[0].rstrip(":") for p in person.prompts]
    matricule = asked.index("INS matricule shown")
    assert asked[matricule + 1:matricule + 3] == ["INS key", "INS OID"]


def test_an_answer_the_report_refuses_is_asked_again_alone(bench: Bench, tmp_path: Path) -> None:
    person = ScriptedPerson(bench.software, tmp_path / "none.png", typo=True)
    output = bench.play(person, {"INSI-11"})
    assert _verdicts(output) == {"INSI-11": Verdict.PASSED}
    asked = [p.split(" [")[0].split(" (")[0] for p in person.prompts]
    assert asked.count("INS matricule shown") == 2
    assert asked.count("INS key") == 1 and asked.count("Birth name shown") == 1
    assert "Not accepted: identity.ins.nir" in bench.screen.getvalue()


def test_the_person_skips_a_case_with_a_reason(bench: Bench, tmp_path: Path) -> None:
    person = ScriptedPerson(bench.software, tmp_path / "none.png", skip="INSI-02")
    output = bench.play(person, {"INSI-02", "INSI-03"})
    assert _verdicts(output) == {"INSI-02": Verdict.SKIPPED, "INSI-03": Verdict.PASSED}
    skipped = next(c for c in output.result.cases if c.id == "INSI-02")
    assert skipped.reason == "skipped by the operator: the test build has no INS search screen yet"


def test_an_interrupted_session_resumes_where_it_stopped(bench: Bench, tmp_path: Path) -> None:
    leaving = ScriptedPerson(bench.software, tmp_path / "none.png", leave="INSI-03")
    with pytest.raises(RunInterrupted) as stopped:
        bench.play(leaving, {"INSI-02", "INSI-03"})
    assert stopped.value.judged == 1 and (tmp_path / "run" / SESSION_FILE).is_file()
    back = ScriptedPerson(bench.software, tmp_path / "none.png")
    output = bench.play(back, None, resume=True)
    assert _verdicts(output) == {"INSI-02": Verdict.PASSED, "INSI-03": Verdict.PASSED}
    assert sum(p.startswith("Press Enter") for p in back.prompts) == 1  # INSI-02 was not played again
    assert not (tmp_path / "run" / SESSION_FILE).exists()
    assert verify_bundle(output.reports.bundle).ok


def test_attestation_not_confirmed_fails_the_case(bench: Bench, tmp_path: Path) -> None:
    output = bench.play(ScriptedPerson(bench.software, tmp_path / "none.png", confirm=False), {"INSI-01"})
    case = next(c for c in output.result.cases if c.id == "INSI-01")
    assert case.verdict == Verdict.FAILED and "operator did not confirm" in case.reason


def test_operator_reporting_a_wrong_ins_fails_the_check(bench: Bench, tmp_path: Path) -> None:
    output = bench.play(ScriptedPerson(bench.software, tmp_path / "none.png", lie=True), {"INSI-01"})
    case = next(c for c in output.result.cases if c.id == "INSI-01")
    assert case.verdict == Verdict.FAILED and "identity.ins_as_returned" in case.reason
