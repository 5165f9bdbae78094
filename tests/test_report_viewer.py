"""The HTML report's exchange viewer, read by parsing the HTML: the query (parsed), request and response headers,
injected faults and notes are shown; findings link to their exchanges and back, exchanges to their records and
their copies in the bundle; what a finding names is highlighted; a fragment opens the case it names.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import html as lxml_html

from esante.reports import ReportPaths, write_reports
from esante.reports.findings import expected_observed, segments, terms, window
from esante.reports.html import SCRIPT, render_html
from esante.reports.model import RunResult
from esante.simulators.core.evidence import EvidenceStore
from tests.test_reports import build_run

QUERY = ("response_type=code&state=st4te-XYZ&nonce=n0nce-ABC&code_challenge=ch4llenge"
         "&code_challenge_method=plain&evil=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
MESSAGE = "authorization request GET /authorize uses code_challenge_method plain instead of S256"


def viewer_run(store: EvidenceStore) -> RunResult:
    """The synthetic run, its failed case's exchange a PSC authorization request with everything the journal
    holds: query, headers both ways, an injected fault and notes."""
    result = build_run(store, message=MESSAGE)
    exchange = result.cases[1].exchanges[0]
    exchange.method, exchange.path, exchange.query, exchange.scheme = "GET", "/authorize", QUERY, "https"
    exchange.request_headers = [("host", "psc.example"), ("authorization", "Basic cnA6c2VjcmV0")]
    exchange.response_headers = [("location", "https://rp.example/cb?code=c0de")]
    exchange.injected_faults = [{"kind": "http_error", "status": 503, "count": 1}]
    exchange.notes = {"client_id": "rp-1", "findings": [{"rule": "pkce", "message": "plain"}]}
    exchange.request_record_digest = "d" * 64
    return result


@pytest.fixture
def page(tmp_path: Path) -> tuple[RunResult, ReportPaths, lxml_html.HtmlElement]:
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    result = viewer_run(store)
    paths = write_reports(result, store, tmp_path / "out", signing_key=tmp_path / "key.pem")
    return result, paths, lxml_html.fromstring(paths.html.read_bytes())


def _text(element: lxml_html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def _exchange(tree: lxml_html.HtmlElement, result: RunResult) -> lxml_html.HtmlElement:
    [details] = tree.xpath(f'//details[@id="record-{result.cases[1].exchanges[0].request_seq}"]')
    return details


def test_query_is_shown_and_parsed(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    exchange = _exchange(tree, result)
    rows = {_text(tr.xpath("td")[0]): _text(tr.xpath("td")[1]) for tr in exchange.xpath('.//table[contains(@class, '
                                                                                         '"query")]//tr')}
    assert rows["state"] == "st4te-XYZ" and rows["nonce"] == "n0nce-ABC" and rows["code_challenge"] == "ch4llenge"
    assert rows["code_challenge_method"] == "plain" and rows["evil"] == "<script>alert(1)</script>"
    assert "GET /authorize?response_type=code&state=st4te-XYZ" in _text(exchange)


def test_headers_both_ways(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    exchange = _exchange(tree, result)
    request = [[_text(td) for td in tr.xpath("td")] for tr in exchange.xpath('.//table[contains(@class, '
                                                                             '"request-headers")]//tr')]
    response = [[_text(td) for td in tr.xpath("td")] for tr in exchange.xpath('.//table[contains(@class, '
                                                                              '"response-headers")]//tr')]
    assert request == [["host", "psc.example"], ["authorization", "Basic cnA6c2VjcmV0"]]
    assert response == [["location", "https://rp.example/cb?code=c0de"]]
    other = tree.xpath(f'//details[@id="record-{result.cases[0].exchanges[0].request_seq}"]')[0]
    assert "none recorded" in _text(other)  # a report without them says so


def test_injected_fault_and_notes(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    exchange = _exchange(tree, result)
    [fault] = exchange.xpath('.//div[@class="fault"]')
    assert "Injected fault" in _text(fault) and "http_error" in _text(fault) and "status 503" in _text(fault)
    assert exchange.xpath('.//summary//span[contains(@class, "fault-flag")]')
    [notes] = exchange.xpath('.//pre[@class="notes"]')
    assert '"client_id": "rp-1"' in notes.text_content() and '"rule": "pkce"' in notes.text_content()


def test_findings_link_to_exchanges_and_back(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    case = result.cases[1]
    [row] = tree.xpath('//tr[@id="case-2-check-1"]')
    [link] = row.xpath('.//a[@class="evidence"]')
    target = link.get("href").removeprefix("#")
    assert target == f"record-{case.checks[0].evidence[0].seq}"
    [landing] = tree.xpath(f'//*[@id="{target}"]')
    assert _exchange(tree, result) in landing.iterancestors()  # the response record, inside its exchange
    back = _exchange(tree, result).xpath('.//a[@href="#case-2-check-1"]')
    assert back and _text(back[0]) == "identity.ins_as_returned"
    step = case.steps[0].evidence[0].seq
    assert tree.xpath(f'//span[@id="record-{step}"]')  # a step's record is a target too


def test_exchanges_link_to_their_records_in_the_bundle(
        page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, paths, tree = page
    exchange = _exchange(tree, result)
    links = [a.get("href") for a in exchange.xpath('.//a') if _text(a) == "body in the bundle"]
    assert links == ["exchanges/INSI-02/01-insi-ex0002.request.bin", "exchanges/INSI-02/01-insi-ex0002.response.bin"]
    with zipfile.ZipFile(paths.bundle) as archive:
        assert set(links) <= set(archive.namelist())  # they resolve once the bundle is unpacked
    meta = _text(exchange.xpath('.//table[@class="meta"]')[0])
    seq = result.cases[1].exchanges[0].request_seq
    assert f"record #{seq} · digest {'d' * 64}" in meta


def test_what_a_finding_names_is_highlighted(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    exchange = _exchange(tree, result)
    marked = {_text(m) for m in exchange.xpath(".//mark")}
    assert {"code_challenge_method", "plain"} <= marked
    assert not {"st4te-XYZ", "n0nce-ABC"} & marked
    [row] = tree.xpath('//tr[@id="case-2-check-1"]')
    assert {"code_challenge_method", "plain", "S256"} <= {_text(m) for m in row.xpath(".//mark")}
    [pair] = row.xpath('.//div[@class="eo"]')
    assert _text(pair) == "expected S256 · observed plain"
    passed = tree.xpath('//details[@id="case-1"]')[0]
    assert not passed.xpath(".//mark")  # nothing is highlighted where no finding points


def test_fragments_name_every_case_and_the_script_opens_them(
        page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement]) -> None:
    result, _, tree = page
    ids = [d.get("id") for d in tree.xpath('//details[contains(@class, "case")]')]
    assert ids == [f"case-{n}" for n in range(1, len(result.cases) + 1)]
    assert [a.get("href") for a in tree.xpath('//section[@id="summary"]//a')] == [f"#{i}" for i in ids]
    [script] = tree.xpath("//script")
    assert script.text == SCRIPT and "hashchange" in SCRIPT and "e.open=true" in SCRIPT
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    [csp] = tree.xpath('//meta[@http-equiv="Content-Security-Policy"]/@content')
    assert f"script-src 'sha256-{digest}';" in csp  # the CSP lets exactly it run


def test_untrusted_query_headers_and_notes_are_escaped(tmp_path: Path) -> None:
    result = viewer_run(EvidenceStore(tmp_path / "e.sqlite"))
    exchange = result.cases[1].exchanges[0]
    exchange.request_headers = [("x-evil", "<img src=x onerror=alert(2)>")]
    exchange.notes = {"<b>": "</pre><script>alert(3)</script>"}
    html = render_html(result)
    assert "<img src=x" not in html and "<script>alert" not in html and html.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium (Debian's chromium) is not installed")
def test_chromium_opens_the_case_a_fragment_names(page: tuple[RunResult, ReportPaths, lxml_html.HtmlElement],
                                                  tmp_path: Path) -> None:
    _, paths, _ = page
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          f"{paths.html.resolve().as_uri()}#case-1"],
                         capture_output=True, text=True, timeout=120).stdout
    tree = lxml_html.fromstring(dom)
    assert tree.xpath('//details[@id="case-1"]')[0].get("open") is not None  # passed: folded, opened by #case-1
    assert tree.xpath('//details[@id="case-4"]')[0].get("open") is None      # skipped: stays folded


# -- what the viewer reads a finding with -------------------------------------------------------------------

@pytest.mark.parametrize(("message", "expected", "observed"), [
    ("Sexe 'M', expected 'F'", "'F'", "'M'"),
    ("identity status RECUP, expected QUAL: the document was checked", "QUAL", "RECUP"),
    ("step 2 (dmp.feed): expected error code DMP_E01, got None", "error code DMP_E01", "None"),
    ("the teleservice returned INS 1 80 (OID 1.2.250.1.213.1.4.10); the candidate stored 1 80 (OID "
     "1.2.250.1.213.1.4.8) (outcome found: ...)", "INS 1 80 (OID 1.2.250.1.213.1.4.10)",
     "1 80 (OID 1.2.250.1.213.1.4.8)"),
    (MESSAGE, "S256", "plain"),
])
def test_expected_and_observed_are_read_from_the_kits_phrasings(message: str, expected: str, observed: str) -> None:
    pair = expected_observed(message)
    assert pair is not None and (pair.expected, pair.observed) == (expected, observed)


def test_terms_are_what_a_message_names() -> None:
    assert terms("call 2 has no ContexteLPS header") == ["ContexteLPS"]
    assert terms("Sexe 'M', expected 'F'") == ["Sexe"]
    assert "2026-01-01T10:00:00Z" not in terms("request at 2026-01-01T10:00:00Z has no code_challenge")
    assert terms("1 call(s), all passed") == []
    assert expected_observed("1 call(s), all passed") is None


def test_segments_match_whole_values_only() -> None:
    found = ["1.2.250.1.213.1.4.1", "80"]
    pieces = segments("<OID>1.2.250.1.213.1.4.10</OID><Cle>80</Cle><T>1980</T>", found)
    assert [chunk for chunk, marked in pieces if marked] == ["80"]


def test_window_keeps_the_lines_around_what_is_named() -> None:
    text = "\n".join(f"line {n}" for n in range(100))
    shown = window(text, ["line 50"], context=2)
    assert [s for s in shown if isinstance(s, str)] == [f"line {n}" for n in range(48, 53)]
    assert [s.lines for s in shown if not isinstance(s, str)] == [48, 47]
    assert len(window(text, [], head=10)) == 11  # the first lines, then what was left out


def test_header_names_and_versions() -> None:
    message = "call at 2026-01-01T10:00:00Z (POST /lps): Content-Type text/xml: SOAP 1.2 requires application/soap+xml"
    assert "Content-Type" in terms(message) and "1.2" not in terms(message)
    assert [c for c, marked in segments("content-type: text/xml", ["Content-Type"]) if marked] == ["content-type"]
    assert not [c for c, marked in segments("1.2.250.1.213", ["1.2"]) if marked]  # an OID's prefix is no match
