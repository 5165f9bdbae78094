"""The reviewers' lab through its JSON API: every operation and every permission rule, on SQLite and on a real
PostgreSQL server (skipped, saying why, where none can start).

Runs are real: the reference candidate plays INSi cases in the lab's workers; bundles are checked with
``esante verify`` and the procès-verbal's text is read back with pypdfium2 (PDFium, not our code).
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pypdfium2
import pytest
from typer.testing import CliRunner

from esante.harness.cli import app as cli
from esante.harness.kits import kit
from esante.reports import verify_bundle
from esante.simulators.core.evidence import EvidenceStore
from tests.test_server_support import (
    ADMIN,
    PASSWORD,
    People,
    Postgres,
    lab_in_process,
    start_postgres,
    stop_postgres,
)

ALPHA, BETA = "editor@alpha.test", "editor@beta.test"
REVIEWER, OTHER_REVIEWER = "reviewer@cnda.test", "other-reviewer@cnda.test"
QUICK = ["INSI-01", "INSI-02"]  # an attestation case (INSI-01, not played by a driver) and a judged one


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    stop_postgres(server)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def people(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[People]:
    database = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else ""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    shutil.copy(kit("insi").campaign_path, campaigns / "insi-copy.yaml")
    with lab_in_process(tmp_path / "lab", database, campaigns) as found:
        yield found


def reference(people: People, who: str = ALPHA, version: str = "1.0.0") -> dict:
    return people.json(who, "POST", "/candidates", 201, json={"name": "reference", "version": version,
                                                                "vendor": "ANS-like", "mode": "reference"})


def session(people: People, who: str, kind: str, candidate: int, campaign: str = "insi") -> dict:
    return people.json(who, "POST", "/sessions", 201, json={"kind": kind, "candidate_id": candidate,
                                                             "campaign": campaign})


def played(people: People, who: str, session_id: int, **body: object) -> dict:
    run = people.json(who, "POST", f"/sessions/{session_id}/runs", 201, json=body)
    return people.wait(who, run["id"])


# -- accounts ---------------------------------------------------------------------------------------------------

def test_sign_in_is_throttled_after_five_failures(people: People) -> None:
    for _ in range(5):
        assert people.client.post("/api/v1/tokens", json={"email": ALPHA, "password": "wrong"}).status_code == 401
    locked = people.client.post("/api/v1/tokens", json={"email": ALPHA, "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert people.client.post("/api/v1/tokens", json={"email": BETA, "password": PASSWORD}).status_code == 200
    assert people.client.get("/api/v1/me", headers={"Authorization": "Bearer esl_forged"}).status_code == 401


def test_only_an_administrator_manages_accounts_and_reads_the_audit_log(people: People) -> None:
    for who in (ALPHA, REVIEWER):
        people.call(who, "POST", "/organisations", 403, json={"name": "Gamma"})
        people.call(who, "POST", "/users", 403, json={"email": "x@y.test", "password": PASSWORD, "role": "admin"})
        people.call(who, "GET", "/audit", 403)
    people.call(ADMIN, "POST", "/users", 422, json={"email": "x@y.test", "password": "short", "role": "editor"})
    actions = [e["action"] for e in people.json(ADMIN, "GET", "/audit")]
    assert actions.count("user.create") == 5 and "organisation.create" in actions and "token.create" in actions
    assert people.json(ALPHA, "GET", "/me")["role"] == "editor"


# -- candidates -------------------------------------------------------------------------------------------------

def test_an_editor_never_sees_another_organisations_candidate(people: People) -> None:
    theirs = reference(people, BETA)
    assert people.json(ALPHA, "GET", "/candidates") == []
    for method, path, body in (("GET", f"/candidates/{theirs['id']}", None),
                               ("PATCH", f"/candidates/{theirs['id']}", {"vendor": "mine now"}),
                               ("GET", f"/candidates/{theirs['id']}/history", None)):
        people.call(ALPHA, method, path, 404, json=body)
    people.call(ALPHA, "POST", "/sessions", 404, json={"kind": "sandbox", "candidate_id": theirs["id"],
                                                        "campaign": "insi"})
    assert [c["id"] for c in people.json(REVIEWER, "GET", "/candidates")] == [theirs["id"]]


def test_a_candidate_is_checked_when_registered(people: People) -> None:
    people.call(ALPHA, "POST", "/candidates", 422, json={"name": "x", "version": "1", "mode": "driver"})
    people.call(ALPHA, "POST", "/candidates", 422, json={"name": "x", "version": "1", "mode": "reference",
                                                          "certificates": "-----BEGIN CERTIFICATE-----\nnope"})
    reference(people)
    people.call(ALPHA, "POST", "/candidates", 409, json={"name": "reference", "version": "1.0.0",
                                                          "mode": "reference"})
    people.call(REVIEWER, "POST", "/candidates", 422, json={"name": "x", "version": "1", "mode": "reference"})


def test_an_official_session_is_a_reviewers_and_freezes_the_candidate_version(people: People) -> None:
    candidate = reference(people)
    people.call(ALPHA, "POST", "/sessions", 403, json={"kind": "official", "candidate_id": candidate["id"],
                                                        "campaign": "insi"})
    people.call(REVIEWER, "POST", "/sessions", 403, json={"kind": "sandbox", "candidate_id": candidate["id"],
                                                           "campaign": "insi"})
    official = session(people, REVIEWER, "official", candidate["id"])
    frozen = official["frozen"]
    assert frozen["campaign"]["id"] == "INSI-CLIENT" and frozen["candidate"]["version"] == "1.0.0"
    assert set(frozen["simulators"]) == {"insi"} and len(frozen["datasets"]["default"]) == 64
    assert people.json(ALPHA, "GET", f"/candidates/{candidate['id']}")["frozen"] is True
    people.call(ALPHA, "PATCH", f"/candidates/{candidate['id']}", 409, json={"version": "1.0.1"})
    people.call(ALPHA, "POST", f"/sessions/{official['id']}/runs", 403, json={})  # the reviewer runs it
    people.call(BETA, "GET", f"/sessions/{official['id']}", 404)


def test_an_official_session_refuses_a_changed_campaign_file(people: People) -> None:
    candidate = reference(people)
    official = session(people, REVIEWER, "official", candidate["id"], campaign="insi-copy.yaml")
    campaign = people.lab.campaigns_dir / "insi-copy.yaml"
    campaign.write_text(campaign.read_text().replace('version: "1.0.0"', 'version: "1.0.1"', 1))
    run = played(people, REVIEWER, official["id"], case_ids=["INSI-02"])
    assert run["status"] == "error" and run["detail"].startswith("refused to start")
    assert "campaign.sha256" in run["detail"] and "campaign.version" in run["detail"]


def test_campaigns_are_the_kits_and_the_labs_folder_only(people: People) -> None:
    assert {"insi", "psc", "insi-copy.yaml"} <= set(people.json(ALPHA, "GET", "/campaigns"))
    candidate = reference(people)
    for name in ("/etc/passwd", "../campaigns/insi-copy.yaml", "nothing"):
        people.call(ALPHA, "POST", "/sessions", 422, json={"kind": "sandbox", "candidate_id": candidate["id"],
                                                            "campaign": name})


# -- sandbox runs -----------------------------------------------------------------------------------------------

def test_a_sandbox_run_plays_and_serves_its_reports_to_its_organisation_only(people: People) -> None:
    sandbox = session(people, ALPHA, "sandbox", reference(people)["id"])
    run = played(people, ALPHA, sandbox["id"], case_ids=QUICK)
    assert run["status"] == "finished" and run["cases_done"] == run["cases_total"] == 2, run
    detail = people.json(ALPHA, "GET", f"/sessions/{sandbox['id']}")
    assert {c["case_id"]: c["attestation"] for c in detail["cases"]} == {"INSI-01": True, "INSI-02": False}
    report = people.json(ALPHA, "GET", f"/runs/{run['id']}/files/report.json")
    assert report["run_id"] == run["harness_run_id"]
    bundle = people.call(ALPHA, "GET", f"/runs/{run['id']}/files/bundle", 200)
    assert bundle.headers["content-type"] == "application/zip"
    assert "text/html" in people.call(ALPHA, "GET", f"/runs/{run['id']}/files/report.html", 200).headers["content-type"]
    people.call(ALPHA, "GET", f"/runs/{run['id']}/files/evidence.sqlite", 404)
    html = people.call(ALPHA, "GET", f"/runs/{run['id']}/files/report.html", 200).text
    member = html.split('href="exchanges/', 1)[1].split('"', 1)[0]  # the report links each exchange's whole body
    body = people.call(ALPHA, "GET", f"/runs/{run['id']}/files/exchanges/{member}", 200)
    assert body.text.startswith("<") and body.headers["content-security-policy"] == "sandbox"
    for hostile in ("..%2Freport.json", "x%2F..%2F..%2Fmanifest.json", "nothing.bin"):
        people.call(ALPHA, "GET", f"/runs/{run['id']}/files/exchanges/{hostile}", 404)
    people.call(BETA, "GET", f"/runs/{run['id']}", 404)
    people.call(BETA, "GET", f"/runs/{run['id']}/files/bundle", 404)
    events = people.call(ALPHA, "GET", f"/runs/{run['id']}/events", 200)
    assert "event: run" in events.text and "event: end" in events.text


def test_defects_are_the_reference_candidates_and_known(people: People) -> None:
    candidate = reference(people)
    sandbox = session(people, ALPHA, "sandbox", candidate["id"])
    people.call(ALPHA, "POST", f"/sessions/{sandbox['id']}/runs", 422, json={"defects": ["no_such_defect"]})
    driver = people.json(ALPHA, "POST", "/candidates", 201, json={"name": "mine", "version": "2", "mode": "driver",
                                                                   "driver_url": "http://127.0.0.1:9/esante/v1"})
    mine = session(people, ALPHA, "sandbox", driver["id"])
    people.call(ALPHA, "POST", f"/sessions/{mine['id']}/runs", 422, json={"defects": ["no_message_id"]})
    unreachable = played(people, ALPHA, mine["id"], case_ids=["INSI-02"])
    assert unreachable["status"] == "error" and "driver" in unreachable["detail"]


def test_an_operator_mode_candidate_is_played_by_a_person_answering_in_the_lab(people: People) -> None:
    candidate = people.json(ALPHA, "POST", "/candidates", 201, json={"name": "desktop", "version": "4.2",
                                                                       "mode": "operator"})
    sandbox = session(people, ALPHA, "sandbox", candidate["id"])
    run = people.json(ALPHA, "POST", f"/sessions/{sandbox['id']}/runs", 201, json={"case_ids": ["INSI-02"]})
    people.call(ALPHA, "POST", f"/runs/{run['id']}/answer", 409, json={"answer": "too early"})
    asked: list[dict] = []
    deadline = time.monotonic() + 120
    while (current := people.json(ALPHA, "GET", f"/runs/{run['id']}"))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, current
        prompt = current["prompt"]
        if prompt and prompt not in asked[-1:]:
            asked.append(prompt)
            people.call(BETA, "POST", f"/runs/{run['id']}/answer", 404, json={"answer": "not mine"})
            answer = "not_found" if prompt["question"].startswith("What did the software report") else ""
            people.json(ALPHA, "POST", f"/runs/{run['id']}/answer", json={"answer": answer})
        time.sleep(0.2)
    assert current["status"] == "finished" and current["prompt"] is None, current
    assert "INSI-02" in asked[0]["context"] and asked[0]["question"].startswith("Press Enter")
    assert "insi: http" in asked[0]["context"] and "--resume" not in asked[0]["context"]  # the lab's introduction
    store = EvidenceStore(Path(people.lab.settings.run_folder(run["id"])) / "evidence.sqlite")
    [step] = store.records(kind="step")
    assert step.payload["mode"] == "operator" and step.payload["report"]["outcome"] == "not_found"
    store.close()


def test_a_queued_or_running_run_can_be_cancelled(people: People) -> None:
    sandbox = session(people, ALPHA, "sandbox", reference(people)["id"])
    run = people.json(ALPHA, "POST", f"/sessions/{sandbox['id']}/runs", 201, json={})
    people.call(BETA, "POST", f"/runs/{run['id']}/cancel", 404)
    people.json(ALPHA, "POST", f"/runs/{run['id']}/cancel")
    final = people.wait(ALPHA, run["id"])
    assert final["status"] == "cancelled", final
    people.call(ALPHA, "POST", f"/runs/{run['id']}/cancel", 409)


def test_history_shows_a_regression_between_versions(people: People) -> None:
    for version, defects in (("1.2", []), ("1.3", ["no_message_id"])):
        candidate = reference(people, version=version)
        sandbox = session(people, ALPHA, "sandbox", candidate["id"])
        assert played(people, ALPHA, sandbox["id"], case_ids=["INSI-02"], defects=defects)["status"] == "finished"
    history = people.json(ALPHA, "GET", f"/candidates/{candidate['id']}/history")
    assert len(history["sessions"]) == 2
    assert history["regressions"] == [{"case": "INSI-02", "passed_in": "1.2", "version": "1.3", "verdict": "failed"}]


# -- review -----------------------------------------------------------------------------------------------------

def test_the_review_workflow_from_submission_to_the_signed_proces_verbal(people: People, tmp_path: Path) -> None:
    rehearsal = session(people, ALPHA, "rehearsal", reference(people)["id"])
    people.call(ALPHA, "POST", f"/sessions/{rehearsal['id']}/submit", 409)  # nothing played yet
    people.call(ALPHA, "POST", f"/sessions/{rehearsal['id']}/runs", 422, json={"defects": ["no_message_id"]})
    run = played(people, ALPHA, rehearsal["id"], case_ids=QUICK)
    people.call(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/claim", 409)  # not submitted
    people.json(ALPHA, "POST", f"/sessions/{rehearsal['id']}/submit")
    assert [s["id"] for s in people.json(REVIEWER, "GET", "/review/queue")] == [rehearsal["id"]]
    people.call(ALPHA, "GET", "/review/queue", 403)
    people.call(ALPHA, "POST", f"/sessions/{rehearsal['id']}/claim", 403)
    people.json(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/claim")
    people.call(OTHER_REVIEWER, "POST", f"/sessions/{rehearsal['id']}/claim", 409)

    base = f"/sessions/{rehearsal['id']}/cases"
    for who in (ALPHA, OTHER_REVIEWER):
        people.call(who, "POST", f"{base}/INSI-02/comments", 403, json={"text": "mine"})
    people.call(REVIEWER, "POST", f"{base}/INSI-01/verdict", 422, json={"verdict": "passed", "reason": " "})
    people.call(REVIEWER, "POST", f"{base}/INSI-99/comments", 422, json={"text": "no such case"})
    people.json(REVIEWER, "POST", f"{base}/INSI-02/comments", 201, json={"text": "Exchanges read: fine."})
    detail = people.json(REVIEWER, "POST", f"{base}/INSI-01/verdict", 201,
                         json={"verdict": "failed", "reason": "The screenshot shows « Identité provisoire »"})
    insi01 = next(c for c in detail["cases"] if c["case_id"] == "INSI-01")
    assert insi01["verdict"] == "passed" and insi01["reviewer_verdict"] == insi01["standing"] == "failed"

    rerun = people.json(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/reruns", 201,
                        json={"case_ids": ["INSI-02"], "reason": "once more, on a quiet platform"})
    assert people.wait(REVIEWER, rerun["id"])["status"] == "finished"
    people.json(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/lock")

    for who, path, body in ((REVIEWER, f"{base}/INSI-02/comments", {"text": "late"}),
                            (REVIEWER, f"{base}/INSI-02/verdict", {"verdict": "failed", "reason": "late"}),
                            (REVIEWER, f"/sessions/{rehearsal['id']}/lock", None),
                            (REVIEWER, f"/sessions/{rehearsal['id']}/reruns", {"case_ids": ["INSI-02"], "reason": "x"}),
                            (ALPHA, f"/sessions/{rehearsal['id']}/runs", {})):
        people.call(who, "POST", path, 409, json=body)
    _check_signed_outcome(people, rehearsal["id"], run["id"], tmp_path)


def _check_signed_outcome(people: People, session_id: int, run_id: int, folder: Path) -> None:
    reviewed = folder / "reviewed.zip"
    reviewed.write_bytes(people.call(ALPHA, "GET", f"/runs/{run_id}/files/reviewed-bundle", 200).content)
    outcome = verify_bundle(reviewed)
    assert outcome.ok, outcome.problems
    with zipfile.ZipFile(reviewed) as archive:
        records = [json.loads(line) for line in archive.read("evidence/records.jsonl").splitlines()]
        review = json.loads(archive.read("review.json"))
    kinds = [r["kind"] for r in records]
    assert {"review.comment", "review.verdict", "review.rerun", "review.lock"} <= set(kinds)
    assert {(e["case"], e["kind"]) for e in review} == {("INSI-02", "comment"), ("INSI-01", "verdict")}
    harness = [r for r in records if r["kind"] == "case.verdict" and r["case_id"] == "INSI-01"]
    assert harness and json.loads(harness[0]["payload"])["verdict"] == "passed"  # never overwritten

    pv_zip, pv_pdf = folder / "pv.zip", folder / "pv.pdf"
    pv_zip.write_bytes(people.call(REVIEWER, "GET", f"/sessions/{session_id}/pv.zip", 200).content)
    pv_pdf.write_bytes(people.call(ALPHA, "GET", f"/sessions/{session_id}/pv.pdf", 200).content)
    for bundle in (reviewed, pv_zip):
        verified = CliRunner().invoke(cli, ["verify", str(bundle)])
        assert verified.exit_code == 0 and "intact" in verified.output, verified.output
    text = "".join(page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(pv_pdf))
    for expected in ("Procès-verbal", "recette", "INSI-01", "Identité provisoire", "Exchanges read: fine.",
                     "reviewer@cnda.test", people.json(ALPHA, "GET", f"/runs/{run_id}")["reviewed_bundle_sha256"]):
        assert expected in text.replace("\r\n", "\n").replace("\n", " ") or expected in text, expected
    people.call(BETA, "GET", f"/sessions/{session_id}/pv.pdf", 404)


def test_the_evidence_store_of_a_run_keeps_the_reviewer_records_in_its_chain(people: People) -> None:
    rehearsal = session(people, ALPHA, "rehearsal", reference(people)["id"])
    run = played(people, ALPHA, rehearsal["id"], case_ids=["INSI-02"])
    people.json(ALPHA, "POST", f"/sessions/{rehearsal['id']}/submit")
    people.json(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/claim")
    people.json(REVIEWER, "POST", f"/sessions/{rehearsal['id']}/cases/INSI-02/verdict", 201,
                json={"verdict": "inconclusive", "reason": "the platform was degraded"})
    store = EvidenceStore(Path(people.lab.settings.run_folder(run["id"])) / "evidence.sqlite")
    [record] = store.records(kind="review.verdict")
    assert record.case_id == "INSI-02" and record.run_id == run["harness_run_id"]
    assert record.payload["reason"] == "the platform was degraded" and store.verify() == []
    store.close()


# -- the API itself ---------------------------------------------------------------------------------------------

def test_the_openapi_document_lists_the_operations(people: People) -> None:
    document = people.client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/sessions/{session_id}/lock", "/api/v1/sessions/{session_id}/cases/{case_id}/verdict",
                 "/api/v1/candidates/{candidate_id}/history", "/api/v1/runs/{run_id}/events", "/api/v1/tokens"):
        assert path in document["paths"], path
    assert not any(p.startswith("/sessions") for p in document["paths"])  # the HTML pages are not API


def test_hostile_input_gets_a_4xx_never_a_5xx(people: People) -> None:
    headers = {"Authorization": f"Bearer {people.tokens[ALPHA]}", "Content-Type": "application/json"}
    for method, path, body in (("POST", "/api/v1/candidates", b"{not json"),
                               ("POST", "/api/v1/candidates", json.dumps({"name": "x" * 100_000}).encode()),
                               ("POST", "/api/v1/sessions", b'{"kind": "sandbox", "candidate_id": 1e308}'),
                               ("GET", "/api/v1/runs/99999999999999999999", b""),
                               ("POST", "/api/v1/sessions/1/cases/%00/comments", b'{"text": "x"}'),
                               ("GET", "/api/v1/runs/1/files/..%2F..%2Fetc%2Fpasswd", b"")):
        answer = people.client.request(method, path, content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])


def test_a_browser_session_needs_its_csrf_token_to_change_anything(people: People) -> None:
    client = people.client
    login = client.get("/login")
    csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"email": ALPHA, "password": PASSWORD, "csrf_token": "forged"}).status_code == 403
    signed_in = client.post("/login", data={"email": ALPHA, "password": PASSWORD, "csrf_token": csrf},
                            follow_redirects=False)
    assert signed_in.status_code == 303
    assert client.post("/candidates", data={"name": "x", "version": "1", "mode": "reference"}).status_code == 403
    assert client.post("/api/v1/candidates", json={"name": "x", "version": "1", "mode": "reference"}).status_code == 403
    assert client.get("/api/v1/candidates").status_code == 200  # reading with the cookie needs no token


def _browser_sign_in(people: People, email: str) -> str:
    """Sign in through the form, as a browser does; the CSRF token of the new session."""
    client = people.client
    client.cookies.clear()
    csrf = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    return client.get("/").text.split('name="csrf_token" value="')[1].split('"')[0]


def test_every_page_renders_for_the_people_it_is_for(people: People) -> None:
    candidate = reference(people)
    sandbox = session(people, ALPHA, "sandbox", candidate["id"])
    pages = {ADMIN: ["/", "/admin", "/candidates", "/review", "/tokens", f"/candidates/{candidate['id']}"],
             ALPHA: ["/", "/candidates", "/tokens", f"/candidates/{candidate['id']}", f"/sessions/{sandbox['id']}",
                     f"/sessions/{sandbox['id']}/progress"],
             REVIEWER: ["/", "/review", f"/sessions/{sandbox['id']}"]}
    for email, paths in pages.items():
        csrf = _browser_sign_in(people, email)
        for path in paths:
            page = people.client.get(path)
            assert page.status_code == 200 and ("<main" in page.text or "id=\"runs\"" in page.text), (email, path)
        token = people.client.post("/tokens", data={"label": "ci", "csrf_token": csrf})
        assert token.status_code == 200 and 'id="new-token">esl_' in token.text
    _browser_sign_in(people, BETA)
    for path in (f"/candidates/{candidate['id']}", f"/sessions/{sandbox['id']}", "/admin", "/review"):
        assert people.client.get(path).status_code in (403, 404), path
    people.client.cookies.clear()
    assert people.client.get("/candidates", follow_redirects=False).headers["location"].startswith("/login")
