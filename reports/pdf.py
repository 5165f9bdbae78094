"""The PDF report: what a reviewer files. A cover page, the per-requirement summary, the case table, then one
section per case that did not pass (failed, error, inconclusive) with its findings and the offending exchange's
excerpt, the values the finding names highlighted; passed and skipped cases are summarised, not printed in full.
The HTML report stays the place to browse everything.

**Library.** fpdf2 (LGPL-3.0, maintained, pure Python: its own dependencies, fontTools, Pillow and defusedxml,
install as wheels), so ``pip install esante-conformance`` is still all the README's first command needs. It
draws tables that break across pages, bookmarks (the PDF outline), internal links (case table → case section),
and embeds TrueType fonts, subset to the glyphs used. reportlab would do too; fpdf2 is smaller, and its table
API keeps this module short.

**Fonts.** PDF's built-in fonts are not embedded and, as fpdf2 encodes them, carry Latin-1 only: no "œ", no "’".
The report embeds DejaVu Sans and DejaVu Sans Mono, shipped in ``reports/fonts/`` with their licence
(``LICENSE-DejaVu.md``): every French character (é è à ç œ « » ’) and the arrows and dashes reports use, and
far beyond, for whatever an exchange holds. A character no font has prints as "?", never breaks the document.

**The bundle digest.** The PDF is written *after* the evidence bundle and is not in it: a file cannot name the
digest of the archive that contains it. Its cover names the bundle's SHA-256 and signer, so a filed PDF points
at exactly one bundle, which ``esante verify`` checks; the bundle holds ``report.json``, from which
``esante report --pdf`` renders this PDF again.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos
from fpdf.table import Table

from esante.reports.findings import FindingView, Gap, exchange_terms, findings, mentions, segments, window
from esante.reports.model import (
    NOT_COVERED,
    VERDICT_ORDER,
    CaseResult,
    ExchangeSummary,
    RunResult,
    Verdict,
    interruption,
    requirement_rows,
    requirement_status,
)
from esante.reports.text import readable_body
from esante.simulators.core.evidence import utc_now
from esante.simulators.core.evidence.bundle import SIGNER
from esante.simulators.core.evidence.signing import fingerprint

FONTS = Path(__file__).parent / "fonts"
SANS, MONO = "DejaVuSans", "DejaVuSansMono"
INK, MUTED, LINE, SOFT = (29, 35, 48), (87, 96, 106), (216, 222, 230), (245, 247, 250)
HIGHLIGHT = (255, 229, 143)
COLOURS = {"passed": (26, 127, 55), "failed": (207, 34, 46), "error": (130, 80, 223), "skipped": (140, 149, 159),
           "inconclusive": (154, 103, 0), NOT_COVERED: (207, 34, 46)}
DETAILED = (Verdict.FAILED, Verdict.ERROR, Verdict.INCONCLUSIVE)
MAX_SIGNER_BYTES = 16_384
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class BundleFacts:
    """What the cover says of the evidence bundle: its name, SHA-256 and signer's key fingerprint."""

    name: str
    sha256: str
    signer: str | None


def bundle_facts(path: Path | None) -> BundleFacts | None:
    """The facts of the bundle at ``path`` (None when there is none)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return BundleFacts(Path(path).name, digest.hexdigest(), _signer(Path(path)))


def _signer(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(SIGNER)
            return fingerprint(archive.read(info)) if info.file_size <= MAX_SIGNER_BYTES else None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None


class _Document(FPDF):
    """A4 pages in DejaVu, with a footer naming the run on every page."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.result = result
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)
        self.add_font(SANS, "", FONTS / "DejaVuSans.ttf")
        self.add_font(SANS, "B", FONTS / "DejaVuSans-Bold.ttf")
        self.add_font(MONO, "", FONTS / "DejaVuSansMono.ttf")
        self.set_fallback_fonts([SANS], exact_match=False)
        self.set_text_color(*INK)
        self.set_draw_color(*LINE)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(SANS, size=7)
        self.set_text_color(*MUTED)
        result = self.result
        self.cell(0, 4, clean(f"{result.campaign.id} {result.campaign.version} · {result.candidate.name} "
                              f"{result.candidate.version} · run {result.run_id}"), align="L")
        self.cell(0, 4, f"page {self.page_no()} of {{nb}}", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*INK)


