"""Every operation of the lab and its permission rules, in one place: the HTML pages and the JSON API call
these and nothing else, so they cannot disagree on who may do what.

The rules:

* an **editor** sees and acts on their organisation's candidates and sessions only — anything else is "not
  found", so that another organisation's names do not leak; they run sandbox and rehearsal sessions, and
  submit rehearsals for review;
* a **reviewer** sees every organisation's, creates official sessions, claims a submitted session, and on a
  session they claimed comments, sets verdicts, asks for re-runs and locks;
* an **administrator** manages organisations and accounts, reads the audit log, and sees what a reviewer sees;
* a **locked** session changes no more; an official session's candidate version changes no more.

Every change is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from esante.harness.campaign import CampaignError
from esante.harness.kits import defects as all_defects
from esante.harness.kits import kits
from esante.harness.server.freeze import candidate_identity, freeze
from esante.harness.server.models import (
    ACTIVE_RUNS,
    AuditEvent,
    Candidate,
    CandidateMode,
    CaseResult,
    Organisation,
    ReviewEntry,
    Role,
    Run,
    RunStatus,
    SessionKind,
    SessionStatus,
    User,
    now,
)
from esante.harness.server.models import Session as LabSession
from esante.harness.server.security import hash_password
from esante.harness.session import load
from esante.reports.model import Verdict


class OpError(Exception):
    status = 400


class Unauthenticated(OpError):
    status = 401


class NotFound(OpError):
    status = 404


class Forbidden(OpError):
    status = 403


class Conflict(OpError):
    status = 409


class Invalid(OpError):
    status = 422


def audit(s: Session, actor: User | None, action: str, target: str = "", **detail: Any) -> None:
    s.add(AuditEvent(user_id=actor.id if actor else None, action=action, target=target, detail=detail))


def is_staff(user: User) -> bool:
    return user.role in (Role.REVIEWER, Role.ADMIN)


_T = TypeVar("_T")
MAX_ID = 2**62  # an id a database column holds (a bigger one from a client is simply not found)


def _row(s: Session, model: type[_T], row_id: int | None) -> _T | None:
    return s.get(model, row_id) if row_id is not None and 0 < row_id < MAX_ID else None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Forbidden(message)


# -- organisations and accounts --------------------------------------------------------------------------

def create_organisation(s: Session, actor: User, name: str) -> Organisation:
    _require(actor.role == Role.ADMIN, "only an administrator creates organisations")
    name = name.strip()
    if not name or s.scalar(select(Organisation).where(Organisation.name == name)):
        raise Conflict(f"an organisation needs a new, non-empty name: {name!r}")
    organisation = Organisation(name=name)
    s.add(organisation)
    s.flush()
    audit(s, actor, "organisation.create", f"organisation:{organisation.id}", name=name)
    return organisation


def create_user(s: Session, actor: User | None, email: str, name: str, password: str, role: str,
                organisation_id: int | None = None) -> User:
    """A new account; ``actor`` None only for the first administrator (``esante serve`` on an empty lab)."""
    if actor is not None:
        _require(actor.role == Role.ADMIN, "only an administrator creates accounts")
    email = email.strip().lower()
    if role not in set(Role) or "@" not in email or len(password) < 8:
        raise Invalid("an account needs an e-mail, a role (editor, reviewer, admin) and a password of 8 characters "
                      "or more")
    if role == Role.EDITOR and (organisation_id is None or _row(s, Organisation, organisation_id) is None):
        raise Invalid("an editor belongs to an organisation")
    if s.scalar(select(User).where(User.email == email)):
        raise Conflict(f"an account {email} exists already")
    user = User(email=email, name=name.strip() or email, password_hash=hash_password(password), role=role,
                organisation_id=organisation_id if role == Role.EDITOR else None)
    s.add(user)
    s.flush()
    audit(s, actor, "user.create", f"user:{user.id}", email=email, role=role)
    return user


def list_users(s: Session, actor: User) -> Sequence[User]:
    _require(actor.role == Role.ADMIN, "only an administrator lists accounts")
    return s.scalars(select(User).order_by(User.id)).all()


def list_organisations(s: Session, actor: User) -> Sequence[Organisation]:
    _require(is_staff(actor), "the list of organisations is the staff's")
    return s.scalars(select(Organisation).order_by(Organisation.name)).all()


def audit_log(s: Session, actor: User, limit: int = 200) -> Sequence[AuditEvent]:
    _require(actor.role == Role.ADMIN, "only an administrator reads the audit log")
    return s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all()


# -- candidates -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class CandidateFields:
    name: str
    version: str
    vendor: str = ""
    mode: str = CandidateMode.DRIVER
    driver_url: str | None = None
    certificates: str = ""
    organisation_id: int | None = None  # staff registering for an organisation


def _check_candidate(fields: CandidateFields) -> None:
    if not fields.name.strip() or not fields.version.strip():
        raise Invalid("a candidate has a name and a version")
    if fields.mode not in set(CandidateMode):
        raise Invalid(f"mode is one of {', '.join(CandidateMode)}")
    if fields.mode == CandidateMode.DRIVER and not (fields.driver_url or "").startswith(("http://", "https://")):
        raise Invalid("a driver candidate has a driver URL (http:// or https://)")
    if fields.certificates.strip():
        certificate_subjects(fields.certificates)


def certificate_subjects(pem: str) -> list[str]:
    """The subjects of the PEM certificates a candidate presents; :class:`Invalid` if they do not parse."""
    from cryptography import x509

    try:
        return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(pem.encode())]
    except ValueError:
        raise Invalid("certificates: not PEM X.509 certificates") from None


def _scoped(query: Any, model: type[Candidate] | type[LabSession], actor: User) -> Any:
    """The rows ``actor`` may see: staff every organisation's, an editor their own organisation's."""
    return query if is_staff(actor) else query.where(model.organisation_id == actor.organisation_id)


def _owned(s: Session, actor: User, model: type[_T], row_id: int, what: str) -> _T:
    row = _row(s, model, row_id)
    if row is None or not (is_staff(actor) or row.organisation_id == actor.organisation_id):  # type: ignore[attr-defined]
        raise NotFound(f"no {what} {row_id}")  # another organisation's is "not found": its name does not leak
    return row


def visible_candidates(s: Session, actor: User) -> Sequence[Candidate]:
    return s.scalars(_scoped(select(Candidate).order_by(Candidate.name, Candidate.id), Candidate, actor)).all()


def get_candidate(s: Session, actor: User, candidate_id: int) -> Candidate:
    return _owned(s, actor, Candidate, candidate_id, "candidate")


def create_candidate(s: Session, actor: User, fields: CandidateFields) -> Candidate:
    _check_candidate(fields)
    organisation = actor.organisation_id if actor.role == Role.EDITOR else fields.organisation_id
    if organisation is None or _row(s, Organisation, organisation) is None:
        raise Invalid("the candidate's organisation is unknown")
    if s.scalar(select(Candidate).where(Candidate.organisation_id == organisation, Candidate.name == fields.name,
                                        Candidate.version == fields.version)):
        raise Conflict(f"{fields.name} {fields.version} is registered already: a new version is a new candidate")
    candidate = Candidate(organisation_id=organisation, name=fields.name.strip(), version=fields.version.strip(),
                          vendor=fields.vendor.strip(), mode=fields.mode, certificates=fields.certificates.strip(),
                          driver_url=fields.driver_url if fields.mode == CandidateMode.DRIVER else None)
    s.add(candidate)
    s.flush()
    audit(s, actor, "candidate.create", f"candidate:{candidate.id}", name=candidate.name, version=candidate.version)
    return candidate


def update_candidate(s: Session, actor: User, candidate_id: int, changes: dict[str, Any]) -> Candidate:
    candidate = get_candidate(s, actor, candidate_id)
    if candidate.frozen:
        raise Conflict(f"{candidate.name} {candidate.version} was used by an official session: it cannot change "
                       "(register a new version)")
    allowed = {"name", "version", "vendor", "mode", "driver_url", "certificates"}
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    merged = CandidateFields(**{k: getattr(candidate, k) for k in allowed} | changes)
    _check_candidate(merged)
    for key, value in changes.items():
        setattr(candidate, key, value)
    audit(s, actor, "candidate.update", f"candidate:{candidate.id}", changes=sorted(changes))
    return candidate


@dataclass(slots=True)
class Regression:
    case_id: str
    passed_in: str   # candidate version
    now: str         # verdict in the later version
    version: str


def candidate_history(s: Session, actor: User, candidate_id: int) -> tuple[list[LabSession], list[Regression]]:
    """Every session of the candidate's name, over its versions (oldest first), and the regressions: a case
    that passed in a version and does not in a later one."""
    candidate = get_candidate(s, actor, candidate_id)
    siblings = s.scalars(select(Candidate).where(Candidate.organisation_id == candidate.organisation_id,
                                                 Candidate.name == candidate.name).order_by(Candidate.id)).all()
    sessions = s.scalars(select(LabSession).where(LabSession.candidate_id.in_([c.id for c in siblings]))
                         .order_by(LabSession.id)).all()
    best: dict[str, tuple[str, str]] = {}  # case id -> (version it last passed in, campaign)
    regressions = []
    for session in sessions:
        version = session.candidate.version
        for case in current_cases(session).values():
            if case.verdict == Verdict.PASSED:
                best[case.case_id] = (version, session.campaign)
            elif case.verdict in (Verdict.FAILED, Verdict.ERROR) and case.case_id in best \
                    and best[case.case_id][0] != version:
                regressions.append(Regression(case.case_id, best[case.case_id][0], case.verdict or "", version))
    return list(sessions), regressions


# -- campaigns --------------------------------------------------------------------------------------------

def campaign_names(campaigns_dir: Path | None) -> list[str]:
    """The campaigns a session may play: the shipped kits' and the YAML files of the lab's campaigns folder."""
    extra = sorted(p.name for p in campaigns_dir.glob("*.yaml")) if campaigns_dir and campaigns_dir.is_dir() else []
    return [*kits(), *extra]


def campaign_reference(name: str, campaigns_dir: Path | None) -> str:
    """What the harness is given for a campaign a session names: a kit's name, or a file of the lab's campaigns
    folder (never another path: an editor does not choose what files the server reads)."""
    if name in kits():
        return name
    if campaigns_dir is not None and name in campaign_names(campaigns_dir):
        return str((campaigns_dir / name).resolve())
    raise Invalid(f"no campaign {name!r} in this lab")


# -- sessions ---------------------------------------------------------------------------------------------

def visible_sessions(s: Session, actor: User, kind: str | None = None) -> Sequence[LabSession]:
    query = _scoped(select(LabSession).order_by(LabSession.id.desc()), LabSession, actor)
    return s.scalars(query.where(LabSession.kind == kind) if kind else query).all()


def get_session(s: Session, actor: User, session_id: int) -> LabSession:
    return _owned(s, actor, LabSession, session_id, "session")


def create_session(s: Session, actor: User, kind: str, candidate_id: int, campaign: str,
                   campaigns_dir: Path | None, title: str = "") -> LabSession:
    if kind not in set(SessionKind):
        raise Invalid(f"kind is one of {', '.join(SessionKind)}")
    if kind == SessionKind.OFFICIAL:
        _require(actor.role == Role.REVIEWER, "only a reviewer creates an official session")
    else:
        _require(actor.role == Role.EDITOR or actor.role == Role.ADMIN, "sandbox and rehearsal sessions are an "
                                                                        "editor's")
    candidate = get_candidate(s, actor, candidate_id)
    reference = campaign_reference(campaign, campaigns_dir)
    session = LabSession(kind=kind, organisation_id=candidate.organisation_id, candidate_id=candidate.id,
                         campaign=campaign, created_by_id=actor.id, title=title.strip()[:300])
    if kind != SessionKind.SANDBOX:
        try:
            session.frozen = freeze(load(reference), candidate_identity(candidate))
        except CampaignError as exc:
            raise Invalid(str(exc)) from None
    if kind == SessionKind.OFFICIAL:
        candidate.frozen = True
    s.add(session)
    s.flush()
    audit(s, actor, "session.create", f"session:{session.id}", kind=kind, candidate=candidate.id, campaign=campaign)
    return session


def _may_run(actor: User, session: LabSession) -> bool:
    """Who starts a run: a sandbox's editor (or an administrator); a rehearsal's editor while it is open; an
    official session's reviewers while it is open; the reviewer who claimed a session under review (re-runs)."""
    if session.status == SessionStatus.IN_REVIEW:
        return session.reviewer_id == actor.id
    if session.status != SessionStatus.OPEN:
        return False
    if session.kind == SessionKind.OFFICIAL:
        return actor.role == Role.REVIEWER
    if session.kind == SessionKind.REHEARSAL:
        return actor.role == Role.EDITOR
    return actor.role in (Role.EDITOR, Role.ADMIN)


