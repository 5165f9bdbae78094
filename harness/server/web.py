"""The lab's HTML pages: server-rendered Jinja2 and plain forms (no front-end build), each form carrying the
browser session's CSRF token; the session page follows its run live through the API's server-sent events.

Every page calls :mod:`.ops` (and :mod:`.review`), as the API does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from esante.harness.kits import defects as all_defects
from esante.harness.server import ops, review
from esante.harness.server.context import Who, lab_of
from esante.harness.server.models import ACTIVE_RUNS, CandidateMode, Role, SessionKind, User
from esante.harness.server.ops import CandidateFields, Unauthenticated
from esante.harness.server.pv import KIND_LABELS
from esante.harness.server.security import authenticate, new_api_token, new_csrf_token, same_token
from esante.harness.server.worker import cancel

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["KIND_LABELS"] = KIND_LABELS


def page_user(request: Request) -> Who:
    user_id = request.session.get("uid")
    if not user_id:
        raise Unauthenticated("sign in")
    with lab_of(request).db.session() as s:
        user = s.get(User, user_id)
        if user is None or not user.active:
            request.session.clear()
            raise Unauthenticated("sign in")
    return Who(lab_of(request), user_id)


def checked(request: Request, csrf_token: str = Form("")) -> Who:
    """A form post: signed in, and the form carries this browser session's CSRF token."""
    current = page_user(request)
    if not same_token(request.session.get("csrf"), csrf_token):
        raise ops.Forbidden("the form's CSRF token is missing or wrong: reload the page")
    return current


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("csrf", request.session.get("csrf", ""))
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if status == 401:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    response = render(request, "error.html", status, message=message, user=None)
    response.headers.update(headers or {})
    return response


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- signing in -----------------------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    request.session.setdefault("csrf", new_csrf_token())
    return render(request, "login.html", next=next if next.startswith("/") else "/", user=None)


@router.post("/login")
def login(request: Request, email: str = Form(...), password: str = Form(...), next: str = Form("/"),
          csrf_token: str = Form("")) -> Response:
    if not same_token(request.session.get("csrf"), csrf_token):
        raise ops.Forbidden("the form's CSRF token is missing or wrong: reload the page")
    with lab_of(request).db.session() as s:
        user = authenticate(s, email, password, request.client.host if request.client else "")
        if user is not None:
            ops.audit(s, user, "login", f"user:{user.id}")
            user_id = user.id
    if user is None:
        return render(request, "login.html", 401, next=next, user=None, failed=True)
    request.session.clear()  # a fresh session (and CSRF token) on sign-in
    request.session.update(uid=user_id, csrf=new_csrf_token())
    return back(next if next.startswith("/") and not next.startswith("//") else "/")