@lru_cache(maxsize=1)
def _printable() -> frozenset[int]:
    """The characters DejaVu Sans draws (DejaVu Sans Mono falls back to it for the ones it lacks)."""
    return frozenset(TTFont(FONTS / "DejaVuSans.ttf", lazy=True).getBestCmap())


def clean(text: object) -> str:
    """Text safe to print: control characters, and characters no shipped font draws, shown as "?"; tabs as
    spaces."""
    text = _CONTROL.sub("?", str(text).replace("\t", "    "))
    printable = _printable()
    if all(ord(c) in printable or c == "\n" for c in text):
        return text
    return "".join(c if ord(c) in printable or c == "\n" else "?" for c in text)


def compact(ids: list[str]) -> str:
    """Case ids with runs shortened: ``INSI-01–INSI-04, INSI-07`` (a run is 3 or more consecutive numbers)."""
    runs: list[list[str]] = []
    for case_id in ids:
        if runs and _follows(runs[-1][-1], case_id):
            runs[-1].append(case_id)
        else:
            runs.append([case_id])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(run) for run in runs)


def _follows(previous: str, case_id: str) -> bool:
    a, b = _NUMBERED.match(previous), _NUMBERED.match(case_id)
    return bool(a and b and a.group(1) == b.group(1) and int(b.group(2)) == int(a.group(2)) + 1)


