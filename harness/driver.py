"""The driver contract: the small HTTP API a candidate's test build exposes so the harness can drive it.

Four calls, all under the candidate's driver base URL (e.g. ``http://127.0.0.1:8700/esante/v1``):

* ``GET  /info``                  → :class:`CandidateInfo` (declared name and version, actions supported)
* ``POST /reset``                 → forget every patient, identity and session (each test case starts clean);
  the body gives the simulators' endpoints, which a test build may use to configure itself
* ``POST /actions/{action}``      → perform one user-level action ("look up this patient's INS", "sign in
  with Pro Santé Connect") with its parameters, and report what the software did (:class:`ActionReport`)
* ``POST /callback``              → the user's browser arrived at one of the candidate's own URLs (an OAuth
  redirect URI, a post-logout URI): handle it as the web application would and report

Browser flows: when an action needs the user's browser (a sign-in through an OpenID Connect federator), the
candidate answers ``outcome: redirect`` with the URL it sends the browser to. The harness plays the browser:
it follows the redirects through the simulators (filling their login pages as the test case says), and
hands the URL the browser finally lands on back to the candidate with ``/callback``.

The contract is published as an OpenAPI document (``harness/driver-openapi.json``, regenerated with
``esante schema driver --write harness/driver-openapi.json``). :class:`DriverClient` is the harness side.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

API_PREFIX = "/esante/v1"
MAX_DRIVER_ANSWER_BYTES = 5 * 1024 * 1024  # a candidate's answer is untrusted input too


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    SEVERAL = "several"
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    UPDATED = "updated"          # verification found the stored INS replaced; the active INS was taken
    ERROR = "error"              # the service answered a fault
    UNAVAILABLE = "unavailable"  # the service could not be reached or did not answer in time
    REDIRECT = "redirect"        # the software sends the user's browser to ``redirect_url``
    SIGNED_IN = "signed_in"      # a professional's session is open (``professional`` says who)
    SIGNED_OUT = "signed_out"    # the session is closed (or was found closed)
    REFUSED = "refused"          # the software refused an answer it must not trust (tampered, unsigned...)
    COMPLETED = "completed"      # the action was carried out (e.g. a token obtained for a connected API)


class ActionRequest(Model):
    params: dict[str, Any] = Field(default_factory=dict)
    case_id: str | None = None


class ActionReport(Model):
    """What the software did, as every action reports it. A test kit's actions extend it with what their
    service's actions report (an identity stored, a professional signed in, documents found...)."""

    outcome: ActionOutcome
    message: str = ""
    error_code: str | None = Field(default=None, description="the service's error code when outcome is error")
    redirect_url: str | None = Field(default=None, description="where the browser is sent (outcome redirect)")


class CallbackRequest(Model):
    url: str = Field(description="the candidate's own URL the user's browser landed on, with its query")
    case_id: str | None = None


class CandidateInfo(Model):
    name: str
    version: str
    vendor: str | None = None
    actions: list[str] = Field(default_factory=list)


class ResetRequest(Model):
    endpoints: dict[str, str] = Field(default_factory=dict, description="simulator name -> base URL")


class DriverError(RuntimeError):
    """The driver did not answer as the contract says (unreachable, HTTP error, malformed report)."""


R = TypeVar("R", bound=ActionReport)


def read_report(raw: Any, model: type[R], what: str) -> R:
    """A candidate's report as ``model``; a field sent as null is a field not sent."""
    if isinstance(raw, dict):
        raw = {key: value for key, value in raw.items() if value is not None}
    try:
        return model.model_validate(raw)
    except ValueError as exc:
        raise DriverError(f"{what} answered a malformed report: {exc}") from None


class DriverClient:
    """Harness side of the contract."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise DriverError(f"driver {method} {path} failed: {exc}") from None
        if response.status_code >= 400:
            raise DriverError(f"driver {method} {path} answered HTTP {response.status_code}: {response.text[:300]}")
        if len(response.content) > MAX_DRIVER_ANSWER_BYTES:
            raise DriverError(f"driver {method} {path} answered {len(response.content)} bytes, over the "
                              f"{MAX_DRIVER_ANSWER_BYTES}-byte limit")
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise DriverError(f"driver {method} {path} answered something that is not JSON: "
                              f"{response.text[:200]!r}") from None

    def info(self) -> CandidateInfo:
        return CandidateInfo.model_validate(self._call("GET", "/info"))

    def reset(self, endpoints: dict[str, str]) -> None:
        self._call("POST", "/reset", ResetRequest(endpoints=endpoints).model_dump())

    def act(self, action: str, params: dict[str, Any], case_id: str | None,
            report: type[R] = ActionReport) -> tuple[R, float]:  # type: ignore[assignment]
        """Run one action; returns its report (as the action's ``report`` model) and the time it took (ms)."""
        started = time.perf_counter()
        raw = self._call("POST", f"/actions/{action}", ActionRequest(params=params, case_id=case_id).model_dump())
        elapsed = (time.perf_counter() - started) * 1000
        return read_report(raw, report, f"driver action {action}"), elapsed

    def callback(self, url: str, case_id: str | None, report: type[R] = ActionReport) -> R:  # type: ignore[assignment]
        """Hand the candidate the URL the user's browser landed on (end of a browser flow)."""
        raw = self._call("POST", "/callback", CallbackRequest(url=url, case_id=case_id).model_dump())
        return read_report(raw, report, "driver callback")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DriverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def contract_app() -> FastAPI:
    """A stub app whose OpenAPI document *is* the published contract."""
    app = FastAPI(title="esante-conformance candidate driver API", version="1.0.0",
                  description=__doc__ or "")

    @app.get(f"{API_PREFIX}/info", response_model=CandidateInfo, summary="Declared identity of the candidate")
    def info() -> CandidateInfo:  # pragma: no cover - contract only
        raise NotImplementedError

    @app.post(f"{API_PREFIX}/reset", status_code=204, summary="Forget all local state before a test case")
    def reset(body: ResetRequest) -> None:  # pragma: no cover - contract only
        raise NotImplementedError

    @app.post(f"{API_PREFIX}/actions/{{action}}", response_model=ActionReport,
              summary="Perform one user-level action and report what the software did")
    def act(action: str, body: ActionRequest) -> ActionReport:  # pragma: no cover - contract only
        raise NotImplementedError

    @app.post(f"{API_PREFIX}/callback", response_model=ActionReport,
              summary="The user's browser landed on one of the candidate's URLs; handle it and report")
    def callback(body: CallbackRequest) -> ActionReport:  # pragma: no cover - contract only
        raise NotImplementedError

    return app
