"""The JSON API (``/api/v1``, OpenAPI at ``/api/v1/openapi.json``): the lab's operations for CI and scripts.

Authentication: ``Authorization: Bearer <token>`` (``POST /api/v1/tokens`` with an e-mail and password gives
one; ``esante submit --token`` sends it). A browser's session cookie is accepted too, with the page's CSRF
token in ``X-CSRF-Token`` for anything that changes state (the session page's live progress reads through it).
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from esante.harness.server import ops, review
from esante.harness.server.context import Who, lab_of
from esante.harness.server.models import (
    ACTIVE_RUNS,
    AuditEvent,
    Candidate,
    CaseResult,
    Organisation,
    Run,
    User,
)
from esante.harness.server.models import Session as LabSession
from esante.harness.server.ops import CandidateFields, NotFound, Unauthenticated
from esante.harness.server.pv import PV_BUNDLE, PV_PDF
from esante.harness.server.security import authenticate, new_api_token, same_token, token_user
from esante.harness.server.worker import cancel
from esante.reports import BUNDLE_NAME, PDF_NAME
from esante.simulators.core.evidence.bundle import unsafe_name

router = APIRouter(prefix="/api/v1", tags=["lab"])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: the files of a run the API serves, by the name it serves them under
RUN_FILES = {"report.html": "report.html", "report.json": "report.json", "junit.xml": "junit.xml",
             "report.pdf": PDF_NAME, "bundle": BUNDLE_NAME, "reviewed-bundle": review.REVIEWED_BUNDLE}
MEDIA = {".html": "text/html", ".json": "application/json", ".xml": "application/xml", ".pdf": "application/pdf",
         ".zip": "application/zip"}
EVENTS_MAX_SECONDS = 3600


def who(request: Request, authorization: str = Header(default=""),
        x_csrf_token: str = Header(default="")) -> Who:
    """The caller: a bearer token, or a signed-in browser (which must send its CSRF token to change things)."""
    lab = lab_of(request)
    scheme, _, token = authorization.partition(" ")
    with lab.db.session() as s:
        if scheme.lower() == "bearer" and token:
            user = token_user(s, token.strip())
        else:
            user = s.get(User, request.session.get("uid", 0)) if "session" in request.scope else None
            if user is not None and request.method not in SAFE_METHODS and \
                    not same_token(request.session.get("csrf"), x_csrf_token):
                raise ops.Forbidden("missing or wrong X-CSRF-Token")
        if user is None or not user.active:
            raise Unauthenticated("sign in: send Authorization: Bearer <token>")
        return Who(lab, user.id)


# -- models ---------------------------------------------------------------------------------------------------

class Out(BaseModel):
    model_config = {"from_attributes": True}


class TokenRequest(BaseModel):
    email: str
    password: str
    label: str = "api"


class TokenOut(BaseModel):
    token: str = Field(description="shown once: keep it (a CI secret)")


class UserOut(Out):
    id: int
    email: str
    name: str
    role: str
    organisation_id: int | None


class UserIn(BaseModel):
    email: str
    name: str = ""
    password: str
    role: str
    organisation_id: int | None = None


class OrganisationIn(BaseModel):
    name: str


class OrganisationOut(Out):
    id: int
    name: str


class CandidateIn(BaseModel):
    name: str
    version: str
    vendor: str = ""
    mode: str = Field("driver", description="driver | operator | reference")
    driver_url: str | None = None
    certificates: str = Field("", description="PEM certificates the candidate presents")
    organisation_id: int | None = Field(None, description="reviewers and administrators: the organisation")


class CandidatePatch(BaseModel):
    name: str | None = None
    version: str | None = None
    vendor: str | None = None
    mode: str | None = None
    driver_url: str | None = None
    certificates: str | None = None


class CandidateOut(Out):
    id: int
    organisation_id: int
    name: str
    version: str
    vendor: str
    mode: str
    driver_url: str | None
    certificates: str
    frozen: bool


class CaseOut(BaseModel):
    case_id: str
    title: str
    run_id: int
    verdict: str | None = Field(description="the harness's verdict")
    reason: str
    requirements: list[str]
    attestation: bool
    reviewer_verdict: str | None = None
    reviewer_reason: str | None = None
    standing: str | None = Field(description="the reviewer's verdict where set, else the harness's")
    comments: list[str] = []


class RunOut(Out):
    id: int
    session_id: int
    campaign: str
    status: str
    verdict: str | None
    detail: str
    case_ids: list[str] | None
    defects: list[str]
    harness_run_id: str | None
    cases_total: int
    cases_done: int
    current_case: str | None
    reason: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reviewed_bundle_sha256: str | None
    prompt: dict[str, str] | None = Field(description="operator mode: what the run asks now (question, and what "
                                                      "it showed since the last one)")


class AnswerIn(BaseModel):
    answer: str = Field(description="what the person answers (empty: the question's default)")


class SessionIn(BaseModel):
    kind: str = Field(description="sandbox (bac à sable) | rehearsal (recette) | official (homologation)")
    candidate_id: int
    campaign: str
    title: str = ""


class SessionOut(Out):
    id: int
    kind: str
    status: str
    title: str
    organisation_id: int
    candidate_id: int
    campaign: str
    frozen: dict[str, Any] | None
    reviewer_id: int | None
    created_at: datetime
    locked_at: datetime | None
    pv_sha256: str | None


class SessionDetail(SessionOut):
    runs: list[RunOut]
    cases: list[CaseOut]


class RunIn(BaseModel):
    case_ids: list[str] | None = None
    defects: list[str] = []
    campaign: str | None = Field(None, description="sandbox only: another campaign than the session's")


class CommentIn(BaseModel):
    text: str


class VerdictIn(BaseModel):
    verdict: str = Field(description="passed | failed | inconclusive")
    reason: str = Field(description="mandatory: why the reviewer sets it")


class RerunIn(BaseModel):
    case_ids: list[str]
    reason: str


class HistoryOut(BaseModel):
    sessions: list[SessionOut]
    regressions: list[dict[str, str]]


class AuditOut(Out):
    id: int
    at: datetime
    user_id: int | None
    action: str
    target: str
    detail: dict[str, Any]


def case_out(view: ops.CaseView) -> CaseOut:
    row: CaseResult = view.result
    verdict = view.reviewer_verdict
    return CaseOut(case_id=row.case_id, title=row.title, run_id=row.run_id, verdict=row.verdict, reason=row.reason,
                   requirements=row.requirements, attestation=row.attestation,
                   reviewer_verdict=verdict.verdict if verdict else None,
                   reviewer_reason=verdict.text if verdict else None, standing=view.standing,
                   comments=[c.text for c in view.comments])


def session_detail(s: Any, session: LabSession) -> SessionDetail:
    views = ops.current_cases(session, ops.review_entries(s, session))
    return SessionDetail(**SessionOut.model_validate(session).model_dump(),
                         runs=[RunOut.model_validate(r) for r in session.runs],
                         cases=[case_out(v) for v in views.values()])


def _many(model: type[Out], rows: Sequence[Any]) -> list[Any]:
    return [model.model_validate(r) for r in rows]


# -- accounts ---------------------------------------------------------------------------------------------------

@router.post("/tokens", response_model=TokenOut, summary="Sign in with an e-mail and password: an API token")
def create_token(body: TokenRequest, request: Request) -> TokenOut:
    lab = lab_of(request)
    with lab.db.session() as s:
        user = authenticate(s, body.email, body.password, request.client.host if request.client else "")
        if user is not None:
            token = new_api_token(s, user, body.label)
            ops.audit(s, user, "token.create", f"user:{user.id}", label=body.label)
    if user is None:
        raise Unauthenticated("wrong e-mail or password")
    return TokenOut(token=token)


@router.get("/me", response_model=UserOut)
def me(w: Who = Depends(who)) -> User:
    with w.unit() as (_, user):
        return user


@router.get("/organisations", response_model=list[OrganisationOut])
def organisations(w: Who = Depends(who)) -> list[Organisation]:
    with w.unit() as (s, user):
        return list(ops.list_organisations(s, user))


@router.post("/organisations", response_model=OrganisationOut, status_code=201)
def create_organisation(body: OrganisationIn, w: Who = Depends(who)) -> Organisation:
    with w.unit() as (s, user):
        return ops.create_organisation(s, user, body.name)


@router.get("/users", response_model=list[UserOut])
def users(w: Who = Depends(who)) -> list[User]:
    with w.unit() as (s, user):
        return list(ops.list_users(s, user))


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, w: Who = Depends(who)) -> User:
    with w.unit() as (s, user):
        return ops.create_user(s, user, body.email, body.name, body.password, body.role, body.organisation_id)


@router.get("/audit", response_model=list[AuditOut])
def audit(w: Who = Depends(who)) -> list[AuditEvent]:
    with w.unit() as (s, user):
        return list(ops.audit_log(s, user))


# -- candidates and campaigns ---------------------------------------------------------------------------------

@router.get("/campaigns", response_model=list[str])
def campaigns(request: Request, _w: Who = Depends(who)) -> list[str]:
    return ops.campaign_names(lab_of(request).campaigns_dir)


@router.get("/candidates", response_model=list[CandidateOut])
def candidates(w: Who = Depends(who)) -> list[Any]:
    with w.unit() as (s, user):
        return _many(CandidateOut, ops.visible_candidates(s, user))


@router.post("/candidates", response_model=CandidateOut, status_code=201)
def create_candidate(body: CandidateIn, w: Who = Depends(who)) -> Candidate:
    with w.unit() as (s, user):
        return ops.create_candidate(s, user, CandidateFields(**body.model_dump()))


@router.get("/candidates/{candidate_id}", response_model=CandidateOut)
def candidate(candidate_id: int, w: Who = Depends(who)) -> Candidate:
    with w.unit() as (s, user):
        return ops.get_candidate(s, user, candidate_id)


@router.patch("/candidates/{candidate_id}", response_model=CandidateOut)
def update_candidate(candidate_id: int, body: CandidatePatch, w: Who = Depends(who)) -> Candidate:
    with w.unit() as (s, user):
        return ops.update_candidate(s, user, candidate_id, body.model_dump(exclude_unset=True))


@router.get("/candidates/{candidate_id}/history", response_model=HistoryOut,
            summary="The sessions of this candidate over its versions, and the regressions between versions")
def history(candidate_id: int, w: Who = Depends(who)) -> HistoryOut:
    with w.unit() as (s, user):
        sessions, regressions = ops.candidate_history(s, user, candidate_id)
        return HistoryOut(sessions=_many(SessionOut, sessions),
                          regressions=[{"case": r.case_id, "passed_in": r.passed_in, "version": r.version,
                                        "verdict": r.now} for r in regressions])


# -- sessions and runs ----------------------------------------------------------------------------------------

@router.get("/sessions", response_model=list[SessionOut])
def sessions(kind: str | None = None, w: Who = Depends(who)) -> list[Any]:
    with w.unit() as (s, user):
        return _many(SessionOut, ops.visible_sessions(s, user, kind))


@router.post("/sessions", response_model=SessionOut, status_code=201)
def create_session(body: SessionIn, w: Who = Depends(who)) -> LabSession:
    with w.unit() as (s, user):
        return ops.create_session(s, user, body.kind, body.candidate_id, body.campaign, w.lab.campaigns_dir,
                                  body.title)


@router.get("/sessions/{session_id}", response_model=SessionDetail)
def session(session_id: int, w: Who = Depends(who)) -> SessionDetail:
    with w.unit() as (s, user):
        return session_detail(s, ops.get_session(s, user, session_id))


@router.post("/sessions/{session_id}/runs", response_model=RunOut, status_code=201)
def start_run(session_id: int, body: RunIn, w: Who = Depends(who)) -> Run:
    with w.unit() as (s, user):
        run = ops.start_run(s, user, session_id, w.lab.campaigns_dir, case_ids=body.case_ids, defects=body.defects,
                            campaign=body.campaign)
    w.lab.submit(run.id)
    return run


@router.post("/sessions/{session_id}/submit", response_model=SessionOut, summary="Submit for review")
def submit(session_id: int, w: Who = Depends(who)) -> LabSession:
    with w.unit() as (s, user):
        return ops.submit_session(s, user, session_id)


@router.get("/review/queue", response_model=list[SessionOut])
def queue(w: Who = Depends(who)) -> list[Any]:
    with w.unit() as (s, user):
        return _many(SessionOut, ops.review_queue(s, user))


@router.post("/sessions/{session_id}/claim", response_model=SessionOut)
def claim(session_id: int, w: Who = Depends(who)) -> LabSession:
    with w.unit() as (s, user):
        return ops.claim_session(s, user, session_id)


@router.post("/sessions/{session_id}/cases/{case_id}/comments", status_code=201, response_model=SessionDetail)
def comment(session_id: int, case_id: str, body: CommentIn, w: Who = Depends(who)) -> SessionDetail:
    with w.unit() as (s, user):
        review.comment(s, user, session_id, case_id, body.text)
        s.flush()
        return session_detail(s, ops.get_session(s, user, session_id))


@router.post("/sessions/{session_id}/cases/{case_id}/verdict", status_code=201, response_model=SessionDetail,
             summary="Set the reviewer's verdict (beside the harness's, never replacing it), with a reason")
def verdict(session_id: int, case_id: str, body: VerdictIn, w: Who = Depends(who)) -> SessionDetail:
    with w.unit() as (s, user):
        review.set_verdict(s, user, session_id, case_id, body.verdict, body.reason)
        s.flush()
        return session_detail(s, ops.get_session(s, user, session_id))


@router.post("/sessions/{session_id}/reruns", response_model=RunOut, status_code=201)
def rerun(session_id: int, body: RerunIn, w: Who = Depends(who)) -> Run:
    with w.unit() as (s, user):
        run = review.request_rerun(s, user, session_id, body.case_ids, body.reason, w.lab.campaigns_dir)
    w.lab.submit(run.id)
    return run


@router.post("/sessions/{session_id}/lock", response_model=SessionDetail,
             summary="Sign: the reviewed evidence bundles and the procès-verbal")
def lock(session_id: int, w: Who = Depends(who)) -> SessionDetail:
    with w.unit() as (s, user):
        review.lock(s, user, session_id, w.lab.settings)
        return session_detail(s, ops.get_session(s, user, session_id))


def session_file(w: Who, session_id: int, name: str) -> Path:
    with w.unit() as (s, user):
        session = ops.get_session(s, user, session_id)
        path = w.lab.settings.session_folder(session.id) / name
    if not path.is_file():
        raise NotFound(f"session {session_id} has no {name} (is it locked?)")
    return path


@router.get("/sessions/{session_id}/pv.pdf", response_class=FileResponse, summary="The procès-verbal (PDF)")
def pv_pdf(session_id: int, w: Who = Depends(who)) -> FileResponse:
    return _download(session_file(w, session_id, PV_PDF), f"proces-verbal-session-{session_id}.pdf")


@router.get("/sessions/{session_id}/pv.zip", response_class=FileResponse,
            summary="The signed procès-verbal (esante verify checks it)")
def pv_bundle(session_id: int, w: Who = Depends(who)) -> FileResponse:
    return _download(session_file(w, session_id, PV_BUNDLE), f"proces-verbal-session-{session_id}.zip")


@router.get("/runs/{run_id}", response_model=RunOut)
def run(run_id: int, w: Who = Depends(who)) -> Run:
    with w.unit() as (s, user):
        return ops.get_run(s, user, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: int, w: Who = Depends(who)) -> Run:
    with w.unit() as (s, user):
        ops.cancel_run(s, user, run_id)
    cancel(w.lab.db, run_id)
    with w.unit() as (s, user):
        return ops.get_run(s, user, run_id)


@router.post("/runs/{run_id}/answer", response_model=RunOut,
             summary="Operator mode: answer the question the run asks")
def answer(run_id: int, body: AnswerIn, w: Who = Depends(who)) -> Run:
    with w.unit() as (s, user):
        return ops.answer_run(s, user, run_id, body.answer)


def run_file(w: Who, run_id: int, name: str) -> Path:
    if name not in RUN_FILES:
        raise NotFound(f"no file {name!r}; a run has {', '.join(RUN_FILES)}")
    with w.unit() as (s, user):
        folder = ops.get_run(s, user, run_id).folder
    path = Path(folder or "") / RUN_FILES[name]
    if not folder or not path.is_file():
        raise NotFound(f"run {run_id} has no {name} (yet)")
    return path


def _download(path: Path, name: str, inline: bool = False) -> FileResponse:
    return FileResponse(path, media_type=MEDIA.get(path.suffix, "application/octet-stream"), filename=name,
                        content_disposition_type="inline" if inline else "attachment")


@router.get("/runs/{run_id}/files/{name}", response_class=FileResponse,
            summary="A run's report.html, report.json, junit.xml, report.pdf, bundle or reviewed-bundle")
def run_download(run_id: int, name: str, w: Who = Depends(who)) -> FileResponse:
    path = run_file(w, run_id, name)
    response = _download(path, f"run-{run_id}-{path.name}", inline=name == "report.html")
    if name == "report.html":  # the report shows what candidates sent: its own origin, away from the lab's cookies
        response.headers["Content-Security-Policy"] = "sandbox allow-scripts allow-popups"
    return response


MAX_MEMBER_BYTES = 64 * 1024 * 1024
SANDBOXED = {"Content-Security-Policy": "sandbox"}


@router.get("/runs/{run_id}/files/exchanges/{member:path}", response_class=Response,
            summary="An exchange's whole body, from the run's bundle (what the HTML report's links open)")
def run_exchange(run_id: int, member: str, w: Who = Depends(who)) -> Response:
    name = f"exchanges/{member}"
    with zipfile.ZipFile(run_file(w, run_id, "bundle")) as archive:
        info = archive.NameToInfo.get(name)
        if unsafe_name(name) or info is None or info.file_size > MAX_MEMBER_BYTES:
            raise NotFound(f"the bundle of run {run_id} has no {name}")
        data = archive.read(info)
    return Response(data, media_type="text/plain; charset=utf-8", headers=SANDBOXED)


def _progress(w: Who, run_id: int) -> dict[str, Any]:
    with w.unit() as (s, user):
        return RunOut.model_validate(ops.get_run(s, user, run_id)).model_dump(mode="json")


@router.get("/runs/{run_id}/events", summary="Server-sent events: the run's state each time it changes")
async def events(run_id: int, request: Request, w: Who = Depends(who)) -> StreamingResponse:
    first = await run_in_threadpool(_progress, w, run_id)  # refused here (404) before the stream starts

    async def stream() -> AsyncIterator[str]:
        state, last, waited = first, None, 0.0
        while waited < EVENTS_MAX_SECONDS and not await request.is_disconnected():
            if state != last:
                yield f"event: run\ndata: {json.dumps(state)}\n\n"
                last = state
            if state["status"] not in ACTIVE_RUNS:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(1)
            waited += 1
            state = await run_in_threadpool(_progress, w, run_id)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