class PdfReport:
    """Draws one run's PDF report."""

    def __init__(self, result: RunResult, bundle: BundleFacts | None = None, generated_at: str | None = None) -> None:
        self.result, self.bundle = result, bundle
        self.generated_at = generated_at or utc_now()
        self.pdf = _Document(result)
        #: case id → the named destination of its section (the case table links to it before it is drawn)
        self.links = {case.id: f"case-{n}" for n, case in enumerate(result.cases, 1) if case.verdict in DETAILED}
        self.printed: set[str] = set()  # the exchanges of the current case already printed

    # -- the document ------------------------------------------------------------------------------------------
    def render(self) -> bytes:
        self._metadata()
        self.cover()
        self.requirements()
        self.cases()
        for case in self.result.cases:
            if case.verdict in DETAILED:
                self.case_section(case)
        self.summarised()
        return bytes(self.pdf.output())

    def _metadata(self) -> None:
        result = self.result
        self.pdf.set_title(clean(f"{result.campaign.title} — {result.candidate.name} {result.candidate.version}"))
        self.pdf.set_subject(clean(f"conformance run {result.run_id}: {result.verdict.value}"))
        self.pdf.set_author(f"esante-conformance {result.harness_version}")
        self.pdf.set_creator(f"esante-conformance {result.harness_version}")
        self.pdf.set_lang("en")

    # -- small drawing helpers -----------------------------------------------------------------------------------
    def font(self, size: float = 9, bold: bool = False, mono: bool = False) -> None:
        self.pdf.set_font(MONO if mono else SANS, "B" if bold and not mono else "", size)

    def heading(self, text: str, level: int = 0) -> None:
        pdf = self.pdf
        size = (15, 12, 10)[min(level, 2)]
        if pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(3 if level else 1)
        pdf.start_section(clean(text)[:120], level=level, strict=False)
        self.font(size, bold=True)
        pdf.multi_cell(0, size * 0.5, clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if level == 0:
            pdf.set_draw_color(*LINE)
            pdf.line(pdf.l_margin, pdf.get_y() + 0.5, pdf.w - pdf.r_margin, pdf.get_y() + 0.5)
        pdf.ln(2)

    def para(self, text: str, size: float = 9, muted: bool = False, bold: bool = False) -> None:
        self.font(size, bold=bold)
        if muted:
            self.pdf.set_text_color(*MUTED)
        self.pdf.multi_cell(0, size * 0.48, clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_text_color(*INK)

    def badge(self, verdict: str, size: float = 8) -> None:
        """A coloured verdict label at the current position, on the current line."""
        pdf = self.pdf
        self.font(size, bold=True)
        pdf.set_fill_color(*COLOURS.get(verdict, MUTED))
        pdf.set_text_color(255, 255, 255)
        pdf.cell(pdf.get_string_width(verdict) + 4, size * 0.55, verdict, fill=True, align="C")
        pdf.set_text_color(*INK)

    def verdict_style(self, verdict: str) -> FontFace:
        return FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=COLOURS.get(verdict, MUTED))

    @contextmanager
    def table(self, widths: tuple[float, ...], headings: tuple[str, ...] | None, size: float = 8) -> Iterator[Table]:
        """A table across the page's width, its heading row (if any) repeated on every page it spans."""
        self.font(size)
        self.pdf.set_fill_color(255, 255, 255)
        with self.pdf.table(col_widths=widths, width=self.pdf.epw, text_align="LEFT", line_height=size * 0.5,
                            first_row_as_headings=headings is not None, padding=1, v_align="TOP",
                            headings_style=FontFace(emphasis="BOLD", fill_color=SOFT)) as table:
            if headings is not None:
                heading = table.row()
                for text in headings:
                    heading.cell(text)
            yield table

    # -- cover ---------------------------------------------------------------------------------------------------
    def cover(self) -> None:
        pdf, result = self.pdf, self.result
        pdf.add_page()
        pdf.start_section("Cover", level=0)
        self.para("Conformance report", size=10, muted=True)
        self.font(20, bold=True)
        pdf.multi_cell(0, 9, clean(result.campaign.title), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.para(f"{result.candidate.name} {result.candidate.version}", size=13)
        pdf.ln(4)
        self._verdict_box()
        pdf.ln(4)
        with self.table((45, 135), None, size=8.5) as table:
            for label, value in self._cover_rows():
                row = table.row()
                row.cell(label, style=FontFace(color=MUTED))
                row.cell(clean(value))
        pdf.ln(3)
        self.para("Check the evidence bundle offline with: esante verify evidence-bundle.zip (add --trusted-key to "
                  "require the signer's key). The bundle holds report.json, from which this PDF is rendered again "
                  "by: esante report --pdf <run folder>.", size=8, muted=True)

    def _verdict_box(self) -> None:
        pdf, result = self.pdf, self.result
        verdict = result.verdict.value
        pdf.set_fill_color(*COLOURS.get(verdict, MUTED))
        pdf.set_text_color(255, 255, 255)
        self.font(16, bold=True)
        counts = ", ".join(f"{n} {name}" for name, n in result.counts().items() if n)
        pdf.cell(0, 12, f"  Overall verdict: {verdict}", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.font(10)
        pdf.cell(0, 7, f"  {len(result.cases)} cases: {counts}", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*INK)

    def _cover_rows(self) -> list[tuple[str, str]]:
        result, candidate, campaign = self.result, self.result.candidate, self.result.campaign
        bundle = self.bundle
        who = f"{candidate.name} {candidate.version}" + (f" — {candidate.vendor}" if candidate.vendor else "")
        return [
            ("Run id", result.run_id),
            ("Campaign", f"{campaign.id} version {campaign.version} — {campaign.title} ({campaign.file})"),
            ("Campaign SHA-256", campaign.sha256),
            ("Candidate", f"{who}, {candidate.mode} mode" + (f"\n{candidate.url}" if candidate.url else "")),
            ("Harness", f"esante-conformance {result.harness_version} (report schema {result.schema_version})"),
            ("Simulators", "\n".join(f"{name}  {url}" for name, url in result.simulators.items()) or "—"),
            ("Started", result.started_at),
            ("Finished", result.finished_at),
            ("Report generated", self.generated_at),
            ("Overall verdict", result.verdict.value),
            *([("Incomplete", interruption(result))] if result.interrupted else []),
            ("Evidence", f"{result.evidence_records} records; chain head {result.evidence_chain_head}"),
            ("Evidence bundle", f"{bundle.name} SHA-256 {bundle.sha256}" if bundle else "not written"),
            ("Bundle signer", (bundle.signer or "unreadable") if bundle else "—"),
        ]

    # -- requirements and cases ------------------------------------------------------------------------------------
    def requirements(self) -> None:
        rows = requirement_rows(self.result.cases, self.result.campaign.requirements)
        self.pdf.add_page()
        self.heading("Requirements")
        covered = sum(bool(entries) for _, _, entries in rows)
        judged = sum(any(v != Verdict.SKIPPED for _, v in entries) for _, _, entries in rows)
        self.para(f"{covered} of {len(rows)} requirements covered by a case, {judged} judged in this run. A "
                  "requirement's status is the worst verdict of the checks that judge it, in every case that runs "
                  "them.", size=8.5, muted=True)
        self.pdf.ln(1)
        with self.table((28, 24, 78, 50), ("Requirement", "Status", "Wording", "Judged by")) as table:
            for rid, text, entries in rows:
                status = str(requirement_status(entries))
                row = table.row()
                row.cell(clean(rid))
                row.cell(status, style=self.verdict_style(status))
                row.cell(clean(text or "—"))
                row.cell(clean(self._judged_by(entries)))

    @staticmethod
    def _judged_by(entries: list[tuple[CaseResult, Verdict]]) -> str:
        """The cases judging a requirement, by verdict, worst first: ``11 failed: INSI-01, INSI-04–INSI-10``."""
        if not entries:
            return "no case"
        lines = []
        for verdict in VERDICT_ORDER:
            ids = [case.id for case, v in entries if v == verdict]
            if ids:
                lines.append(f"{len(ids)} {verdict.value}: {compact(ids)}")
        return "\n".join(lines)

    def cases(self) -> None:
        self.heading("Test cases")
        with self.table((22, 98, 20, 22, 18), ("Case", "Title", "Severity", "Verdict", "Duration")) as table:
            for case in self.result.cases:
                row = table.row()
                row.cell(clean(case.id), link=f"#{self.links[case.id]}" if case.id in self.links else None)
                row.cell(clean(case.title))
                row.cell(clean(case.severity))
                row.cell(case.verdict.value, style=self.verdict_style(case.verdict.value))
                row.cell(f"{case.duration_ms:.0f} ms")

    # -- one case that did not pass ------------------------------------------------------------------------------
    def case_section(self, case: CaseResult) -> None:
        pdf = self.pdf
        pdf.add_page()
        pdf.set_link(name=self.links[case.id], page=pdf.page_no(), y=pdf.get_y())
        self.heading(f"{case.id} — {case.title}")
        self.badge(case.verdict.value, size=9)
        pdf.ln(7)
        self.para(f"Reason: {case.reason}")
        self.para(f"Severity {case.severity} · requirements {', '.join(case.requirements) or 'none'} · started "
                  f"{case.started_at} · {case.duration_ms:.0f} ms", size=8, muted=True)
        self._steps(case)
        self.printed = set()
        views = findings(case)
        for view in views:
            self._finding(case, view)
        self._other_exchanges(case, views)

    def _steps(self, case: CaseResult) -> None:
        if not case.steps:
            return
        self.heading("Steps", level=1)
        for step in case.steps:
            records = ", ".join(f"record #{ref.seq}" for ref in step.evidence)
            self.para(f"{step.index + 1}. {step.kind}: {step.description} → {step.outcome}"
                      + (f" ({records})" if records else ""), size=8.5)

    def _finding(self, case: CaseResult, view: FindingView) -> None:
        check = view.check
        self.heading(f"Finding: {check.check}", level=1)
        self.badge(check.verdict.value)
        self.font(8)
        self.pdf.cell(0, 4.4, clean(f"  requirements {', '.join(check.requirements) or '—'}"),
                      new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1)
        self._marked_paragraph(check.message, view.terms)
        if view.expected_observed:
            self.para(f"Expected: {view.expected_observed.expected}", size=8.5, bold=True)
            self.para(f"Observed: {view.expected_observed.observed}", size=8.5, bold=True)
        refs = "; ".join(f"record #{ref.seq} {ref.label or ref.kind} (sha256:{ref.digest[:16]}…)"
                         for ref in check.evidence)
        self.para(f"Evidence: {refs or 'none cited'}", size=7.5, muted=True)
        for exchange in view.exchanges:
            if exchange.id in self.printed:
                self.para(f"Exchange {case.exchanges.index(exchange) + 1} ({exchange.simulator} {exchange.method} "
                          f"{exchange.path}): printed above.", size=8, muted=True)
                continue
            self.printed.add(exchange.id)
            self._exchange(case, exchange, view.terms)

    def _marked_paragraph(self, text: str, terms: list[str], size: float = 9) -> None:
        """A paragraph whose terms are printed on a highlight, flowed word by word."""
        pdf = self.pdf
        self.font(size)
        height, right = size * 0.48, pdf.w - pdf.r_margin
        pdf.set_x(pdf.l_margin)
        for chunk, marked in segments(clean(text).replace("\n", " "), terms):
            pdf.set_fill_color(*HIGHLIGHT)
            for word in re.findall(r"\s+|\S+", chunk):
                width = pdf.get_string_width(word)
                if word.isspace():
                    if pdf.get_x() > pdf.l_margin:
                        pdf.set_x(min(pdf.get_x() + pdf.get_string_width(" "), right))
                    continue
                if pdf.get_x() + width > right and pdf.get_x() > pdf.l_margin:
                    pdf.ln(height)
                self._tight_cell(min(width, pdf.epw), height, word, fill=marked)
        pdf.ln(size * 0.6)

    def _tight_cell(self, width: float, height: float, text: str, fill: bool) -> None:
        """A cell exactly as wide as its text (no inner margin), so a highlight covers the text and only it."""
        pdf = self.pdf
        margin, pdf.c_margin = pdf.c_margin, 0
        try:
            pdf.cell(width, height, text, fill=fill)
        finally:
            pdf.c_margin = margin

    def _exchange(self, case: CaseResult, exchange: ExchangeSummary, terms: list[str]) -> None:
        number = case.exchanges.index(exchange) + 1
        status = exchange.status if exchange.status is not None else "no answer"
        self.heading(f"Exchange {number}: {exchange.simulator} {exchange.method} {exchange.path} → {status}", level=2)
        self.para(f"{exchange.outcome}{', ' + exchange.operation if exchange.operation else ''}, received "
                  f"{exchange.received_at}; request record #{exchange.request_seq} (body sha256:"
                  f"{exchange.request_sha256[:16]}…)"
                  + (f", response record #{exchange.response_seq}" if exchange.response_seq else ""),
                  size=7.5, muted=True)
        for fault in exchange.injected_faults:
            self.para(f"Injected fault (the simulator misbehaved on purpose): {fault.get('kind', '?')}"
                      + (f" {fault['fault_code']}" if fault.get("fault_code") else "")
                      + (f", status {fault.get('status')}" if fault.get("kind") == "http_error" else ""), size=8,
                      bold=True)
        if exchange.query:
            self._excerpt("Query", exchange.query.replace("&", "\n&"), terms)
        for title, headers in (("Request headers", exchange.request_headers),
                               ("Response headers", exchange.response_headers)):
            named = [f"{name}: {value}" for name, value in headers if mentions(f"{name}: {value}", terms)]
            if named:
                self._excerpt(f"{title} the finding names ({len(named)} of {len(headers)})", "\n".join(named), terms)
        self._excerpt("Request", readable_body(exchange.request_excerpt), terms)
        self._excerpt("Response", readable_body(exchange.response_excerpt), terms)

    def _excerpt(self, title: str, text: str, terms: list[str]) -> None:
        """Lines of a body around what the finding names (or its first lines), highlighted, in monospace."""
        pdf = self.pdf
        self.para(title, size=8, bold=True)
        if not text.strip():
            self.para("(empty)", size=8, muted=True)
            return
        self.font(6.8, mono=True)
        per_line = max(20, int((pdf.epw - 4) // pdf.get_string_width("M")))
        pdf.set_fill_color(*SOFT)
        for line in window(clean(text), terms):
            if isinstance(line, Gap):
                pdf.set_text_color(*MUTED)
                pdf.cell(0, 3.3, f"  … {line.lines} line(s) not shown", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.set_text_color(*INK)
                continue
            for piece in [line[i:i + per_line] for i in range(0, len(line), per_line)] or [""]:
                self._mono_line(piece, terms)
        pdf.ln(1.5)

    def _mono_line(self, line: str, terms: list[str]) -> None:
        pdf = self.pdf
        pdf.set_x(pdf.l_margin + 2)
        for chunk, marked in segments(line, terms):
            pdf.set_fill_color(*(HIGHLIGHT if marked else SOFT))
            self._tight_cell(pdf.get_string_width(chunk), 3.3, chunk, fill=marked)
        pdf.ln(3.3)

    def _other_exchanges(self, case: CaseResult, views: list[FindingView]) -> None:
        cited = {e.id for view in views for e in view.exchanges}
        others = [e for e in case.exchanges if e.id not in cited]
        if not others:
            return
        self.heading("Other exchanges of the case", level=1)
        marked = exchange_terms(case)
        for exchange in others:
            status = exchange.status if exchange.status is not None else "no answer"
            notes = (" · injected fault" if exchange.injected_faults else "") + \
                (" · highlighted" if marked.get(exchange.id) else "")
            self.para(f"{case.exchanges.index(exchange) + 1}. {exchange.simulator} {exchange.method} {exchange.path} "
                      f"→ {status} ({exchange.outcome}{', ' + exchange.operation if exchange.operation else ''})"
                      f"; record #{exchange.request_seq}{notes}", size=8)

    # -- passed and skipped, summarised --------------------------------------------------------------------------
    def summarised(self) -> None:
        passed = [c for c in self.result.cases if c.verdict == Verdict.PASSED]
        skipped = [c for c in self.result.cases if c.verdict == Verdict.SKIPPED]
        self.pdf.add_page()
        self.heading("Passed and skipped cases")
        self.para(f"{len(passed)} case(s) passed, {len(skipped)} skipped. Their exchanges and checks are in the HTML "
                  "report and the evidence bundle.", size=8.5, muted=True)
        if passed or skipped:
            with self.table((22, 100, 58), ("Case", "Title", "Outcome")) as table:
                for case in [*passed, *skipped]:
                    row = table.row()
                    row.cell(clean(case.id))
                    row.cell(clean(case.title))
                    row.cell(clean(f"{case.verdict.value}: {case.reason}"))


def render_pdf(result: RunResult, bundle: Path | None = None, generated_at: str | None = None) -> bytes:
    """The PDF report of ``result``; ``bundle`` is the evidence bundle its cover names (digest and signer)."""
    return PdfReport(result, bundle_facts(bundle), generated_at).render()


def write_pdf(result: RunResult, path: Path, bundle: Path | None = None) -> Path:
    path = Path(path)
    path.write_bytes(render_pdf(result, bundle))
    return path
