"""The procès-verbal of a locked session: what a reviewer signs.

It holds the session, the candidate, the frozen versions and digests, the verdict per requirement and per
case — the harness's and the reviewer's side by side —, the comments, the reviewer and the date, and the
SHA-256 of each reviewed evidence bundle. It is drawn with fpdf2 in the fonts the PDF report ships.

Signed as bundles are: ``proces-verbal.zip`` is an evidence bundle (:func:`esante.reports.bundle.write_bundle`,
Ed25519, the lab's key) holding the PDF, its data as ``proces-verbal.json``, and the session's own evidence
chain (one ``session.pv`` record naming the PDF's digest), so ``esante verify proces-verbal.zip`` says whether
the PV is intact and who signed it. The PDF is also served alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from esante.harness.server import ops
from esante.harness.server.models import ReviewEntry, RunStatus, SessionKind, User
from esante.harness.server.models import Session as LabSession
from esante.harness.server.worker import LabSettings
from esante.reports.bundle import write_bundle
from esante.reports.model import CampaignInfo, CandidateInfo, RunResult, Verdict, worst
from esante.reports.pdf import FONTS, SANS, clean
from esante.simulators.core.evidence import EvidenceStore, sha256_hex, utc_now
from esante.simulators.core.evidence.signing import fingerprint, load_or_create_key, public_key_pem

PV_PDF, PV_JSON, PV_BUNDLE = "proces-verbal.pdf", "proces-verbal.json", "proces-verbal.zip"
KIND_LABELS = {SessionKind.SANDBOX: "bac à sable (sandbox)", SessionKind.REHEARSAL: "recette (rehearsal)",
               SessionKind.OFFICIAL: "homologation (official)"}


def _standing(verdicts: Iterable[str | None]) -> str:
    found = [Verdict(v) for v in verdicts if v]
    return worst(found).value if found else "not covered"


def pv_data(session: LabSession, entries: Sequence[ReviewEntry], reviewer: User, signer: str) -> dict[str, Any]:
    """What the PV says, as data (the PDF draws it; ``proces-verbal.json`` is it)."""
    views = ops.current_cases(session, entries)
    report = _latest_report(session)
    wording = report.campaign.requirements if report else {}
    requirements = sorted({r for v in views.values() for r in v.result.requirements} | set(wording))
    candidate = session.candidate
    return {
        "session": {"id": session.id, "kind": session.kind, "title": session.title, "campaign": session.campaign,
                    "created_at": session.created_at.isoformat(),
                    "locked_at": session.locked_at.isoformat() if session.locked_at else None},
        "candidate": {"name": candidate.name, "version": candidate.version, "vendor": candidate.vendor,
                      "organisation": candidate.organisation.name, "mode": candidate.mode},
        "frozen": session.frozen,
        "runs": [{"id": r.id, "harness_run_id": r.harness_run_id, "verdict": r.verdict, "status": r.status,
                  "cases": r.case_ids, "reason": r.reason, "reviewed_bundle_sha256": r.reviewed_bundle_sha256}
                 for r in session.runs],
        "requirements": [{"id": rid, "text": wording.get(rid, ""),
                          "harness": _standing(v.verdict for v in views.values() if rid in v.result.requirements),
                          "standing": _standing(v.standing for v in views.values() if rid in v.result.requirements)}
                         for rid in requirements],
        "cases": [{"id": v.case_id, "title": v.result.title, "run": v.result.run_id, "harness": v.verdict,
                   "reviewer": v.reviewer_verdict.verdict if v.reviewer_verdict else None,
                   "reviewer_reason": v.reviewer_verdict.text if v.reviewer_verdict else None,
                   "standing": v.standing, "comments": [c.text for c in v.comments]} for v in views.values()],
        "reviewer": {"name": reviewer.name, "email": reviewer.email},
        "signed_at": utc_now(), "signer": signer,
    }


def _latest_report(session: LabSession) -> RunResult | None:
    for run in reversed(session.runs):
        if run.status == RunStatus.FINISHED and run.folder and (Path(run.folder) / "report.json").is_file():
            return RunResult.model_validate_json((Path(run.folder) / "report.json").read_text(encoding="utf-8"))
    return None


class _Pv(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=15)
        self.add_font(SANS, "", FONTS / "DejaVuSans.ttf")
        self.add_font(SANS, "B", FONTS / "DejaVuSans-Bold.ttf")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(SANS, "B", 12)
        self.multi_cell(0, 6, clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def line_of(self, text: str, size: float = 9, bold: bool = False) -> None:
        self.set_font(SANS, "B" if bold else "", size)
        self.multi_cell(0, size * 0.5, clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def rows(self, widths: tuple[float, ...], heading: tuple[str, ...], rows: Iterable[Sequence[str]]) -> None:
        self.set_font(SANS, "", 8)
        with self.table(col_widths=widths, width=self.epw, text_align="LEFT", line_height=4, padding=1) as table:
            for values in [heading, *rows]:
                row = table.row()
                for value in values:
                    row.cell(clean(value))


def _draw(data: dict[str, Any]) -> bytes:
    pdf, session, candidate = _Pv(), data["session"], data["candidate"]
    pdf.add_page()
    pdf.set_title(f"Procès-verbal — session {session['id']}")
    pdf.set_font(SANS, "B", 16)
    pdf.multi_cell(0, 8, "Procès-verbal de session de test / Test session report", new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    kind = KIND_LABELS.get(session["kind"], session["kind"])
    pdf.line_of(f"Session {session['id']} · {kind} · campaign {session['campaign']} · {session['title']}", 10)
    pdf.line_of(f"Candidat / candidate: {candidate['name']} {candidate['version']} — {candidate['vendor']} "
                f"({candidate['organisation']})", 10, bold=True)
    pdf.line_of(f"Relecteur / reviewer: {data['reviewer']['name']} <{data['reviewer']['email']}> · "
                f"verrouillé le / locked at {session['locked_at']}")
    pdf.heading("Versions et empreintes figées / frozen versions and digests")
    pdf.rows((60, 120), ("what", "value"), _frozen_rows(data["frozen"] or {}))
    pdf.heading("Verdict par exigence / per requirement")
    pdf.rows((30, 25, 25, 100), ("requirement", "harness", "standing", "wording"),
             ((r["id"], r["harness"], r["standing"], r["text"]) for r in data["requirements"]))
    pdf.heading("Verdict par cas / per case")
    pdf.rows((22, 58, 20, 22, 58), ("case", "title", "harness", "reviewer verdict", "reason and comments"),
             ((c["id"], c["title"], c["harness"] or "", c["reviewer"] or "—",
               " / ".join(x for x in [c["reviewer_reason"] or "", *c["comments"]] if x)) for c in data["cases"]))
    pdf.heading("Preuves / evidence bundles")
    for run in data["runs"]:
        pdf.line_of(f"run {run['id']} ({run['harness_run_id']}, {run['status']}, {run['verdict']}): "
                    f"reviewed bundle SHA-256 {run['reviewed_bundle_sha256'] or '—'}", 8)
    pdf.ln(3)
    pdf.line_of(f"Signé / signed {data['signed_at']} with the lab's Ed25519 key {data['signer']}: "
                f"{PV_BUNDLE} holds this document, verify it with `esante verify {PV_BUNDLE}`.", 8)
    return bytes(pdf.output())


def _frozen_rows(frozen: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in frozen.items():
        if isinstance(value, dict):
            rows += _frozen_rows(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", str(value)))
    return rows


def write_pv(session: LabSession, entries: Sequence[ReviewEntry], reviewer: User, settings: LabSettings) -> str:
    """Write the PV (PDF) and its signed bundle into the session's folder; return the PDF's SHA-256."""
    key = load_or_create_key(settings.signing_key)
    data = pv_data(session, entries, reviewer, fingerprint(public_key_pem(key)))
    folder = settings.session_folder(session.id)
    folder.mkdir(parents=True, exist_ok=True)
    pdf = _draw(data)
    (folder / PV_PDF).write_bytes(pdf)
    (folder / PV_JSON).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    digest = sha256_hex(pdf)
    label = f"lab-session-{session.id}"
    store = EvidenceStore(folder / "session.sqlite")
    try:
        last = store.append("session.pv", {"pv_sha256": digest, "session": session.id, "reviewer": data["reviewer"],
                                           "bundles": [r["reviewed_bundle_sha256"] for r in data["runs"]]},
                            run_id=label)
        report = _latest_report(session)
        result = RunResult(
            run_id=label, started_at=data["session"]["created_at"], finished_at=data["signed_at"],
            harness_version=(session.frozen or {}).get("harness_version", ""), cases=[],
            campaign=report.campaign if report else CampaignInfo(id=session.campaign, version="", title="",
                                                                 file="", sha256=""),
            candidate=CandidateInfo(name=data["candidate"]["name"], version=data["candidate"]["version"],
                                    vendor=data["candidate"]["vendor"], mode=data["candidate"]["mode"]),
            evidence_chain_head=last.chain, evidence_records=last.seq)
        write_bundle(result, store, folder / PV_BUNDLE, key,
                     {PV_PDF: folder / PV_PDF, PV_JSON: folder / PV_JSON})
    finally:
        store.close()
    return digest
