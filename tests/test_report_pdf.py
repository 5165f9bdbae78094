"""The PDF report, read back: its text (names, verdicts, digests, French accents), its structure (a section per
case that did not pass, passed cases summarised), its fonts, and a page rendered to an image.

Text and images come from PDFium (``pypdfium2``, a test dependency); poppler's ``pdftotext`` and ``pdftoppm``
check the same when they are installed, and those checks skip, saying so, when they are not.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from esante.reports import write_reports
from esante.reports.model import RunResult, Verdict
from esante.reports.pdf import compact, render_pdf
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.evidence.signing import fingerprint, load_or_create_key, public_key_pem
from tests.test_reports import RUN_ID, build_run

pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (a test dependency) reads the PDF back")

FRENCH = "Logiciel « Hôpital » d’été : à Besançon, œuvre complète — è"
ACCENTS = ("é", "è", "à", "ç", "œ", "«", "»", "’")


def _flat(text: str) -> str:
    return " ".join(text.split())


def pdf_text(path: Path) -> list[str]:
    """Each page's text, as PDFium extracts it."""
    document = pdfium.PdfDocument(str(path))
    try:
        return [document[i].get_textpage().get_text_bounded() for i in range(len(document))]
    finally:
        document.close()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path, Path]:
    """A synthetic run with French text everywhere, its reports written: (result, report.pdf, bundle)."""
    tmp = tmp_path_factory.mktemp("pdf")
    store = EvidenceStore(tmp / "evidence.sqlite")
    result = build_run(store, candidate_name=FRENCH, message="INS returned 999, expected 1234567890123 (« échec »)")
    result.campaign.title = "Conformité INSi — téléservice"
    paths = write_reports(result, store, tmp / "out", signing_key=tmp / "key.pem")
    return result, paths.pdf, paths.bundle


def test_write_reports_writes_the_pdf_after_the_bundle_and_outside_it(written: tuple[RunResult, Path, Path]) -> None:
    from esante.reports import verify_bundle

    _, pdf, bundle = written
    assert pdf.name == "report.pdf" and pdf.read_bytes().startswith(b"%PDF-")
    with zipfile.ZipFile(bundle) as archive:
        assert "report.pdf" not in archive.namelist()
    assert verify_bundle(bundle).ok


def test_cover_names_the_run_the_candidate_and_the_bundle(written: tuple[RunResult, Path, Path]) -> None:
    result, pdf, bundle = written
    cover = _flat(pdf_text(pdf)[0])
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    signer = fingerprint(public_key_pem(load_or_create_key(bundle.parent.parent / "key.pem")))
    for text in ("Conformance report", "Conformité INSi — téléservice", _flat(FRENCH), "4.2", "Acme", "driver mode",
                 RUN_ID, "insi version 1.2", "c" * 64, "esante-conformance 0.1.0", "report schema 1.2",
                 "https://127.0.0.1:8443", "2026-01-01T10:00:00.000000Z", "2026-01-01T10:00:03.500000Z",
                 "Overall verdict: failed", "1 passed, 1 failed, 1 skipped, 1 inconclusive", result.evidence_chain_head,
                 f"evidence-bundle.zip SHA-256 {digest}", signer):
        assert text in cover, text


def test_french_accents_survive_text_extraction(written: tuple[RunResult, Path, Path]) -> None:
    text = "".join(pdf_text(written[1]))
    for accent in ACCENTS:
        assert accent in text, accent
    assert "« échec »" in text


def test_requirements_and_case_table(written: tuple[RunResult, Path, Path]) -> None:
    pages = [_flat(page) for page in pdf_text(written[1])]
    requirements = next(page for page in pages if page.startswith("Requirements"))
    assert "4 of 5 requirements covered by a case, 3 judged in this run" in requirements
    for row in ("IDV-01 inconclusive query INSi with the traits", "IDV-02 failed keep the INS as returned",
                "SEC-01 not covered never log the INS no case", "SEC-02 skipped", "IDV-03 failed"):
        assert row in requirements, row
    cases = next(page for page in pages if "Test cases" in page)
    for row in ("INSI-01 Title of INSI-01 major passed 250 ms", "INSI-02 Title of INSI-02 major failed 250 ms",
                "INSI-03 Title of INSI-03 major inconclusive", "INSI-04 Title of INSI-04 major skipped"):
        assert row in cases, row


def test_one_section_per_case_that_did_not_pass(written: tuple[RunResult, Path, Path]) -> None:
    pages = [_flat(page) for page in pdf_text(written[1])]
    sections = {page.split(" — ")[0] for page in pages if re.match(r"INSI-\d\d — ", page)}
    assert sections == {"INSI-02", "INSI-03"}  # failed and inconclusive; not the passed and the skipped
    failed = next(page for page in pages if page.startswith("INSI-02 — "))
    for text in ("Finding: identity.ins_as_returned", "requirements IDV-02, IDV-03",
                 "INS returned 999, expected 1234567890123", "Expected: 1234567890123", "Observed: 999",
                 "Exchange 1: insi POST /lps → 200", "RECSANSVITALE", "<Birth>1980-00-00</Birth>",
                 "<INS>999</INS>", "look up the INS → done"):
        assert text in failed, text
    summary = pages[-1]
    assert summary.startswith("Passed and skipped cases") and "1 case(s) passed, 1 skipped" in summary
    assert "INSI-01 Title of INSI-01 passed: every check passed" in summary
    assert "INSI-04 Title of INSI-04 skipped: needs operator mode" in summary
    assert not any("ESANTE-REF-0001" in page for page in pages)  # a passed case's exchanges are not printed


