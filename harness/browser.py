"""The user's browser, played by the harness in driver mode.

A sign-in through an OpenID Connect federator passes through the user's browser: the candidate sends it to
the federator, the federator shows a login page, then sends it back to the candidate. The harness plays that
browser, and only that: it follows redirects *within the simulators*, fills the simulators' pages as the test
case says (the professional to sign in as), and stops where the browser lands back on the candidate, whose
URL it then hands to the candidate's driver (``/callback``).

It never visits anything but a simulator: a redirect to any other place is where the trip ends. Pages are
read with a size bound and without network access; every hop is kept for the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import etree, html

from esante.simulators.core.pki import client_ssl_context

MAX_HOPS = 12
MAX_PAGE_BYTES = 1024 * 1024


@dataclass(slots=True)
class Trip:
    """One browser trip: the hops made, and where it ended."""

    hops: list[dict[str, object]] = field(default_factory=list)
    landed: str | None = None   # the candidate URL the browser arrived at
    stopped: str | None = None  # why the browser stopped on a simulator page instead

    def as_evidence(self) -> dict[str, object]:
        return {"hops": self.hops, "landed": self.landed, "stopped": self.stopped}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class Browser:
    """One user's browser for one test case (its cookies last the case, as a real session would)."""

    def __init__(self, simulators: dict[str, str], ca_pem: bytes | None, timeout: float = 30.0) -> None:
        self._origins = {_origin(url) for url in simulators.values()}
        verify = client_ssl_context(ca_pem) if ca_pem is not None else True
        self._http = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)

    def is_simulator(self, url: str) -> bool:
        return _origin(url) in self._origins

    def visit(self, url: str, form: dict[str, str] | None = None) -> Trip:
        """Go to ``url``; follow redirects and fill pages (with ``form``) until the browser leaves the simulators."""
        trip = Trip()
        method, data = "GET", None
        for _ in range(MAX_HOPS):
            if not self.is_simulator(url):
                trip.landed = url
                return trip
            try:
                response = self._http.request(method, url, data=data)
            except httpx.HTTPError as exc:
                trip.stopped = f"the browser could not load {url}: {type(exc).__name__}: {exc}"
                return trip
            trip.hops.append({"method": method, "url": url, "status": response.status_code})
            location = response.headers.get("location")
            if response.is_redirect and location:
                url, method, data = urljoin(url, location), "GET", None
                continue
            submission = self._form(response, url, form) if response.status_code == 200 else None
            if submission is None:
                trip.stopped = _stop_reason(url, response)
                return trip
            url, data = submission
            method, form = "POST", None  # each page's form is filled once: a second one means it was refused
        trip.stopped = f"more than {MAX_HOPS} hops: a redirect loop"
        return trip

    @staticmethod
    def _form(response: httpx.Response, url: str, fill: dict[str, str] | None) -> tuple[str, dict[str, str]] | None:
        if fill is None or not response.headers.get("content-type", "").startswith("text/html"):
            return None
        if len(response.content) > MAX_PAGE_BYTES:
            return None
        try:
            forms = html.fromstring(response.content).forms
        except (etree.ParserError, ValueError):
            return None
        if not forms:
            return None
        form = forms[0]
        values = {k: v for k, v in form.fields.items() if isinstance(v, str)}
        values.update(fill)
        return urljoin(url, form.action or url), values

    def close(self) -> None:
        self._http.close()


def _stop_reason(url: str, response: httpx.Response) -> str:
    text = response.text[:2000] if len(response.content) <= MAX_PAGE_BYTES else ""
    try:
        page = html.fromstring(text) if text.strip() else None
        summary = " ".join(page.text_content().split())[:200] if page is not None else ""
    except (etree.ParserError, ValueError):
        summary = text[:200]
    return f"the browser stopped on {url}: HTTP {response.status_code} {summary}".strip()
