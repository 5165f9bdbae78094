"""The reports of real runs against the reference candidate: the INSi campaign (a failing defect and an injected
fault) and one PSC sign-in (a query string): what the exchanges carry into the reports, the per-requirement
summary in ``report.json`` and the terminal, ``esante report`` on a finished run, and the "what next" lines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import html as lxml_html
from typer.testing import CliRunner

from esante.harness.cli import app
from esante.harness.session import RunOutput, RunRequest, play
from esante.reports import verify_bundle
from esante.reports.html import traceability
from esante.reports.json_report import SCHEMA_PATH
from esante.reports.rerender import RunFolderError, load_run, rerender
from esante.reports.terminal import requirement_table, what_next

pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (a test dependency) reads the PDF back")

CASES = {"INSI-01", "INSI-09", "INSI-14"}  # two fail on the defect; INSI-14's teleservice answers a fault
OID_RETURNED = "1.2.250.1.213.1.4.8"  # what the teleservice answers for a NIR (the defect stores ...4.10)


@pytest.fixture(scope="module")
def insi(tmp_path_factory: pytest.TempPathFactory) -> RunOutput:
    tmp = tmp_path_factory.mktemp("insi")
    return play(RunRequest(campaign="insi", out_dir=tmp / "out", pki_dir=tmp / "pki",
                           signing_key=tmp / "keys" / "ed25519.pem", defects=["wrong_oid"], case_ids=CASES))


@pytest.fixture(scope="module")
def psc(tmp_path_factory: pytest.TempPathFactory) -> RunOutput:
    tmp = tmp_path_factory.mktemp("psc")
    return play(RunRequest(campaign="psc", out_dir=tmp / "out", pki_dir=tmp / "pki",
                           signing_key=tmp / "keys" / "ed25519.pem", defects=["psc_pkce_plain"],
                           case_ids={"PSC-01"}))


def _case(output: RunOutput, case_id: str) -> Any:
    return next(c for c in output.result.cases if c.id == case_id)


def _pdf_text(path: Path) -> str:
    document = pdfium.PdfDocument(str(path))
    try:
        return " ".join(" ".join(document[i].get_textpage().get_text_bounded().split()) for i in range(len(document)))
    finally:
        document.close()


def _html_case(output: RunOutput, case_id: str) -> lxml_html.HtmlElement:
    tree = lxml_html.fromstring(output.reports.html.read_bytes())
    number = [c.id for c in output.result.cases].index(case_id) + 1
    return tree.xpath(f'//details[@id="case-{number}"]')[0]


# -- what the runner puts into the results model ---------------------------------------------------------------

def test_exchanges_carry_headers_faults_and_record_digests(insi: RunOutput) -> None:
    [exchange] = _case(insi, "INSI-01").exchanges
    assert ("content-type", "application/soap+xml; charset=utf-8") in exchange.request_headers
    assert any(name == "content-type" for name, _ in exchange.response_headers)
    assert exchange.scheme == "https" and exchange.query == "" and not exchange.injected_faults
    assert len(exchange.request_record_digest) == 64 and len(exchange.response_record_digest or "") == 64
    faulted = _case(insi, "INSI-14").exchanges
    assert faulted and all(e.injected_faults[0]["kind"] == "service_fault" for e in faulted)
    assert "injected_faults" not in faulted[0].notes and "operation" not in faulted[0].notes


def test_report_json_has_the_per_requirement_summary(insi: RunOutput) -> None:
    data = json.loads(insi.reports.json.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).validate(data)
    assert data["schema_version"] == "1.2"
    summary = {row["id"]: row for row in data["requirement_summary"]}
    assert list(summary) == [row.id for row in traceability(insi.result)]
    assert {rid: row["status"] for rid, row in summary.items()} == \
        {row.id: row.status for row in traceability(insi.result)}  # the HTML matrix and the JSON agree
    assert summary["IDV-01"]["status"] == "failed"
    assert {"case": "INSI-01", "verdict": "failed"} in summary["IDV-01"]["cases"]
    assert summary["INSI-ERR-01"]["status"] == "passed" and summary["INSI-ERR-01"]["text"]
    assert summary["IDV-04"]["status"] == "skipped"  # only cases not selected judge it
    assert data == insi.result.model_dump(mode="json")


def test_html_shows_headers_faults_and_highlights_the_returned_oid(insi: RunOutput) -> None:
    failed = _html_case(insi, "INSI-01")
    exchange = failed.xpath('.//details[contains(@class, "exchange")]')[0]
    rows = exchange.xpath('.//table[contains(@class, "request-headers")]//tr')
    headers = [tuple(td.text_content() for td in tr.xpath("td")) for tr in rows]
    assert ("content-type", "application/soap+xml; charset=utf-8") in headers
    [response] = exchange.xpath('.//pre[contains(@class, "response")]')
    assert OID_RETURNED in [m.text_content() for m in response.xpath(".//mark")]
    faulted = _html_case(insi, "INSI-14")
    faults = faulted.xpath('.//div[@class="fault"]')
    assert faults and all("service_fault" in f.text_content() for f in faults)


def test_html_shows_the_psc_query(psc: RunOutput) -> None:
    case = _html_case(psc, "PSC-01")
    rows = {" ".join(tr.xpath("td")[0].text_content().split()): tr for tr in case.xpath('.//table[contains(@class, '
                                                                                         '"query")]//tr')}
    assert {"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri"} <= set(rows)
    assert rows["code_challenge_method"].xpath(".//mark")  # what psc.pkce_s256 names, highlighted
    assert not rows["state"].xpath(".//mark")


# -- esante report on a finished run -------------------------------------------------------------------------

def test_esante_report_pdf_on_a_finished_run(insi: RunOutput, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--pdf", str(insi.out_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    pdf = tmp_path / "report.pdf"
    assert str(pdf) in result.output.replace("\n", "")
    text = _pdf_text(pdf)
    digest = hashlib.sha256(insi.reports.bundle.read_bytes()).hexdigest()
    for expected in (insi.result.run_id, "Overall verdict: failed", f"evidence-bundle.zip SHA-256 {digest}",
                     "INSI-01 — ", "INSI-09 — ", "Finding: identity.ins_as_returned", OID_RETURNED,
                     "Passed and skipped cases", "qualifiée"):
        assert expected in text, expected
    assert "INSI-14 — " not in text  # passed: summarised, not printed in full
    assert verify_bundle(insi.reports.bundle).ok  # nothing in the bundle changed


def test_esante_report_writes_what_it_is_asked_and_refuses_what_is_no_run(insi: RunOutput, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(insi.out_dir), "--html", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(insi.reports.json.read_text())
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(app, ["report", str(empty)])
    assert refused.exit_code == 4 and "no report.json" in refused.output
    (empty / "report.json").write_text('{"run_id": 1}')
    with pytest.raises(RunFolderError, match="not a run report"):
        load_run(empty)


def test_a_report_from_before_schema_1_1_is_completed_from_the_evidence_store(insi: RunOutput,
                                                                               tmp_path: Path) -> None:
    old = json.loads(insi.reports.json.read_text(encoding="utf-8"))
    old["schema_version"] = "1.0"
    for case in old["cases"]:
        for exchange in case["exchanges"]:
            for name in ("scheme", "query", "request_headers", "response_headers", "request_truncated",
                         "injected_faults", "notes", "request_record_digest", "response_record_digest"):
                exchange.pop(name)
    old.pop("requirement_summary")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(old), encoding="utf-8")
    for path in insi.out_dir.glob("evidence.sqlite*"):
        shutil.copy(path, folder / path.name)
    run = load_run(folder)
    assert run.enriched == sum(len(c.exchanges) for c in insi.result.cases)
    assert run.result.model_dump(mode="json")["cases"] == insi.result.model_dump(mode="json")["cases"]
    written = rerender(folder, ("json",))
    assert json.loads(written["json"].read_text())["schema_version"] == "1.2"
    with pytest.raises(ValueError, match="unknown report format"):
        rerender(folder, ("docx",))


# -- the terminal --------------------------------------------------------------------------------------------

def test_requirement_table_and_what_next(insi: RunOutput) -> None:
    table = requirement_table(insi.result)
    ids = list(table.columns[0].cells)
    assert ids == [row.id for row in insi.result.requirement_summary]
    statuses = dict(zip(ids, table.columns[1].cells, strict=True))
    assert statuses["IDV-01"] == "[red]failed[/red]"
    steps = what_next(insi.result, insi.reports.html, insi.reports.pdf, insi.reports.bundle,
                      ["esante", "run", "insi", "--defect", "wrong_oid"])
    assert steps[1] == f"esante verify {insi.reports.bundle}"
    assert steps[2] == "esante run insi --defect wrong_oid --case INSI-01 --case INSI-09"


def test_esante_run_prints_the_summary_and_what_next(tmp_path: Path) -> None:
    env = {"ESANTE_PKI_DIR": str(tmp_path / "pki"), "ESANTE_SIGNING_KEY": str(tmp_path / "k.pem"), "COLUMNS": "200"}
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "insi", "--out", str(out), "--case", "INSI-01", "--defect", "wrong_oid"],
                                env=env)
    assert result.exit_code == 1, result.output
    for text in ("Requirements", "IDV-01", "failed: INSI-01", f"PDF report  {out / 'report.pdf'}",
                 f"next: open {out / 'report.html'} (or {out / 'report.pdf'})", f"esante verify {out}",
                 "esante run insi --candidate reference --defect wrong_oid --case INSI-01"):
        assert text in result.output, text
    assert (out / "report.pdf").is_file()
