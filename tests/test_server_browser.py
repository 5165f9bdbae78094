"""The reviewers' lab in a real Chromium (Playwright's Python package driving Debian's ``chromium``; skipped,
saying why, where no browser is found): an editor registers the reference candidate, runs a sandbox session and
watches it finish, submits a rehearsal; a reviewer claims it, comments on a case, sets an attestation verdict with
a reason and locks; the procès-verbal and the bundle are downloaded, the bundle passes ``esante verify`` and the
PV's text holds the verdicts.

The screenshots in the README are this test's: ``ESANTE_LAB_SCREENSHOTS=docs/lab pytest
tests/test_server_browser.py`` writes them there (by default they go to the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pypdfium2
import pytest
from typer.testing import CliRunner

from esante.harness.cli import app as cli
from tests.test_server_support import PASSWORD, lab_over_http

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
pytestmark = pytest.mark.slow
EDITOR, REVIEWER = "editor@alpha.test", "reviewer@cnda.test"
RUN_TIMEOUT_MS = 240_000


def _chromium() -> str | None:
    for name in ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name) if "/" not in name else (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


@pytest.fixture
def browser() -> Iterator[object]:
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found (Debian's chromium package)")
    with playwright.sync_playwright() as driver:
        try:
            # root in a container: no sandbox; a container's small /dev/shm: shared memory in /tmp
            launched = driver.chromium.launch(executable_path=executable,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        except playwright.Error as exc:
            pytest.skip(f"Chromium did not start: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: object, name: str) -> None:
        page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in(page: object, url: str, email: str) -> None:
    page.goto(f"{url}/login")  # type: ignore[attr-defined]
    page.get_by_label("E-mail").fill(email)  # type: ignore[attr-defined]
    page.get_by_label("Password / mot de passe").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Dashboard").wait_for()  # type: ignore[attr-defined]


def new_session(page: object, kind: str) -> None:
    page.get_by_label("Kind", exact=True).select_option(kind)  # type: ignore[attr-defined]
    page.get_by_label("Campaign", exact=True).select_option("insi")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create the session").click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Start a run").wait_for()  # type: ignore[attr-defined]


def run_and_watch(page: object, cases: str = "") -> None:
    page.get_by_label("Cases (optional").fill(cases)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Run", exact=True).click()  # type: ignore[attr-defined]
    page.locator("#runs .status.running, #runs .status.finished").first.wait_for()  # type: ignore[attr-defined]
    page.locator("#runs .status.finished").wait_for(timeout=RUN_TIMEOUT_MS)  # type: ignore[attr-defined]
    page.locator(".cases .verdict").first.wait_for()  # type: ignore[attr-defined]


def test_an_editor_and_a_reviewer_take_a_session_to_its_signed_proces_verbal(browser: object, tmp_path: Path) -> None:
    shots = Shots(Path(os.environ.get("ESANTE_LAB_SCREENSHOTS") or tmp_path / "shots"))
    with lab_over_http(tmp_path / "lab") as (url, _people):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)  # type: ignore[attr-defined]
        page = context.new_page()
        sign_in(page, url, EDITOR)
        page.get_by_role("link", name="Candidates").first.click()
        page.get_by_label("Name", exact=True).fill("reference candidate")
        page.get_by_label("Version", exact=True).fill("1.0.0")
        page.get_by_label("Vendor / éditeur").fill("Alpha Santé")
        page.get_by_label("Mode", exact=True).select_option("reference")
        page.get_by_role("button", name="Register").click()
        page.get_by_role("heading", name="reference candidate 1.0.0").wait_for()
        shots.take(page, "candidate")

        new_session(page, "sandbox")
        run_and_watch(page)
        assert page.locator(".cases tbody tr").count() == 17
        shots.take(page, "sandbox-session")

        page.get_by_role("link", name="reference candidate 1.0.0").click()
        new_session(page, "rehearsal")
        run_and_watch(page, "INSI-01 INSI-02")
        page.get_by_role("button", name="Submit for review / soumettre").click()
        assert page.locator("#session-status").inner_text() == "submitted"
        session_url = page.url
        page.get_by_role("button", name="Sign out").click()

        sign_in(page, url, REVIEWER)
        page.get_by_role("link", name="Review queue (relecture)").click()
        shots.take(page, "review-queue")
        page.get_by_role("link", name="#2").click()
        assert page.url == session_url
        page.get_by_role("button", name="Claim / prendre en charge").click()
        _review(page, shots)
        _check_downloads(page, tmp_path)
        context.close()


def _review(page: object, shots: Shots) -> None:
    page.get_by_text("Review INSI-02").click()  # type: ignore[attr-defined]
    page.get_by_label("Comment on INSI-02").fill("ITI exchanges read: the request carries ContexteLPS.")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Comment on INSI-02").click()  # type: ignore[attr-defined]
    page.get_by_text("ITI exchanges read").wait_for()  # type: ignore[attr-defined]
    page.get_by_text("Review INSI-01").click()  # type: ignore[attr-defined]
    page.get_by_label("Reviewer verdict on INSI-01").select_option("passed")  # type: ignore[attr-defined]
    page.get_by_label("Reason for INSI-01").fill("Attestation checked on the screenshot: « Identité récupérée » "  # type: ignore[attr-defined]
                                                 "with its OID")
    page.get_by_role("button", name="Set the verdict on INSI-01").click()  # type: ignore[attr-defined]
    page.get_by_text("reviewer verdict: passed").wait_for()  # type: ignore[attr-defined]
    shots.take(page, "review")
    page.get_by_role("button", name="Lock the session").click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Procès-verbal").wait_for()  # type: ignore[attr-defined]
    assert page.locator("#session-status").inner_text() == "locked"  # type: ignore[attr-defined]
    shots.take(page, "locked")


def _check_downloads(page: object, folder: Path) -> None:
    with page.expect_download() as pv:  # type: ignore[attr-defined]
        page.locator("#pv-pdf").click()  # type: ignore[attr-defined]
    pdf = folder / "pv.pdf"
    pv.value.save_as(pdf)
    with page.expect_download() as reviewed:  # type: ignore[attr-defined]
        page.locator("a.reviewed-bundle").last.click()  # type: ignore[attr-defined]
    bundle = folder / "reviewed-bundle.zip"
    reviewed.value.save_as(bundle)
    verified = CliRunner().invoke(cli, ["verify", str(bundle)])
    assert verified.exit_code == 0 and "intact" in verified.output, verified.output
    text = " ".join(p.get_textpage().get_text_range() for p in pypdfium2.PdfDocument(pdf)).replace("\r\n", " ")
    for expected in ("Procès-verbal", "recette", "reference candidate 1.0.0", "INSI-01", "INSI-02", "passed",
                     "Identité récupérée", "ITI exchanges read", "reviewer@cnda.test"):
        assert expected in text.replace("\n", " "), expected
