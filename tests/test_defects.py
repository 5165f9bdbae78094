"""The reference candidate passes every shipped campaign; each named defect fails exactly the cases the catalogue
says, each through the check of its rule with a message saying what was wrong; and no registered check is left
without a defect that makes it fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esante.harness.campaign import LoadedCampaign, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import API_PREFIX, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.kits import defects, kits
from esante.harness.reference import create_reference_app
from esante.harness.runner import CampaignRunner
from esante.reports.model import RunResult, Verdict
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.server import ServerHandle

CAMPAIGNS = list(kits())  # every registered test kit's campaign
DEFECTS = defects()


@pytest.fixture(scope="module")
def campaigns() -> dict[str, LoadedCampaign]:
    known = load_checks()
    return {name: load_campaign(resolve_campaign(name), known_checks=known) for name in CAMPAIGNS}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    tmp = tmp_path_factory.mktemp("defects")
    with LocalEnvironment(list(CAMPAIGNS), store=EvidenceStore(tmp / "evidence.sqlite"), pki_dir=tmp / "pki") as env:
        yield env


def play(campaign: LoadedCampaign, env: LocalEnvironment, defects: list[str]) -> RunResult:
    with ServerHandle(create_reference_app(pki_dir=env.pki_dir, defects=defects)) as candidate, \
            DriverClient(candidate.url + API_PREFIX) as driver:
        return CampaignRunner(campaign, env, driver=driver).run()


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_reference_candidate_passes_the_whole_campaign(campaigns: dict[str, LoadedCampaign], env: LocalEnvironment,
                                                       name: str) -> None:
    result = play(campaigns[name], env, [])
    problems = {c.id: c.reason for c in result.cases if c.verdict != Verdict.PASSED}
    assert problems == {}
    assert len(result.cases) >= 15
    assert result.candidate.name == "esante-reference-candidate"


@pytest.mark.parametrize("name", list(DEFECTS))
def test_defect_fails_exactly_the_cases_of_its_rule(campaigns: dict[str, LoadedCampaign], env: LocalEnvironment,
                                                     name: str) -> None:
    defect = DEFECTS[name]
    result = play(campaigns[defect.campaign], env, [name])
    verdicts = {c.id: c.verdict for c in result.cases}
    failed = {case for case, verdict in verdicts.items() if verdict != Verdict.PASSED}
    assert defect.fails, f"defect {name} declares no failing case"
    assert failed == set(defect.fails), {c.id: c.reason for c in result.cases if c.id in failed ^ set(defect.fails)}
    assert all(verdicts[case] == Verdict.FAILED for case in failed), "a defect is a failure, never an error"
    for case in result.cases:
        if case.id in failed:
            rule = [c for c in case.checks if c.check == defect.rule]
            assert rule and rule[0].verdict == Verdict.FAILED, f"{case.id}: {defect.rule} did not fail"
            assert len(rule[0].message) > 20, rule[0].message


def test_every_registered_check_has_a_defect_that_makes_it_fail(campaigns: dict[str, LoadedCampaign]) -> None:
    checks = set(load_checks())
    covered = {d.rule for d in DEFECTS.values()}
    assert checks - covered == set(), f"checks no defect breaks: {sorted(checks - covered)}"
    assert covered - checks == set(), f"defects naming unknown checks: {sorted(covered - checks)}"
    used = {e.check for c in campaigns.values() for case in c.campaign.cases for e in case.expect}
    assert checks - used == set(), f"checks no case of a shipped campaign runs: {sorted(checks - used)}"


def test_defect_catalogue_fails_only_cases_that_exist(campaigns: dict[str, LoadedCampaign]) -> None:
    for defect in DEFECTS.values():
        ids = {c.id for c in campaigns[defect.campaign].campaign.cases}
        assert set(defect.fails) <= ids, defect.name


def test_every_defect_breaks_a_check_of_its_own_kit() -> None:
    registry = load_checks()
    for defect in DEFECTS.values():
        module = registry[defect.rule].function.__module__
        assert module.startswith(kits()[defect.campaign].package + "."), \
            f"{defect.name} is judged by the {defect.campaign} campaign but breaks {defect.rule} ({module})"


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_every_case_judges_requirements(campaigns: dict[str, LoadedCampaign], name: str) -> None:
    """Requirement ids follow from the checks: every case has some, each declared by the campaign."""
    declared = campaigns[name].campaign.requirements
    for case in campaigns[name].campaign.cases:
        assert case.requirements and set(case.requirements) <= set(declared), case.id


def test_unknown_defect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown defect"):
        create_reference_app(pki_dir=tmp_path, defects=["no_such_defect"])
