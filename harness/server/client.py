"""``esante submit``: an editor's CI runs a sandbox or rehearsal session in the lab and gets back the verdict,
the reports and the evidence bundle, through the lab's JSON API and an API token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ACTIVE = ("queued", "running")
DOWNLOADS = {"report.json": "report.json", "junit.xml": "junit.xml", "report.html": "report.html",
             "report.pdf": "report.pdf", "bundle": "evidence-bundle.zip"}


class SubmitError(Exception):
    """The lab refused, or could not be reached; the message says what it answered."""


@dataclass(slots=True)
class Submission:
    lab: str
    token: str
    candidate: int
    campaign: str
    kind: str = "sandbox"
    case_ids: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    submit_for_review: bool = False
    timeout: float = 3600.0
    poll: float = 2.0


@dataclass(slots=True)
class SubmitOutcome:
    session: dict[str, Any]
    run: dict[str, Any]
    files: dict[str, Path]


class LabClient:
    def __init__(self, lab: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=lab.rstrip("/") + "/api/v1", timeout=60, transport=transport,
                                 headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            answer = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise SubmitError(f"{method} {path}: {exc}") from None
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("detail")
            except ValueError:
                detail = answer.text[:300]
            raise SubmitError(f"{method} {path}: HTTP {answer.status_code}: {detail}")
        return answer.json()

    def download(self, path: str, target: Path) -> Path:
        with self.http.stream("GET", path) as answer:
            if answer.status_code >= 400:
                raise SubmitError(f"GET {path}: HTTP {answer.status_code}")
            with target.open("wb") as handle:
                for chunk in answer.iter_bytes():
                    handle.write(chunk)
        return target


def submit(job: Submission, say: Callable[[str], None] = print, client: LabClient | None = None) -> SubmitOutcome:
    """Create the session, start its run, follow it to the end, download what it produced."""
    lab = client or LabClient(job.lab, job.token)
    session = lab.call("POST", "/sessions", {"kind": job.kind, "candidate_id": job.candidate, "campaign": job.campaign,
                                             "title": "submitted from CI"})
    run = lab.call("POST", f"/sessions/{session['id']}/runs", {"case_ids": job.case_ids or None,
                                                               "defects": job.defects})
    say(f"session {session['id']} ({job.kind}), run {run['id']}: {job.lab.rstrip('/')}/sessions/{session['id']}")
    run = _follow(lab, run, job, say)
    files: dict[str, Path] = {}
    if run["status"] == "finished" and job.out_dir is not None:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        for name, target in DOWNLOADS.items():
            files[name] = lab.download(f"/runs/{run['id']}/files/{name}", job.out_dir / target)
    if run["status"] == "finished" and job.submit_for_review:
        session = lab.call("POST", f"/sessions/{session['id']}/submit")
        say(f"session {session['id']} submitted for review")
    return SubmitOutcome(session, run, files)


def _follow(lab: LabClient, run: dict[str, Any], job: Submission, say: Callable[[str], None]) -> dict[str, Any]:
    deadline, seen = time.monotonic() + job.timeout, -1
    while run["status"] in ACTIVE:
        if time.monotonic() > deadline:
            lab.call("POST", f"/runs/{run['id']}/cancel")
            raise SubmitError(f"run {run['id']} did not finish within {job.timeout:g} s: cancelled")
        time.sleep(job.poll)
        run = lab.call("GET", f"/runs/{run['id']}")
        if run["cases_done"] != seen and run["cases_total"]:
            seen = run["cases_done"]
            say(f"  {seen}/{run['cases_total']} cases judged")
    return run