@router.post("/logout")
def logout(request: Request, w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        ops.audit(s, user, "logout", f"user:{user.id}")
    request.session.clear()
    return back("/login")


# -- dashboard, candidates ------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
def home(request: Request, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (s, user):
        queue = ops.review_queue(s, user) if ops.is_staff(user) else []
        return render(request, "home.html", user=user, candidates=ops.visible_candidates(s, user),
                      sessions=ops.visible_sessions(s, user)[:20], queue=queue)


@router.get("/candidates", response_class=HTMLResponse)
def candidates_page(request: Request, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (s, user):
        return render(request, "candidates.html", user=user, candidates=ops.visible_candidates(s, user),
                      organisations=ops.list_organisations(s, user) if ops.is_staff(user) else [],
                      modes=list(CandidateMode))


@router.post("/candidates")
def add_candidate(name: str = Form(...), version: str = Form(...), vendor: str = Form(""),
                  mode: str = Form(CandidateMode.DRIVER), driver_url: str = Form(""), certificates: str = Form(""),
                  organisation_id: int | None = Form(None), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        candidate = ops.create_candidate(s, user, CandidateFields(name, version, vendor, mode, driver_url or None,
                                                                  certificates, organisation_id))
    return back(f"/candidates/{candidate.id}")


@router.get("/candidates/{candidate_id}", response_class=HTMLResponse)
def candidate_page(request: Request, candidate_id: int, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (s, user):
        candidate = ops.get_candidate(s, user, candidate_id)
        sessions, regressions = ops.candidate_history(s, user, candidate_id)
        subjects = ops.certificate_subjects(candidate.certificates) if candidate.certificates else []
        return render(request, "candidate.html", user=user, candidate=candidate, sessions=sessions,
                      regressions=regressions, subjects=subjects, modes=list(CandidateMode),
                      campaigns=ops.campaign_names(w.lab.campaigns_dir), kinds=_kinds(user))


@router.post("/candidates/{candidate_id}")
def edit_candidate(candidate_id: int, vendor: str = Form(""), driver_url: str = Form(""),
                   certificates: str = Form(""), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        ops.update_candidate(s, user, candidate_id, {"vendor": vendor, "driver_url": driver_url or None,
                                                     "certificates": certificates})
    return back(f"/candidates/{candidate_id}")


def _kinds(user: User) -> list[str]:
    return [SessionKind.OFFICIAL] if user.role == Role.REVIEWER else [SessionKind.SANDBOX, SessionKind.REHEARSAL]


# -- sessions --------------------------------------------------------------------------------------------------

@router.post("/sessions")
def add_session(kind: str = Form(...), candidate_id: int = Form(...), campaign: str = Form(...),
                title: str = Form(""), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        session = ops.create_session(s, user, kind, candidate_id, campaign, w.lab.campaigns_dir, title)
    return back(f"/sessions/{session.id}")


def _session_page(request: Request, w: Who, session_id: int, template: str) -> HTMLResponse:
    with w.unit() as (s, user):
        session = ops.get_session(s, user, session_id)
        views = ops.current_cases(session, ops.review_entries(s, session))
        active = [r for r in session.runs if r.status in ACTIVE_RUNS]
        return render(request, template, user=user, session=session, cases=list(views.values()),
                      runs=list(session.runs), active=active[0] if active else None,
                      reviewing=session.reviewer_id == user.id, campaigns=ops.campaign_names(w.lab.campaigns_dir),
                      defects=sorted(all_defects()), verdicts=[v.value for v in review.REVIEW_VERDICTS])


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, session_id: int, w: Who = Depends(page_user)) -> HTMLResponse:
    return _session_page(request, w, session_id, "session.html")


@router.get("/sessions/{session_id}/progress", response_class=HTMLResponse)
def session_progress(request: Request, session_id: int, w: Who = Depends(page_user)) -> HTMLResponse:
    return _session_page(request, w, session_id, "_runs.html")


def _cases(value: str) -> list[str] | None:
    return [c for c in value.replace(",", " ").split() if c] or None


@router.post("/sessions/{session_id}/runs")
def session_run(session_id: int, cases: str = Form(""), defects: list[str] = Form([]), campaign: str = Form(""),
                w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        run = ops.start_run(s, user, session_id, w.lab.campaigns_dir, case_ids=_cases(cases),
                            defects=[d for d in defects if d], campaign=campaign or None)
    w.lab.submit(run.id)
    return back(f"/sessions/{session_id}")


def _session_action(session_id: int, action: Callable[..., Any], w: Who, *args: Any) -> Response:
    with w.unit() as (s, user):
        action(s, user, session_id, *args)
    return back(f"/sessions/{session_id}")


@router.post("/sessions/{session_id}/submit")
def session_submit(session_id: int, w: Who = Depends(checked)) -> Response:
    return _session_action(session_id, ops.submit_session, w)


@router.post("/sessions/{session_id}/claim")
def session_claim(session_id: int, w: Who = Depends(checked)) -> Response:
    return _session_action(session_id, ops.claim_session, w)


@router.post("/sessions/{session_id}/cases/{case_id}/comment")
def session_comment(session_id: int, case_id: str, text: str = Form(...), w: Who = Depends(checked)) -> Response:
    return _session_action(session_id, review.comment, w, case_id, text)


@router.post("/sessions/{session_id}/cases/{case_id}/verdict")
def session_verdict(session_id: int, case_id: str, verdict: str = Form(...), reason: str = Form(""),
                    w: Who = Depends(checked)) -> Response:
    return _session_action(session_id, review.set_verdict, w, case_id, verdict, reason)


@router.post("/sessions/{session_id}/reruns")
def session_rerun(session_id: int, cases: str = Form(""), reason: str = Form(""),
                  w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        run = review.request_rerun(s, user, session_id, _cases(cases) or [], reason, w.lab.campaigns_dir)
    w.lab.submit(run.id)
    return back(f"/sessions/{session_id}")


@router.post("/sessions/{session_id}/lock")
def session_lock(session_id: int, w: Who = Depends(checked)) -> Response:
    return _session_action(session_id, review.lock, w, w.lab.settings)


@router.post("/runs/{run_id}/answer")
def run_answer(run_id: int, answer: str = Form(""), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        session_id = ops.answer_run(s, user, run_id, answer).session_id
    return back(f"/sessions/{session_id}#run-{run_id}")


@router.post("/runs/{run_id}/cancel")
def run_cancel(run_id: int, w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        session_id = ops.cancel_run(s, user, run_id).session_id
    cancel(w.lab.db, run_id)
    return back(f"/sessions/{session_id}")


# -- review, administration, tokens ----------------------------------------------------------------------------

@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (s, user):
        return render(request, "review.html", user=user, queue=ops.review_queue(s, user))


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (s, user):
        return render(request, "admin.html", user=user, users=ops.list_users(s, user),
                      organisations=ops.list_organisations(s, user), events=ops.audit_log(s, user, 100),
                      roles=list(Role))


@router.post("/admin/organisations")
def admin_organisation(name: str = Form(...), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        ops.create_organisation(s, user, name)
    return back("/admin")


@router.post("/admin/users")
def admin_user(email: str = Form(...), name: str = Form(""), password: str = Form(...), role: str = Form(...),
               organisation_id: int | None = Form(None), w: Who = Depends(checked)) -> Response:
    with w.unit() as (s, user):
        ops.create_user(s, user, email, name, password, role, organisation_id)
    return back("/admin")


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, w: Who = Depends(page_user)) -> HTMLResponse:
    with w.unit() as (_, user):
        return render(request, "tokens.html", user=user, token=None)


@router.post("/tokens", response_class=HTMLResponse)
def tokens_create(request: Request, label: str = Form("ci"), w: Who = Depends(checked)) -> HTMLResponse:
    with w.unit() as (s, user):
        token = new_api_token(s, user, label)
        ops.audit(s, user, "token.create", f"user:{user.id}", label=label)
        return render(request, "tokens.html", user=user, token=token)
