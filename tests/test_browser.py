"""The harness's browser goes only through simulators, fills their pages once, and says where it stopped."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from esante.harness.browser import MAX_HOPS, Browser
from esante.simulators.core.server import ServerHandle

CANDIDATE = "http://127.0.0.1:1/psc/callback"  # never visited: the trip ends when the browser leaves


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/start")
    def start() -> RedirectResponse:
        return RedirectResponse("/login", status_code=302)

    @app.get("/login")
    def login_page() -> HTMLResponse:
        return HTMLResponse('<form method="post" action="/login"><input type="hidden" name="tx" value="t1">'
                            '<input name="who" value=""><select name="how"><option value="CARD">c</option>'
                            "</select></form>")

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))  # no python-multipart in the project
        tx, who, how = form.get("tx"), form.get("who"), form.get("how")
        if tx != "t1" or who != "810999900011":
            return HTMLResponse('<form method="post" action="/login"><p>refused</p></form>', status_code=200)
        return RedirectResponse(f"{CANDIDATE}?code=abc&how={how}", status_code=302)

    @app.get("/error")
    def error() -> HTMLResponse:
        return HTMLResponse("<html><body><h1>Erreur</h1><p>Invalid parameter: redirect_uri</p></body></html>", 400)

    @app.get("/loop")
    def loop() -> RedirectResponse:
        return RedirectResponse("/loop", status_code=302)

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse("no page to fill")

    return app


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[Browser, str]]:
    with ServerHandle(_app()) as server:
        b = Browser({"psc": server.url}, ca_pem=None, timeout=5)
        yield b, server.url
        b.close()


def test_follows_redirects_fills_the_page_and_lands_on_the_candidate(browser: tuple[Browser, str]) -> None:
    b, url = browser
    trip = b.visit(f"{url}/start", {"who": "810999900011"})
    assert trip.landed == f"{CANDIDATE}?code=abc&how=CARD"  # hidden and default fields kept, ours filled
    assert [h["method"] for h in trip.hops] == ["GET", "GET", "POST"]
    assert trip.stopped is None


def test_a_refused_form_is_not_submitted_twice(browser: tuple[Browser, str]) -> None:
    b, url = browser
    trip = b.visit(f"{url}/login", {"who": "nobody"})
    assert trip.landed is None and "stopped on" in (trip.stopped or "")
    assert len(trip.hops) == 2


def test_an_error_page_stops_the_trip_and_says_why(browser: tuple[Browser, str]) -> None:
    b, url = browser
    trip = b.visit(f"{url}/error")
    assert trip.landed is None
    assert "HTTP 400" in (trip.stopped or "") and "Invalid parameter: redirect_uri" in (trip.stopped or "")


def test_never_visits_anything_but_a_simulator(browser: tuple[Browser, str]) -> None:
    b, _ = browser
    trip = b.visit("http://127.0.0.1:9/elsewhere")
    assert trip.landed == "http://127.0.0.1:9/elsewhere" and trip.hops == []


def test_a_redirect_loop_is_bounded(browser: tuple[Browser, str]) -> None:
    b, url = browser
    trip = b.visit(f"{url}/loop")
    assert trip.landed is None and "redirect loop" in (trip.stopped or "")
    assert len(trip.hops) == MAX_HOPS


def test_a_page_without_form_stops_when_asked_to_fill(browser: tuple[Browser, str]) -> None:
    b, url = browser
    trip = b.visit(f"{url}/text", {"who": "x"})
    assert trip.landed is None and "no page to fill" in (trip.stopped or "")
