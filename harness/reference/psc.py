"""The reference candidate as a web application signing professionals in with Pro Santé Connect.

It holds what a web application holds: the sign-ins in progress (by ``state``), the professional's session,
the logout in progress. The driver's ``psc.*`` actions are the user's clicks; ``/callback`` is the browser
arriving at the application's redirect URIs (``/psc/callback``, ``/psc/logged-out``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harness.driver import ActionOutcome, ActionReport, ProfessionalSession
from harness.reference.defects import Defects
from harness.reference.psc_client import PendingLogin, PscClient, PscError, PscRefused, PscUnavailable, Session
from simulators.core.pki import TestCA
from simulators.dataset import load_dataset

CLIENT_ID = "esante-reference-rp"
CALLBACK_PATH = "/psc/callback"
LOGGED_OUT_PATH = "/psc/logged-out"
CERT_CN = "ESANTE-REFERENCE-RP"  # registered tls_client_auth_cn of the reference relying party


def _report(outcome: ActionOutcome, message: str = "", **fields: Any) -> ActionReport:
    return ActionReport(outcome=outcome, message=message, **fields)


def _failure(exc: Exception) -> ActionReport:
    if isinstance(exc, PscUnavailable):
        return _report(ActionOutcome.UNAVAILABLE, str(exc))
    if isinstance(exc, PscRefused):
        return _report(ActionOutcome.REFUSED, str(exc))
    error = exc.error if isinstance(exc, PscError) else "error"
    return _report(ActionOutcome.ERROR, str(exc), error_code=error)


class PscCandidate:
    """One user's web session with the application (the harness plays one user per test case)."""

    def __init__(self, base_url: str, pki_dir: Path, ca_pem: bytes | None, defects: Defects) -> None:
        registration = load_dataset().oidc_client(CLIENT_ID)
        self.defects, self.pki_dir = defects, pki_dir
        self.client = PscClient(base_url, client_id=CLIENT_ID, secret=registration.secret or "", ca_pem=ca_pem,
                                defects=defects)
        self.pending: dict[str, PendingLogin] = {}
        self.session: Session | None = None
        self.logout_state: str | None = None

    def close(self) -> None:
        self.client.close()

    # -- actions --------------------------------------------------------------------------------------------
    def act(self, action: str, params: dict[str, Any], own_url: str) -> ActionReport:
        handlers: dict[str, Callable[[], ActionReport]] = {
            "psc.login": lambda: self.login(own_url),
            "psc.show_profile": self.show_profile,
            "psc.logout": lambda: self.logout(own_url),
            "psc.ciba_login": lambda: self.ciba_login(params),
            "psc.call_api": lambda: self.call_api(params),
        }
        try:
            return handlers[action]()
        except (PscUnavailable, PscRefused, PscError) as exc:
            return _failure(exc)

    def login(self, own_url: str) -> ActionReport:
        url, pending = self.client.begin_login(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        return _report(ActionOutcome.REDIRECT, "sent to Pro Santé Connect", redirect_url=url)

    def show_profile(self) -> ActionReport:
        if self.session is None:
            return _report(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        try:
            self.session = self._fresh(self.session)
        except PscError as exc:
            if exc.error != "invalid_grant":
                raise
            if self.defects.on("psc_ignores_refresh_failure"):
                return self._signed_in(self.session, "shown from the cached profile")
            self.session = None
            return _report(ActionOutcome.SIGNED_OUT, "the PSC session is over: please sign in again")
        return self._signed_in(self.session, "profile read from PSC")

    def _fresh(self, session: Session) -> Session:
        if self.defects.on("psc_no_proactive_refresh"):
            try:
                session.claims = self.client.userinfo(session)
                return session
            except PscError as exc:
                if exc.error != "invalid_token":
                    raise
            return self.client.refresh(session)
        if self.client.needs_refresh(session):
            return self.client.refresh(session)
        session.claims = self.client.userinfo(session)
        return session

    def logout(self, own_url: str) -> ActionReport:
        session, self.session = self.session, None
        if session is None or self.defects.on("psc_local_logout_only"):
            return _report(ActionOutcome.SIGNED_OUT, "signed out of the application")
        self.logout_state = secrets.token_urlsafe(24)
        url = self.client.logout_url(session, own_url + LOGGED_OUT_PATH, self.logout_state)
        return _report(ActionOutcome.REDIRECT, "signing out of Pro Santé Connect", redirect_url=url)

    def ciba_login(self, params: dict[str, Any]) -> ActionReport:
        national_id = str((params.get("professional") or {}).get("national_id", ""))
        self.session = self.client.ciba_login(national_id, str(params.get("channel", "MOBILE")))
        return self._signed_in(self.session, "signed in from the thick client (CIBA)")

    def call_api(self, params: dict[str, Any]) -> ActionReport:
        if self.session is None:
            return _report(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        structure = params.get("structure") or {}
        cert = None if self.defects.on("psc_token_exchange_without_mtls") else self._certificate(structure)
        answer = self.client.token_exchange(self._fresh(self.session), cert)
        return _report(ActionOutcome.COMPLETED, f"API token obtained ({answer.get('issued_token_type')}), bound "
                                                f"to the structure certificate of {structure.get('finess')}")

    def _certificate(self, structure: dict[str, Any]) -> tuple[Path, Path]:
        ca = TestCA.load_or_create(self.pki_dir)
        issued = ca.issue_structure(str(structure.get("finess")), str(structure.get("name")), cn=CERT_CN)
        return issued.write(self.pki_dir / "reference", f"psc-structure-{structure.get('finess')}")

    # -- the browser comes back ----------------------------------------------------------------------------
    def callback(self, url: str) -> ActionReport:
        path = urlsplit(url).path
        try:
            if path == CALLBACK_PATH:
                self.session = self.client.complete_login(url, self.pending)
                return self._signed_in(self.session, "signed in with Pro Santé Connect")
            if path == LOGGED_OUT_PATH:
                state = dict(parse_qsl(urlsplit(url).query)).get("state")
                if state != self.logout_state:
                    return _report(ActionOutcome.REFUSED, "post-logout redirect with an unknown state")
                return _report(ActionOutcome.SIGNED_OUT, "signed out of the application and of PSC")
        except (PscUnavailable, PscRefused, PscError) as exc:
            return _failure(exc)
        return _report(ActionOutcome.ERROR, f"the application has no page at {path}")

    def _signed_in(self, session: Session, message: str) -> ActionReport:
        claims = session.claims
        if self.defects.on("psc_keys_on_sub"):
            user_id = str(claims.get("sub"))
        elif self.defects.on("psc_keys_on_email"):
            user_id = str(claims.get("email") or claims.get("sub"))
        else:
            user_id = str(claims.get("SubjectNameID"))
        professional = ProfessionalSession(user_id=user_id, family_name=claims.get("family_name"),
                                           given_name=claims.get("given_name"))
        return _report(ActionOutcome.SIGNED_IN, message, professional=professional)
