"""What a reviewer does to a claimed session, recorded twice: as an evidence record in the chain of the run
whose verdict it is about (``review.comment``, ``review.verdict``, ``review.rerun``, ``review.lock``: appended
with ``EvidenceStore.append``, so the bundle carries them and ``esante verify`` checks them), and as a row the
pages read. A reviewer's verdict sits beside the harness's; the harness's record is never touched.

Locking writes, for every finished run of the session, its bundle again with the reviewer records
(``reviewed-bundle.zip``, signed like every bundle), then the procès-verbal that names those bundles' digests
(:mod:`.pv`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from esante.harness.server import ops
from esante.harness.server.models import ReviewEntry, Run, RunStatus, SessionStatus, User, now
from esante.harness.server.models import Session as LabSession
from esante.harness.server.ops import Conflict, Invalid
from esante.harness.server.worker import LabSettings
from esante.reports.bundle import write_bundle
from esante.reports.model import RunResult, Verdict
from esante.simulators.core.evidence import EvidenceStore, sha256_hex
from esante.simulators.core.evidence.signing import load_or_create_key

REVIEWED_BUNDLE = "reviewed-bundle.zip"
MAX_TEXT = 10_000
REVIEW_VERDICTS = (Verdict.PASSED, Verdict.FAILED, Verdict.INCONCLUSIVE)


def _record(run: Run, kind: str, payload: dict[str, Any], case_id: str | None = None) -> tuple[int, str]:
    if not run.folder:
        raise Conflict(f"run {run.id} has no evidence")
    store = EvidenceStore(Path(run.folder) / "evidence.sqlite")
    try:
        record = store.append(kind, payload, run_id=run.harness_run_id, case_id=case_id)
    finally:
        store.close()
    return record.seq, record.digest


def _reviewer(actor: User) -> dict[str, Any]:
    return {"id": actor.id, "email": actor.email, "name": actor.name}


def _case(session: LabSession, case_id: str) -> ops.CaseView:
    view = ops.current_cases(session).get(case_id)
    if view is None:
        raise Invalid(f"no judged case {case_id!r} in session {session.id}")
    return view


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_TEXT:
        raise Invalid(f"{what} is required (at most {MAX_TEXT} characters)")
    return value


def comment(s: Session, actor: User, session_id: int, case_id: str, text: str) -> ReviewEntry:
    session = ops.reviewing(s, actor, session_id)
    view = _case(session, case_id)
    text = _text(text, "a comment")
    seq, digest = _record(view.result.run, "review.comment", {"reviewer": _reviewer(actor), "text": text,
                                                               "session": session.id}, case_id)
    entry = ReviewEntry(session_id=session.id, run_id=view.result.run_id, case_id=case_id, kind="comment",
                        text=text, user_id=actor.id, evidence_seq=seq, evidence_digest=digest)
    s.add(entry)
    ops.audit(s, actor, "review.comment", f"session:{session.id}", case=case_id, evidence_seq=seq)
    return entry


def set_verdict(s: Session, actor: User, session_id: int, case_id: str, verdict: str, reason: str) -> ReviewEntry:
    session = ops.reviewing(s, actor, session_id)
    view = _case(session, case_id)
    if verdict not in {v.value for v in REVIEW_VERDICTS}:
        raise Invalid(f"a reviewer's verdict is one of {', '.join(v.value for v in REVIEW_VERDICTS)}")
    reason = _text(reason, "the reason for a reviewer's verdict")
    payload = {"reviewer": _reviewer(actor), "verdict": verdict, "reason": reason, "session": session.id,
               "harness_verdict": view.verdict}
    seq, digest = _record(view.result.run, "review.verdict", payload, case_id)
    entry = ReviewEntry(session_id=session.id, run_id=view.result.run_id, case_id=case_id, kind="verdict",
                        verdict=verdict, text=reason, user_id=actor.id, evidence_seq=seq, evidence_digest=digest)
    s.add(entry)
    ops.audit(s, actor, "review.verdict", f"session:{session.id}", case=case_id, verdict=verdict, evidence_seq=seq)
    return entry


def request_rerun(s: Session, actor: User, session_id: int, case_ids: list[str], reason: str,
                  campaigns_dir: Path | None) -> Run:
    session = ops.reviewing(s, actor, session_id)
    views = ops.current_cases(session)
    unknown = sorted(set(case_ids) - set(views))
    if not case_ids or unknown:
        raise Invalid(f"name cases of the session to play again{': unknown ' + ', '.join(unknown) if unknown else ''}")
    reason = _text(reason, "the reason for a re-run")
    for run in {views[c].result.run for c in case_ids}:
        _record(run, "review.rerun", {"reviewer": _reviewer(actor), "cases": case_ids, "reason": reason,
                                      "session": session.id})
    return ops.start_run(s, actor, session.id, campaigns_dir, case_ids=case_ids, reason=reason)


def lock(s: Session, actor: User, session_id: int, settings: LabSettings) -> LabSession:
    """Sign the session's outcome: the reviewed bundles, then the procès-verbal."""
    from esante.harness.server.pv import write_pv

    session = ops.reviewing(s, actor, session_id)
    if any(r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in session.runs):
        raise Conflict("a run of this session is under way: lock once it is filed")
    finished = [r for r in session.runs if r.status == RunStatus.FINISHED]
    if not finished:
        raise Conflict("no finished run to sign")
    session.status, session.locked_at = SessionStatus.LOCKED, now()
    entries = ops.review_entries(s, session)
    for run in finished:
        _record(run, "review.lock", {"reviewer": _reviewer(actor), "session": session.id,
                                     "locked_at": session.locked_at.isoformat()})
        run.reviewed_bundle_sha256 = _reviewed_bundle(run, [e for e in entries if e.run_id == run.id], settings)
    session.pv_sha256 = write_pv(session, entries, actor, settings)
    ops.audit(s, actor, "session.lock", f"session:{session.id}", pv_sha256=session.pv_sha256)
    return session


def _reviewed_bundle(run: Run, entries: list[ReviewEntry], settings: LabSettings) -> str:
    folder = Path(run.folder or "")
    result = RunResult.model_validate_json((folder / "report.json").read_text(encoding="utf-8"))
    review = folder / "review.json"
    review.write_text(json.dumps([_entry_json(e) for e in entries], indent=2, ensure_ascii=False), encoding="utf-8")
    store = EvidenceStore(folder / "evidence.sqlite")
    try:
        path = write_bundle(result, store, folder / REVIEWED_BUNDLE, load_or_create_key(settings.signing_key),
                            {"report.json": folder / "report.json", "junit.xml": folder / "junit.xml",
                             "report.html": folder / "report.html", "review.json": review})
    finally:
        store.close()
    return sha256_hex(path.read_bytes())


def _entry_json(entry: ReviewEntry) -> dict[str, Any]:
    return {"case": entry.case_id, "kind": entry.kind, "verdict": entry.verdict, "text": entry.text,
            "reviewer": entry.user.email, "at": entry.created_at.isoformat(), "evidence_seq": entry.evidence_seq,
            "evidence_digest": entry.evidence_digest}