def start_run(s: Session, actor: User, session_id: int, campaigns_dir: Path | None, *,
              case_ids: list[str] | None = None, defects: Sequence[str] = (), campaign: str | None = None,
              reason: str = "") -> Run:
    """Queue a run of the session (the dispatcher then plays it)."""
    session = get_session(s, actor, session_id)
    if session.status == SessionStatus.LOCKED:
        raise Conflict(f"session {session.id} is locked")
    _require(_may_run(actor, session), f"you cannot start a run of this {session.kind} session now")
    if session.kind != SessionKind.SANDBOX:
        if campaign not in (None, session.campaign) or defects:
            raise Invalid("a rehearsal or official session plays its own campaign, without defects")
        if any(r.status in ACTIVE_RUNS for r in session.runs):
            raise Conflict("a run of this session is under way already")
    reference = campaign_reference(campaign or session.campaign, campaigns_dir)
    if defects and session.candidate.mode != CandidateMode.REFERENCE:
        raise Invalid("defects are the reference candidate's: this candidate is not the reference")
    unknown = sorted(set(defects) - set(all_defects()))
    if unknown:
        raise Invalid(f"unknown defect(s): {', '.join(unknown)}")
    run = Run(session_id=session.id, campaign=reference, case_ids=case_ids or None,
              defects=list(defects), requested_by_id=actor.id, reason=reason.strip())
    s.add(run)
    s.flush()
    audit(s, actor, "run.start", f"run:{run.id}", session=session.id, cases=case_ids, defects=list(defects))
    return run


