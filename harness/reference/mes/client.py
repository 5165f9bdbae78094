"""The reference partner app's Mon espace santé client: what a correct partner does.

* pairing is the authorization code with PKCE S256 and a fresh 64-hex ``state``; the answer's ``state``
  must be one of a pairing in progress before anything else is done; a refusal (``access_denied``) is
  reported, and no token is asked for; the code is redeemed with HTTP Basic and the verifier;
* the access token is refreshed before it expires (refresh tokens rotate: the new one replaces the old);
* a 401 for a revoked or expired *token* is met by one refresh and one new try; a 401 for a pairing the
  citizen revoked (or that expired) ends the pairing: no more calls, the user is asked to pair again;
* 429: wait as ``Retry-After`` says, then try again (a few times at most); 5xx or no answer: two retries,
  then "unavailable"; any other 4xx is final and reported with MES's ``OperationOutcome`` diagnostics;
* every write is keyed by the app's own identifier, so that a retry files nothing twice.

Each named defect (``defects.yaml``, campaign ``mes``) bends one of these rules. Shares no code with the
simulator or the checks that judge it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from esante.harness.reference.defects import Defects
from esante.simulators.core.pki import client_ssl_context
from esante.simulators.mes.protocol import AUTHORIZE_PATH, FHIR_JSON, TOKEN_PATH

SCOPE = ("patient/Observation.read patient/Observation.write patient/DocumentReference.write "
         "patient/Appointment.read patient/Appointment.write offline_access")
REFRESH_MARGIN = 30.0          # seconds; at most half the token's lifetime
RETRIES = 2                    # after a 5xx or no answer
STORM_RETRIES = 5              # the mes_retries_without_limit defect
MAX_THROTTLED = 3              # 429s met by one call before giving up
RETRY_PAUSE = 0.2
MAX_RETRY_AFTER = 10.0
MAX_PENDING = 16


class MesError(Exception):
    """MES refused: ``code`` is the OAuth error or the OperationOutcome's details code (or issue code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MesRejected(MesError):
    """MES answered a final refusal (a 4xx with its OperationOutcome) to an API call."""


class MesUnavailable(Exception):
    pass


class MesRefused(Exception):
    """The app refused an answer it must not trust."""


@dataclass(slots=True)
class PendingPairing:
    state: str
    verifier: str
    redirect_uri: str


@dataclass(slots=True)
class Pairing:
    access_token: str
    refresh_token: str | None
    expires_at: float
    lifetime: float
    patient_ref: str
    pairing_id: str
    ended: str | None = None  # PAIRING_REVOKED / PAIRING_EXPIRED once MES said so


def outcome_of(response: httpx.Response) -> tuple[str, str]:
    """(code, diagnostics) of an OperationOutcome or OAuth error answer."""
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}", response.text[:200]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issue = (body.get("issue") or [{}])[0]
        details = ((issue.get("details") or {}).get("coding") or [{}])[0].get("code")
        messages = "; ".join(str(i.get("diagnostics", "")) for i in body.get("issue") or [])
        return str(details or issue.get("code") or "error"), messages
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("error_description", ""))
    return f"http_{response.status_code}", response.text[:200]