def test_fonts_are_embedded_subsets_of_dejavu(written: tuple[RunResult, Path, Path]) -> None:
    data = written[1].read_bytes()
    assert data.count(b"/FontFile2") == 3
    assert re.search(rb"/BaseFont /[A-Z]{6}\+DejaVuSans", data)
    assert b"/Helvetica" not in data and b"/Times" not in data  # no unembedded base-14 font


def test_a_page_renders_to_an_image(written: tuple[RunResult, Path, Path], tmp_path: Path) -> None:
    document = pdfium.PdfDocument(str(written[1]))
    image = document[0].render(scale=150 / 72).to_pil().convert("RGB")
    document.close()
    image.save(tmp_path / "cover.png")
    assert abs(image.size[0] - 1240) <= 1 and abs(image.size[1] - 1754) <= 1  # A4 at 150 dpi
    colours = image.getcolors(maxcolors=1 << 20) or []
    red = sum(n for n, (r, g, b) in colours if r > 180 and g < 80 and b < 80)  # the failed verdict's banner
    dark = sum(n for n, (r, g, b) in colours if r + g + b < 200)                # text
    assert red > 20_000 and dark > 5_000


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (Debian's poppler-utils) is not installed")
def test_pdftoppm_renders_the_cover(written: tuple[RunResult, Path, Path], tmp_path: Path) -> None:
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(written[1]), str(tmp_path / "p")],
                   check=True, capture_output=True, timeout=60)
    [png] = tmp_path.glob("p*.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5_000


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (Debian's poppler-utils) is not installed")
def test_pdftotext_reads_the_same(written: tuple[RunResult, Path, Path]) -> None:
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(written[1]), "-"], check=True, capture_output=True,
                          timeout=60).stdout.decode()
    assert _flat(FRENCH) in _flat(text) and RUN_ID in text and "Overall verdict: failed" in text


def test_case_table_links_to_the_sections(written: tuple[RunResult, Path, Path]) -> None:
    data = written[1].read_bytes()
    assert b"/Dest (case-2)" in data and b"/Dest (case-3)" in data      # INSI-02 and INSI-03 link to their sections
    assert re.search(rb"\(case-2\) \[\d+ 0 R /XYZ", data)              # ... which are named destinations
    assert b"(case-1)" not in data                                      # a passed case has no section to go to


def test_hostile_text_does_not_break_the_pdf(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    result = build_run(store, candidate_name="Acme\x00\x1b[31m 漢字 🩺",
                       message="bad byte \x07 <&> here, expected 'x'\tgot 'y' " + "z" * 3000)
    case = result.cases[1]
    case.exchanges[0].response_excerpt = "\x00\x01 " + "A" * 5000 + "\n" * 500 + "漢字 🩺 end"
    data = render_pdf(result, bundle=None)
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    text = "".join(pdf_text(path))
    assert "Acme?" in text and "bad byte ? <&> here" in text and "not written" in text
    assert "Acme??[31m ?? ? 4.2" in text  # what no shipped font draws prints as "?"


def test_no_bundle_and_every_verdict(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    result = build_run(store)
    result.cases[0].verdict, result.cases[0].reason = Verdict.ERROR, "DriverError: the driver did not answer"
    path = tmp_path / "r.pdf"
    path.write_bytes(render_pdf(result))
    pages = [_flat(page) for page in pdf_text(path)]
    assert any(page.startswith("INSI-01 — ") and "DriverError" in page for page in pages)
    assert "Overall verdict: error" in pages[0] and "Evidence bundle not written" in pages[0]


def test_a_finding_prints_the_headers_it_names_and_each_exchange_once(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e.sqlite")
    result = build_run(store, message="Content-Type text/xml: SOAP 1.2 requires application/soap+xml")
    case = result.cases[1]
    case.exchanges[0].request_headers = [("host", "insi.example"), ("content-type", "text/xml")]
    case.checks.append(case.checks[0].model_copy(update={"check": "insi.second_look", "message": "again"}))
    path = tmp_path / "r.pdf"
    path.write_bytes(render_pdf(result))
    section = next(_flat(page) for page in pdf_text(path) if page.startswith("INSI-02 — "))
    assert "Request headers the finding names (1 of 2) content-type: text/xml" in section
    assert "insi.example" not in section
    assert section.count("Exchange 1: insi POST /lps → 200") == 1
    assert "Finding: insi.second_look" in section and "Exchange 1 (insi POST /lps): printed above." in section


def test_compact_shortens_runs_of_case_ids() -> None:
    assert compact(["INSI-01", "INSI-02", "INSI-03", "INSI-05", "INSI-06", "PSC-7"]) == \
        "INSI-01–INSI-03, INSI-05, INSI-06, PSC-7"
    assert compact([]) == ""
