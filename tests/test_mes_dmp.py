"""One patient record across simulators: a document a partner app files in Mon espace santé lands in the
citizen's DMP, through the DMP simulator's peer route, and the DMP filing check judges it (played with the
reference candidate in a lab of both simulators)."""

from __future__ import annotations

from pathlib import Path

from esante.harness.campaign import load_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import API_PREFIX, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.reference import create_reference_app
from esante.harness.runner import CampaignRunner
from esante.reports.model import Verdict
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.server import ServerHandle

CAMPAIGN = Path(__file__).parent / "vectors/mes/dmp_campaign.yaml"


def test_a_document_filed_in_mes_lands_in_the_dmp(tmp_path: Path) -> None:
    campaign = load_campaign(CAMPAIGN, known_checks=load_checks())
    with LocalEnvironment(["mes", "dmp"], store=EvidenceStore(tmp_path / "e.sqlite"), pki_dir=tmp_path / "pki") \
            as env, ServerHandle(create_reference_app(pki_dir=env.pki_dir)) as candidate, \
            DriverClient(candidate.url + API_PREFIX) as driver:
        result = CampaignRunner(campaign, env, driver=driver).run()
    cases = {c.id: c for c in result.cases}
    assert cases["MES-DMP-01"].verdict == Verdict.PASSED, cases["MES-DMP-01"].reason
    passed = next(c for c in cases["MES-DMP-01"].checks if c.check == "mes.document_in_dmp")
    assert "filed in the DMP too (uniqueId 2.25." in passed.message
    closed = cases["MES-DMP-02"]
    assert closed.verdict == Verdict.FAILED and "no open DMP for INS" in closed.reason