class MesClient:
    """One partner registration (client id + secret) talking to one Mon espace santé."""

    def __init__(self, base_url: str, *, client_id: str, secret: str, ca_pem: bytes | None,
                 defects: Defects) -> None:
        self.base_url, self.client_id, self.secret, self.defects = base_url.rstrip("/"), client_id, secret, defects
        verify = client_ssl_context(ca_pem) if ca_pem is not None else True
        self.http = httpx.Client(base_url=self.base_url, verify=verify, timeout=15.0)

    def close(self) -> None:
        self.http.close()

    # -- pairing -----------------------------------------------------------------------------------------
    def begin_pairing(self, redirect_uri: str) -> tuple[str, PendingPairing]:
        verifier = secrets.token_urlsafe(48)
        state = "mes-state" if self.defects.on("mes_static_state") else secrets.token_hex(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                           "scope": SCOPE, "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        return f"{self.base_url}{AUTHORIZE_PATH}?{query}", PendingPairing(state, verifier, redirect_uri)

    def complete_pairing(self, url: str, pending: dict[str, PendingPairing]) -> Pairing:
        params = dict(parse_qsl(urlsplit(url).query))
        found = pending.pop(params.get("state", ""), None)
        if found is None and self.defects.on("mes_ignores_state") and pending:
            found = pending.pop(next(reversed(pending)))
        if found is None:
            raise MesRefused("pairing answer with a state matching no pairing in progress: ignored")
        if "error" in params and not self.defects.on("mes_redeems_after_refusal"):
            raise MesError(params["error"], params.get("error_description", "MES refused the pairing"))
        form = {"grant_type": "authorization_code", "code": params.get("code", ""),
                "redirect_uri": found.redirect_uri}
        if not self.defects.on("mes_token_without_verifier"):
            form["code_verifier"] = found.verifier
        return self._tokens(form)

    def _tokens(self, form: dict[str, str], previous: Pairing | None = None) -> Pairing:
        try:
            response = self.http.post(TOKEN_PATH, data=form, auth=(self.client_id, self.secret))
        except httpx.HTTPError as exc:
            raise MesUnavailable(f"Mon espace santé could not be reached: {exc}") from None
        if response.status_code >= 500:
            raise MesUnavailable(f"Mon espace santé answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise MesError(*outcome_of(response))
        body = response.json()
        lifetime = float(body.get("expires_in", 60))
        patient = str(body.get("patient") or (previous.patient_ref.split("/")[1] if previous else ""))
        return Pairing(body["access_token"], body.get("refresh_token") or (previous and previous.refresh_token),
                       time.time() + lifetime, lifetime, f"Patient/{patient}",
                       str(body.get("pairing_id") or (previous.pairing_id if previous else "")))

    def refresh(self, pairing: Pairing) -> Pairing:
        if not pairing.refresh_token:
            raise MesError("PAIRING_EXPIRED", "no refresh token: pair again")
        return self._tokens({"grant_type": "refresh_token", "refresh_token": pairing.refresh_token}, pairing)

    def _fresh(self, pairing: Pairing) -> Pairing:
        if self.defects.on("mes_no_proactive_refresh"):
            return pairing
        if pairing.expires_at - time.time() <= min(REFRESH_MARGIN, pairing.lifetime / 2):
            return self.refresh(pairing)
        return pairing

    # -- API calls ----------------------------------------------------------------------------------------
    def call(self, pairing: Pairing, method: str, path: str, *, json: Any = None,
             params: dict[str, Any] | None = None) -> tuple[Pairing, httpx.Response]:
        """One API call under the retry policy; returns the (maybe refreshed) pairing and MES's answer."""
        if pairing.ended and not self.defects.on("mes_ignores_revocation"):
            raise MesError(pairing.ended, "the citizen ended the pairing in Mon espace santé: pair again")
        pairing = self._fresh(pairing)
        refreshed, throttled, failures = False, 0, 0
        retries = STORM_RETRIES if self.defects.on("mes_retries_without_limit") else RETRIES
        while True:
            headers = {"Authorization": f"Bearer {pairing.access_token}", "Accept": FHIR_JSON}
            if json is not None:
                headers["Content-Type"] = FHIR_JSON
            try:
                response = self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.HTTPError as exc:
                response, problem = None, f"{type(exc).__name__}: {exc}"
            if response is not None and response.status_code < 500 and response.status_code != 429:
                if response.status_code != 401:
                    return pairing, response
                pairing = self._unauthorized(pairing, response, refreshed)
                refreshed = True
                continue
            if response is not None and response.status_code == 429:
                throttled += 1
                if throttled > MAX_THROTTLED:
                    raise MesUnavailable("Mon espace santé keeps throttling the app: try again later")
                if not self.defects.on("mes_ignores_retry_after"):
                    time.sleep(_retry_after(response))
                continue
            failures += 1
            problem = f"HTTP {response.status_code}" if response is not None else problem
            if failures > retries:
                raise MesUnavailable(f"Mon espace santé is unavailable ({problem})")
            time.sleep(RETRY_PAUSE)

    def _unauthorized(self, pairing: Pairing, response: httpx.Response, refreshed: bool) -> Pairing:
        code, message = outcome_of(response)
        if code in ("PAIRING_REVOKED", "PAIRING_EXPIRED") and not self.defects.on("mes_ignores_revocation"):
            pairing.ended = code
            raise MesError(code, f"{message}: the app is no longer connected to Mon espace santé; pair again")
        if refreshed:
            raise MesError(code, message)
        return self.refresh(pairing)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return 1.0