def get_run(s: Session, actor: User, run_id: int) -> Run:
    run = _row(s, Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    get_session(s, actor, run.session_id)
    return run


def cancel_run(s: Session, actor: User, run_id: int) -> Run:
    run = get_run(s, actor, run_id)
    _require(_may_run(actor, run.session) or run.requested_by_id == actor.id, "you cannot cancel this run")
    if run.status not in ACTIVE_RUNS:
        raise Conflict(f"run {run.id} is {run.status}")
    audit(s, actor, "run.cancel", f"run:{run.id}")
    return run


def answer_run(s: Session, actor: User, run_id: int, answer: str) -> Run:
    """An operator-mode run's question answered by the person at the software: whoever started the run, or an
    editor of the candidate's organisation."""
    run = get_run(s, actor, run_id)
    _require(actor.id == run.requested_by_id or (actor.role == Role.EDITOR and
                                                 actor.organisation_id == run.session.organisation_id),
             "the person at the candidate's software answers its questions")
    if run.status != RunStatus.RUNNING or run.prompt is None:
        raise Conflict(f"run {run.id} asks nothing now")
    if len(answer) > 10_000:
        raise Invalid("an answer has at most 10000 characters")
    run.answer = answer
    audit(s, actor, "run.answer", f"run:{run.id}", question=run.prompt.get("question"))
    return run


def submit_session(s: Session, actor: User, session_id: int) -> LabSession:
    session = get_session(s, actor, session_id)
    if session.kind == SessionKind.SANDBOX:
        raise Invalid("a sandbox session is not reviewed: create a rehearsal")
    _require(session.status == SessionStatus.OPEN, f"session {session.id} is {session.status}")
    _require(not is_staff(actor) or session.kind == SessionKind.OFFICIAL, "an editor submits their rehearsal")
    if not any(r.status == RunStatus.FINISHED for r in session.runs) or \
            any(r.status in ACTIVE_RUNS for r in session.runs):
        raise Conflict("submit once a run has finished and none is under way")
    session.status, session.submitted_at = SessionStatus.SUBMITTED, now()
    audit(s, actor, "session.submit", f"session:{session.id}")
    return session


def review_queue(s: Session, actor: User) -> Sequence[LabSession]:
    _require(is_staff(actor), "the review queue is the reviewers'")
    return s.scalars(select(LabSession).where(LabSession.status.in_([SessionStatus.SUBMITTED,
                                                                    SessionStatus.IN_REVIEW]))
                     .order_by(LabSession.submitted_at)).all()


def claim_session(s: Session, actor: User, session_id: int) -> LabSession:
    session = get_session(s, actor, session_id)
    _require(actor.role == Role.REVIEWER, "only a reviewer claims a session")
    if session.status != SessionStatus.SUBMITTED:
        raise Conflict(f"session {session.id} is {session.status}, not waiting for review")
    session.status, session.reviewer_id = SessionStatus.IN_REVIEW, actor.id
    audit(s, actor, "session.claim", f"session:{session.id}")
    return session


def reviewing(s: Session, actor: User, session_id: int) -> LabSession:
    """The session, if ``actor`` is the reviewer who claimed it and it is not locked."""
    session = get_session(s, actor, session_id)
    if session.status == SessionStatus.LOCKED:
        raise Conflict(f"session {session.id} is locked: nothing changes any more")
    _require(session.status == SessionStatus.IN_REVIEW and session.reviewer_id == actor.id,
             "only the reviewer who claimed this session reviews it")
    return session


# -- what a session holds now ----------------------------------------------------------------------------

@dataclass(slots=True)
class CaseView:
    """A case of a session as it stands: the latest finished run's harness verdict, the reviewer's verdict
    beside it (never replacing it), and the comments."""

    result: CaseResult
    reviewer_verdict: ReviewEntry | None = None
    comments: list[ReviewEntry] = field(default_factory=list)

    @property
    def case_id(self) -> str:
        return self.result.case_id

    @property
    def verdict(self) -> str | None:
        return self.result.verdict

    @property
    def standing(self) -> str | None:
        """The verdict that stands: the reviewer's where they set one, else the harness's."""
        return self.reviewer_verdict.verdict if self.reviewer_verdict else self.result.verdict


def current_cases(session: LabSession, entries: Sequence[ReviewEntry] = ()) -> dict[str, CaseView]:
    views: dict[str, CaseView] = {}
    for run in session.runs:  # in order: a later run's verdict replaces an earlier one's
        if run.status == RunStatus.FINISHED:
            for row in run.cases:
                if row.verdict is not None:
                    views[row.case_id] = CaseView(row)
    for entry in entries:  # comments stay with the case; a verdict judged one run's result, and goes with it
        view = views.get(entry.case_id)
        if view is not None and entry.kind != "verdict":
            view.comments.append(entry)
        elif view is not None and view.result.run_id == entry.run_id:
            view.reviewer_verdict = entry
    return views


def review_entries(s: Session, session: LabSession) -> Sequence[ReviewEntry]:
    return s.scalars(select(ReviewEntry).where(ReviewEntry.session_id == session.id).order_by(ReviewEntry.id)).all()
