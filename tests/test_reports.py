"""Reports: the JSON report against its published schema, JUnit XML, the self-contained HTML report, and the
signed evidence bundle — including every kind of tampering the bundle must name, and hostile archives.

Most tests use a small synthetic run (four cases, one per interesting verdict) over a real temporary evidence
store; the last ones play a real campaign end to end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import etree

from esante.reports import ReportPaths, verify_bundle, write_reports
from esante.reports.html import render_html
from esante.reports.json_report import SCHEMA_PATH, report_schema, schema_text
from esante.reports.junit import write_junit
from esante.reports.model import (
    CampaignInfo,
    CandidateInfo,
    CaseResult,
    CheckResult,
    EvidenceRef,
    ExchangeSummary,
    RunResult,
    StepResult,
    Verdict,
)
from esante.simulators.core.evidence import EvidenceStore, Record, verify_records
from esante.simulators.core.evidence.bundle import FORMAT, RECORDS
from esante.simulators.core.evidence.signing import default_key_path, fingerprint, load_or_create_key, public_key_pem

RUN_ID = "run-20260101-0001"
REQUEST_1 = b'<?xml version="1.0"?><Envelope><IDAM>ESANTE-REF-0001</IDAM></Envelope>'
RESPONSE_1 = b'<?xml version="1.0"?><Envelope><INS>1234567890123</INS></Envelope>'
REQUEST_2 = b'<?xml version="1.0"?><Envelope><Birth>1980-00-00</Birth></Envelope>'
RESPONSE_2 = b'<?xml version="1.0"?><Envelope><INS>999</INS></Envelope>'
SCREENSHOT = b"\x89PNG fake screenshot"


# -- fixtures: a synthetic run over a real evidence store -------------------------------------------------

def _exchange(store: EvidenceStore, case_id: str, exchange_id: str, request: bytes,
              response: bytes) -> tuple[Record, Record]:
    req = store.append("exchange.request", {
        "exchange_id": exchange_id, "simulator": "insi", "method": "POST", "path": "/lps", "query": "",
        "scheme": "https", "headers": [["content-type", "application/soap+xml"]], "client": "127.0.0.1",
        "client_cert_subject": "CN=candidate", "truncated": False}, run_id=RUN_ID, case_id=case_id,
        ref=exchange_id, blobs={"body": request})
    resp = store.append("exchange.response", {
        "exchange_id": exchange_id, "simulator": "insi", "outcome": "answered", "status": 200, "headers": [],
        "duration_ms": 12.5, "notes": {"operation": "RECSANSVITALE"}}, run_id=RUN_ID, case_id=case_id,
        ref=exchange_id, blobs={"body": response})
    return req, resp


def _summary(req: Record, resp: Record, request: bytes, response: bytes, excerpt: str = "") -> ExchangeSummary:
    return ExchangeSummary(
        id=req.ref or "", simulator="insi", received_at=req.recorded_at, method="POST", path="/lps", status=200,
        outcome="answered", operation="RECSANSVITALE", client_cert_subject="CN=candidate", duration_ms=12.5,
        request_sha256=req.payload["body_sha256"], response_sha256=resp.payload["body_sha256"],
        request_excerpt=excerpt or request.decode(), response_excerpt=response.decode(),
        request_seq=req.seq, response_seq=resp.seq)


def _ref(record: Record, label: str = "") -> EvidenceRef:
    return EvidenceRef(seq=record.seq, digest=record.digest, kind=record.kind, label=label)


def _case(case_id: str, verdict: Verdict, reason: str, requirements: list[str], **parts: Any) -> CaseResult:
    return CaseResult(id=case_id, title=f"Title of {case_id}", requirements=requirements, severity="major",
                      verdict=verdict, reason=reason, started_at="2026-01-01T10:00:01.000000Z", duration_ms=250.0,
                      **parts)


def build_run(store: EvidenceStore, *, candidate_name: str = "Acme DPI", excerpt: str = "",
              message: str = "INS returned 999, expected 1234567890123") -> RunResult:
    """Journal a small run into ``store`` and return its result: passed, failed, inconclusive, skipped."""
    store.append("run.start", {"campaign_sha256": "c" * 64}, run_id=RUN_ID)
    req1, resp1 = _exchange(store, "INSI-01", "ex0001", REQUEST_1, RESPONSE_1)
    req2, resp2 = _exchange(store, "INSI-02", "ex0002", REQUEST_2, RESPONSE_2)
    attest = store.append("attestation", {"index": 0, "statement": "the INS is shown", "confirmed": None,
                                          "note": "", "attachment_name": "../../shot <1>.png"},
                          run_id=RUN_ID, case_id="INSI-03", blobs={"attachment": SCREENSHOT})
    last = store.append("run.end", {"counts": {}}, run_id=RUN_ID)
    cases = [
        _case("INSI-01", Verdict.PASSED, "every check passed", ["IDV-01"],
              checks=[CheckResult(check="insi.request_well_formed", requirements=["IDV-01"],
                                  verdict=Verdict.PASSED, message="well formed", evidence=[_ref(req1)])],
              exchanges=[_summary(req1, resp1, REQUEST_1, RESPONSE_1, excerpt)]),
        _case("INSI-02", Verdict.FAILED, "1 check failed", ["IDV-02"],
              steps=[StepResult(index=0, kind="action", description="look up the INS", outcome="done",
                                detail={"params": {"birth": "1980-00-00"}}, evidence=[_ref(req2, "step 1")])],
              checks=[CheckResult(check="identity.ins_as_returned", requirements=["IDV-02", "IDV-03"],
                                  verdict=Verdict.FAILED, message=message, evidence=[_ref(resp2)])],
              exchanges=[_summary(req2, resp2, REQUEST_2, RESPONSE_2)]),
        _case("INSI-03", Verdict.INCONCLUSIVE, "the operator could not tell", ["IDV-01"],
              steps=[StepResult(index=0, kind="attest", description="the INS is shown", outcome="unsure",
                                evidence=[_ref(attest, "attestation 1")])],
              checks=[CheckResult(check="operator.attestation", requirements=["IDV-01"],
                                  verdict=Verdict.INCONCLUSIVE, message="no answer", evidence=[_ref(attest)])]),
        _case("INSI-04", Verdict.SKIPPED, "needs operator mode", ["SEC-02"]),
    ]
    return RunResult(
        run_id=RUN_ID, started_at="2026-01-01T10:00:00.000000Z", finished_at="2026-01-01T10:00:03.500000Z",
        harness_version="0.1.0", simulators={"insi": "https://127.0.0.1:8443"},
        campaign=CampaignInfo(id="insi", version="1.2", title="INSi conformance", file="insi.yaml", sha256="c" * 64,
                              requirements={"IDV-01": "query INSi with the traits",
                                            "IDV-02": "keep the INS as returned", "SEC-01": "never log the INS"}),
        candidate=CandidateInfo(name=candidate_name, version="4.2", vendor="Acme", mode="driver"),
        cases=cases, evidence_chain_head=last.chain, evidence_records=last.seq)


@dataclass
class Produced:
    result: RunResult
    store: EvidenceStore
    paths: ReportPaths
    key_path: Path


@pytest.fixture
def produced(tmp_path: Path) -> Produced:
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    result = build_run(store)
    key_path = tmp_path / "keys" / "ed25519.pem"
    paths = write_reports(result, store, tmp_path / "out", signing_key=key_path)
    return Produced(result, store, paths, key_path)


# -- zip helpers ------------------------------------------------------------------------------------------

def _member(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as archive:
        return archive.read(name)


def _names(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as archive:
        return archive.namelist()


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None] | None = None,
             add: dict[str, bytes] | None = None) -> Path:
    """Copy a zip, replacing (bytes) or dropping (None) the members in ``change`` and adding ``add``."""
    change = change or {}
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename not in change:
                new.writestr(info, old.read(info))
            elif change[info.filename] is not None:
                new.writestr(info.filename, change[info.filename])
        for name, data in (add or {}).items():
            new.writestr(name, data)
    return dst


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _member(bundle, RECORDS).decode().splitlines()]


def _with_records(src: Path, dst: Path, rows: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    return _rewrite(src, dst, {RECORDS: text})


# -- write_reports, JSON ----------------------------------------------------------------------------------

def test_write_reports_writes_the_five_files(produced: Produced) -> None:
    paths = produced.paths
    written = (paths.json, paths.junit, paths.html, paths.bundle, paths.pdf)
    assert [p.name for p in written] == ["report.json", "junit.xml", "report.html", "evidence-bundle.zip", "report.pdf"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert stat.S_IMODE(produced.key_path.stat().st_mode) == 0o600
    assert not list(paths.bundle.parent.glob(".*partial"))


def test_json_report_is_the_model_dump_and_validates_against_the_shipped_schema(produced: Produced) -> None:
    data = json.loads(produced.paths.json.read_text(encoding="utf-8"))
    assert data == produced.result.model_dump(mode="json")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)
    data["cases"][0]["verdict"] = "probably fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_shipped_schema_is_up_to_date() -> None:
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == report_schema(), \
        "regenerate with: python -m esante.reports.json_report --write-schema"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text()
    schema = report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://esante-conformance.example/schemas/run-report-1.2.json"


# -- JUnit ------------------------------------------------------------------------------------------------

def _junit_cases(path: Path) -> tuple[etree._Element, dict[str, etree._Element]]:
    suite = etree.parse(str(path)).getroot().find("testsuite")
    return suite, {c.get("name").split(":")[0]: c for c in suite.findall("testcase")}


def _props(element: etree._Element) -> list[tuple[str, str]]:
    return [(p.get("name"), p.get("value")) for p in element.find("properties")]


def test_junit_counts_match(produced: Produced) -> None:
    root = etree.parse(str(produced.paths.junit)).getroot()
    suite, cases = _junit_cases(produced.paths.junit)
    assert root.tag == "testsuites" and len(root.findall("testsuite")) == 1
    assert suite.get("name") == "insi" and suite.get("tests") == "4" == str(len(cases))
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "0", "1")
    assert suite.get("time") == "3.500" and suite.get("timestamp") == "2026-01-01T10:00:00"
    assert len(suite.findall("testcase/failure")) == 2 and len(suite.findall("testcase/skipped")) == 1
    assert cases["INSI-01"].find("failure") is None and cases["INSI-01"].get("classname") == "insi"
    assert cases["INSI-01"].get("name") == "INSI-01: Title of INSI-01" and cases["INSI-01"].get("time") == "0.250"


def test_junit_properties_and_outcomes(produced: Produced) -> None:
    result = produced.result
    suite, cases = _junit_cases(produced.paths.junit)
    props = dict(_props(suite))
    assert props == {"run_id": RUN_ID, "campaign_id": "insi", "campaign_version": "1.2", "campaign_sha256": "c" * 64,
                     "harness_version": "0.1.0", "candidate_name": "Acme DPI", "candidate_version": "4.2",
                     "evidence_chain_head": result.evidence_chain_head}
    failed = _props(cases["INSI-02"])
    assert [v for n, v in failed if n == "requirement"] == ["IDV-02", "IDV-03"]
    assert ("severity", "major") in failed and ("verdict", "failed") in failed
    exchange = result.cases[1].exchanges[0]
    for digest in (result.cases[1].checks[0].evidence[0].digest, exchange.request_sha256, exchange.response_sha256):
        assert ("evidence", f"sha256:{digest}") in failed
    failure = cases["INSI-02"].find("failure")
    assert failure.get("type") == "failed" and "INS returned 999" in failure.text
    inconclusive = cases["INSI-03"].find("failure")
    assert inconclusive.get("type") == "inconclusive" and inconclusive.get("message").startswith("inconclusive:")
    assert cases["INSI-04"].find("skipped").get("message") == "needs operator mode"


def test_junit_stays_parseable_with_control_characters(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    result = build_run(store, candidate_name="Acme\x00\x1b[31m", message="bad byte \x07 <&> here")
    path = write_junit(result, tmp_path / "junit.xml")
    suite, cases = _junit_cases(path)
    assert dict(_props(suite))["candidate_name"].startswith("Acme")
    assert "<&> here" in cases["INSI-02"].find("failure").text


# -- HTML -------------------------------------------------------------------------------------------------

def test_html_has_header_matrix_and_cases(produced: Produced) -> None:
    html = produced.paths.html.read_text(encoding="utf-8")
    plain = re.sub(r"<mark>|</mark>", "", html)  # what a finding names is highlighted
    for text in (RUN_ID, "c" * 64, "Acme DPI", "4.2", "driver mode", "0.1.0", "2026-01-01T10:00:00.000000Z",
                 "Requirement traceability", "IDV-03", "never log the INS", "not covered",
                 "identity.ins_as_returned", "INS returned 999", "CN=candidate", "RECSANSVITALE", "@media print"):
        assert text in plain, text
    matrix = html.split('id="traceability"')[1].split("</section>")[0]
    row = matrix.split("<code>IDV-01</code>")[1].split("</tr>")[0]
    assert "INSI-01" in row and "INSI-03" in row and 'badge inconclusive">inconclusive</span></td>' in row
    assert "4 of 5 requirements covered by a case, 3 judged in this run" in " ".join(html.split())
    skipped_only = matrix.split("<code>SEC-02</code>")[1].split("</tr>")[0]
    assert 'badge skipped">skipped</span></td>' in skipped_only
    assert "&lt;IDAM&gt;ESANTE-REF-0001&lt;/IDAM&gt;" in html  # excerpts are shown, escaped


def test_html_is_self_contained(produced: Produced) -> None:
    html = produced.paths.html.read_text(encoding="utf-8")
    assert "<link" not in html and " src=" not in html and "@import" not in html and "url(" not in html
    assert html.count("<script") == 1 and "Content-Security-Policy" in html
    assert "<details" in html and "<summary>" in html


def test_html_escapes_untrusted_text(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    result = build_run(store, candidate_name="<script>alert(1)</script>",
                       excerpt="</pre><script>alert(2)</script>", message="<img src=x onerror=alert(3)>")
    html = render_html(result)
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    assert html.count("<script") == 1  # only the report's own, allowed by hash in the CSP


# -- the bundle -------------------------------------------------------------------------------------------

def test_bundle_holds_everything_and_verifies(produced: Produced) -> None:
    bundle, result = produced.paths.bundle, produced.result
    names = set(_names(bundle))
    exchange = result.cases[0].exchanges[0]
    expected = {"report.json", "junit.xml", "report.html", RECORDS, "manifest.json", "manifest.sig", "signer.pub.pem",
                f"evidence/blobs/{exchange.request_sha256}", "exchanges/INSI-01/01-insi-ex0001.request.bin",
                "exchanges/INSI-01/01-insi-ex0001.response.bin", "exchanges/INSI-02/01-insi-ex0002.request.bin"}
    assert expected <= names
    assert _member(bundle, "exchanges/INSI-01/01-insi-ex0001.request.bin") == REQUEST_1
    attachment = [n for n in names if n.startswith("attachments/")]
    assert len(attachment) == 1 and attachment[0].startswith("attachments/INSI-03/")
    assert attachment[0].endswith("shot_1_.png") and ".." not in attachment[0]
    assert _member(bundle, attachment[0]) == SCREENSHOT
    manifest = json.loads(_member(bundle, "manifest.json"))
    assert manifest["format"] == FORMAT and manifest["run_id"] == RUN_ID
    assert manifest["campaign"]["sha256"] == "c" * 64 and manifest["candidate"]["name"] == "Acme DPI"
    assert set(manifest["files"]) == names - {"manifest.json", "manifest.sig", "signer.pub.pem"}
    rows = _records(bundle)
    assert [r["seq"] for r in rows] == list(range(1, produced.store.last_seq() + 1))
    assert verify_records(rows) == [] and manifest["evidence_chain_head"] == rows[-1]["chain"]
    assert _member(bundle, "report.html") == produced.paths.html.read_bytes()

    outcome = verify_bundle(bundle)
    assert outcome.ok, outcome.problems
    assert outcome.run_id == RUN_ID and outcome.files_checked == len(manifest["files"])
    assert outcome.signer_fingerprint == fingerprint(public_key_pem(load_or_create_key(produced.key_path)))
    assert outcome.notes and outcome.notes[0].startswith("signer not pinned")
    pinned = verify_bundle(bundle, trusted_key=public_key_pem(load_or_create_key(produced.key_path)))
    assert pinned.ok and not pinned.problems, pinned.problems


def test_altered_report_is_named(produced: Produced, tmp_path: Path) -> None:
    html = _member(produced.paths.bundle, "report.html").replace(b"failed", b"passed")
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {"report.html": html}))
    assert not outcome.ok and "altered: report.html (sha256 mismatch)" in outcome.problems


def test_altered_record_is_named_by_seq(produced: Produced, tmp_path: Path) -> None:
    rows = _records(produced.paths.bundle)
    target = next(r for r in rows if r["kind"] == "exchange.response")
    target["payload"] = target["payload"].replace('"status":200', '"status":500')
    outcome = verify_bundle(_with_records(produced.paths.bundle, tmp_path / "b.zip", rows))
    assert not outcome.ok
    assert f"evidence record {target['seq']}: record content does not match its digest" in outcome.problems
    assert f"altered: {RECORDS} (sha256 mismatch)" in outcome.problems


def test_removed_record_breaks_the_chain(produced: Produced, tmp_path: Path) -> None:
    rows = _records(produced.paths.bundle)
    removed = rows.pop(2)
    outcome = verify_bundle(_with_records(produced.paths.bundle, tmp_path / "b.zip", rows))
    assert not outcome.ok
    assert any(p.startswith(f"evidence record {removed['seq'] + 1}: hash chain broken") for p in outcome.problems)


def test_removed_last_record_misses_the_chain_head(produced: Produced, tmp_path: Path) -> None:
    rows = _records(produced.paths.bundle)[:-1]
    outcome = verify_bundle(_with_records(produced.paths.bundle, tmp_path / "b.zip", rows))
    assert not outcome.ok and any("does not match the manifest" in p for p in outcome.problems)


def test_altered_blob_is_named(produced: Produced, tmp_path: Path) -> None:
    digest = produced.result.cases[1].exchanges[0].response_sha256
    name = f"evidence/blobs/{digest}"
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {name: b"<INS>1234567890123</INS>"}))
    assert not outcome.ok
    assert f"evidence blob {digest}: content does not match its sha256 name" in outcome.problems


def test_removed_blob_is_named(produced: Produced, tmp_path: Path) -> None:
    digest = produced.result.cases[0].exchanges[0].request_sha256
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {f"evidence/blobs/{digest}": None}))
    assert f"missing: evidence/blobs/{digest}" in outcome.problems
    assert any(digest in p and p.startswith("evidence record") for p in outcome.problems)


def test_replaced_signature_is_named(produced: Produced, tmp_path: Path) -> None:
    other = load_or_create_key(tmp_path / "other.pem")
    forged = base64.b64encode(other.sign(b"something else"))
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {"manifest.sig": forged}))
    assert not outcome.ok and any(p.startswith("signature: manifest.sig does not verify") for p in outcome.problems)


def test_altered_manifest_is_named(produced: Produced, tmp_path: Path) -> None:
    manifest = _member(produced.paths.bundle, "manifest.json").replace(b'"1.2"', b'"1.3"', 1)
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {"manifest.json": manifest}))
    assert not outcome.ok and any(p.startswith("signature:") for p in outcome.problems)


def test_resigned_bundle_fails_only_against_the_pinned_key(produced: Produced, tmp_path: Path) -> None:
    other = load_or_create_key(tmp_path / "attacker.pem")
    manifest = json.loads(_member(produced.paths.bundle, "manifest.json"))
    html = b"<html>all passed</html>"
    manifest["files"]["report.html"] = hashlib.sha256(html).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    forged = _rewrite(produced.paths.bundle, tmp_path / "b.zip", {
        "report.html": html, "manifest.json": manifest_bytes,
        "manifest.sig": base64.b64encode(other.sign(manifest_bytes)), "signer.pub.pem": public_key_pem(other)})
    unpinned = verify_bundle(forged)
    assert unpinned.ok and unpinned.notes  # self-consistent: only pinning the signer can tell
    trusted = public_key_pem(load_or_create_key(produced.key_path))
    outcome = verify_bundle(forged, trusted_key=trusted)
    assert not outcome.ok
    assert any(p.startswith("signature: signed by") and "not by the trusted key" in p for p in outcome.problems)


def test_extra_and_missing_files_are_named(produced: Produced, tmp_path: Path) -> None:
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {"junit.xml": None},
                                     add={"notes.txt": b"added later"}))
    assert not outcome.ok
    assert "missing: junit.xml" in outcome.problems
    assert "unexpected file not in manifest: notes.txt" in outcome.problems


def test_malformed_record_line_is_named(produced: Produced, tmp_path: Path) -> None:
    text = _member(produced.paths.bundle, RECORDS) + b"{not json\n"
    outcome = verify_bundle(_rewrite(produced.paths.bundle, tmp_path / "b.zip", {RECORDS: text}))
    line = len(text.splitlines())
    assert f"{RECORDS} line {line}: not a valid evidence record" in outcome.problems


# -- hostile archives -------------------------------------------------------------------------------------

def test_path_traversal_member_is_refused_and_nothing_is_written(produced: Produced, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    evil = _rewrite(produced.paths.bundle, work / "b.zip", add={"../evil": b"x", "../../evil2": b"y"})
    before = sorted(tmp_path.rglob("*"))
    outcome = verify_bundle(evil)
    assert not outcome.ok
    assert any("unsafe member name '../evil'" in p and "path traversal" in p for p in outcome.problems)
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil2").exists()


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/windows/evil", "a\\..\\evil", "a//b", "./a"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), b"x")
    outcome = verify_bundle(path)
    assert not outcome.ok and any("unsafe member name" in p for p in outcome.problems)


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    link = zipfile.ZipInfo("report.html")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(link, "/etc/passwd")
    outcome = verify_bundle(path)
    assert not outcome.ok and any("symbolic link" in p for p in outcome.problems)


def test_duplicate_member_is_refused(produced: Produced, tmp_path: Path) -> None:
    path = _rewrite(produced.paths.bundle, tmp_path / "b.zip")
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("report.html", b"<html>shadow</html>")
    outcome = verify_bundle(path)
    assert not outcome.ok and any("appears more than once" in p for p in outcome.problems)


def test_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", b"{}")
        archive.writestr("evidence/records.jsonl", b"\0" * (50 * 1024 * 1024))
    started = time.perf_counter()
    outcome = verify_bundle(bomb)
    assert time.perf_counter() - started < 1.0
    assert not outcome.ok and any("zip bomb" in p and "evidence/records.jsonl" in p for p in outcome.problems)


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    outcome = verify_bundle(junk)
    assert not outcome.ok and "not a readable zip archive" in outcome.problems[0]
    assert not verify_bundle(tmp_path / "absent.zip").ok


def test_archive_without_manifest_is_named(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("report.html", b"<html></html>")
    outcome = verify_bundle(path)
    assert not outcome.ok and outcome.problems[0].startswith("missing: manifest.json")


# -- signing keys -----------------------------------------------------------------------------------------

def test_signing_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "keys" / "ed25519.pem"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    assert public_key_pem(load_or_create_key(path)) == public_key_pem(key)
    print_ = fingerprint(public_key_pem(key))
    assert len(print_) == 19 and print_.count(":") == 3


def test_default_key_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESANTE_SIGNING_KEY", str(tmp_path / "k.pem"))
    assert default_key_path() == tmp_path / "k.pem"
    monkeypatch.delenv("ESANTE_SIGNING_KEY")
    assert default_key_path() == Path.home() / ".esante" / "keys" / "ed25519.pem"


# -- end to end: a real campaign played against the reference candidate -----------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from esante.harness.session import RunRequest, play

    tmp = tmp_path_factory.mktemp("run")
    return play(RunRequest(campaign="insi", out_dir=tmp / "out", pki_dir=tmp / "pki",
                           signing_key=tmp / "keys" / "ed25519.pem", defects=["wrong_oid"],
                           case_ids={"INSI-01", "INSI-02", "INSI-09"}))


def test_real_run_reports_validate_and_verify(real_run: Any) -> None:
    data = json.loads(real_run.reports.json.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).validate(data)
    suite = etree.parse(str(real_run.reports.junit)).getroot().find("testsuite")
    assert suite.get("tests") == str(len(real_run.result.cases))
    outcome = verify_bundle(real_run.reports.bundle)
    assert outcome.ok, outcome.problems
    assert outcome.run_id == real_run.result.run_id
    assert verify_records(_records(real_run.reports.bundle)) == []


def test_cli_verify_exit_codes(real_run: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from esante.harness.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["verify", str(real_run.reports.bundle)]).exit_code == 0
    altered = _rewrite(real_run.reports.bundle, tmp_path / "b.zip", {"report.json": b"{}"})
    result = runner.invoke(app, ["verify", str(altered)])
    assert result.exit_code == 1 and "report.json" in result.output


def test_matrix_fails_only_the_requirements_whose_checks_failed(tmp_path: Path) -> None:
    """A case failing on one requirement has not failed the others it also judges."""
    from esante.harness.session import RunRequest, play
    from esante.reports.html import traceability

    output = play(RunRequest(campaign="insi", out_dir=tmp_path / "out", pki_dir=tmp_path / "pki",
                             signing_key=tmp_path / "k.pem", defects=["keeps_local_traits"],
                             case_ids={"INSI-01", "INSI-06"}))
    status = {row.id: row.status for row in traceability(output.result)}
    assert status["IDV-02"] == "failed"
    assert status["INSI-EXG-01"] == "passed" and status["IDV-01"] == "passed"
