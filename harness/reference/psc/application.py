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

from esante.harness.driver import ActionOutcome
from esante.harness.reference.defects import Defects
from esante.harness.reference.psc.client import MAX_PENDING_LOGINS, PendingLogin, PscClient, Session
from esante.harness.reference.psc.models import PscReport, SignedInProfessional
from esante.harness.reference.psc.tokens import (
    PscError,
    PscRefused,
    PscUnavailable,
    bound_thumbprint,
    certificate_thumbprint,
)
from esante.simulators.core.pki import TestCA
from esante.simulators.dataset import load_dataset

CLIENT_ID = "esante-reference-rp"
CALLBACK_PATH = "/psc/callback"
LOGGED_OUT_PATH = "/psc/logged-out"
CERT_CN = "ESANTE-REFERENCE-RP"  # registered tls_client_auth_cn of the reference relying party


def _report(outcome: ActionOutcome, message: str = "", **fields: Any) -> PscReport:
    return PscReport(outcome=outcome, message=message, **fields)


def guarded(work: Callable[[], PscReport]) -> PscReport:
    """What the user is told when PSC fails: unavailable, a refusal of an untrustworthy answer, or PSC's error."""
    try:
        return work()
    except PscUnavailable as exc:
        return _report(ActionOutcome.UNAVAILABLE, str(exc))
    except PscRefused as exc:
        return _report(ActionOutcome.REFUSED, str(exc))
    except PscError as exc:
        return _report(ActionOutcome.ERROR, str(exc), error_code=exc.error)


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

    # -- actions (``own_url`` is the application's loopback origin, ``http://127.0.0.1:<port>``) -------------
    def login(self, own_url: str) -> PscReport:
        url, pending = self.client.begin_login(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        while len(self.pending) > MAX_PENDING_LOGINS:  # dicts keep insertion order: drop the oldest
            self.pending.pop(next(iter(self.pending)))
        return _report(ActionOutcome.REDIRECT, "sent to Pro Santé Connect", redirect_url=url)

    def show_profile(self) -> PscReport:
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
            return _report(ActionOutcome.SIGNED_OUT, f"the PSC session is over ({exc}): please sign in again")
        return self._signed_in(self.session, "profile read from PSC")

    def _fresh(self, session: Session) -> Session:
        """The session with a current profile, refreshing first when the access token is about to expire."""
        if self.defects.on("psc_no_proactive_refresh"):
            return self._refresh_when_rejected(session)
        if self.client.needs_refresh(session):
            return self.client.refresh(session)
        session.claims = self.client.userinfo(session)
        return session

    def _refresh_when_rejected(self, session: Session) -> Session:
        """The psc_no_proactive_refresh defect: present the token until PSC rejects it, then refresh."""
        try:
            session.claims = self.client.userinfo(session)
            return session
        except PscError as exc:
            if exc.error != "invalid_token":
                raise
        return self.client.refresh(session)

    def logout(self, own_url: str) -> PscReport:
        session, self.session = self.session, None
        if session is None:
            return _report(ActionOutcome.SIGNED_OUT, "no professional was signed in")
        if self.defects.on("psc_local_logout_only"):
            return _report(ActionOutcome.SIGNED_OUT, "signed out of the application")
        self.logout_state = secrets.token_hex(32)
        url = self.client.logout_url(session, own_url + LOGGED_OUT_PATH, self.logout_state)
        return _report(ActionOutcome.REDIRECT, "signing out of Pro Santé Connect", redirect_url=url)

    def ciba_login(self, national_id: str, channel: str) -> PscReport:
        self.session = self.client.ciba_login(national_id, channel)
        return self._signed_in(self.session, "signed in from the thick client (CIBA)")

    def call_api(self, finess: str, name: str) -> PscReport:
        """Exchange the PSC token for an API token bound to the structure's certificate, and make sure it is."""
        if self.session is None:
            return _report(ActionOutcome.SIGNED_OUT, "no professional is signed in")
        cert = None if self.defects.on("psc_token_exchange_without_mtls") else self._certificate(finess, name)
        self.session = self._fresh(self.session)
        answer = self.client.token_exchange(self.session, cert)
        bound = bound_thumbprint(answer)
        if cert is not None and bound != certificate_thumbprint(cert[0].read_bytes()):
            raise PscRefused(f"PSC's API token is not bound to structure {finess}'s certificate "
                             f"(cnf.x5t#S256 {bound!r})")
        where = f"cnf.x5t#S256 {bound}" if bound else "no cnf: an unbound bearer token"
        return _report(ActionOutcome.COMPLETED, f"API token ({answer.get('issued_token_type')}) obtained for "
                                                f"structure {finess}, bound to its certificate: {where}")

    def _certificate(self, finess: str, name: str) -> tuple[Path, Path]:
        """The structure's certificate, issued by the run's test CA (kept on disk like the INSi one)."""
        issued = TestCA.load_or_create(self.pki_dir).issue_structure(finess, name, cn=CERT_CN)
        return issued.write(self.pki_dir / "reference", f"psc-structure-{finess}")

    # -- the browser comes back ----------------------------------------------------------------------------
    def callback(self, url: str) -> PscReport:
        path = urlsplit(url).path
        if path == CALLBACK_PATH:
            return guarded(lambda: self._signed_in(self._complete(url), "signed in with Pro Santé Connect"))
        if path == LOGGED_OUT_PATH:
            return self._logged_out(url)
        return _report(ActionOutcome.ERROR, f"the application has no page at {path}")

    def _complete(self, url: str) -> Session:
        self.session = self.client.complete_login(url, self.pending)
        return self.session

    def _logged_out(self, url: str) -> PscReport:
        expected, self.logout_state = self.logout_state, None  # a post-logout state is good for one arrival
        state = dict(parse_qsl(urlsplit(url).query)).get("state")
        if expected is None or state != expected:
            return _report(ActionOutcome.REFUSED, "post-logout redirect with a state matching no logout in progress")
        return _report(ActionOutcome.SIGNED_OUT, "signed out of the application and of PSC")

    def _signed_in(self, session: Session, message: str) -> PscReport:
        claims = session.claims
        if self.defects.on("psc_keys_on_sub"):
            user_id = str(claims.get("sub"))
        elif self.defects.on("psc_keys_on_email"):
            user_id = str(claims.get("email") or claims.get("sub"))
        else:
            user_id = str(claims["SubjectNameID"])  # present: PscClient.userinfo refuses a profile without it
        professional = SignedInProfessional(user_id=user_id, family_name=claims.get("family_name"),
                                            given_name=claims.get("given_name"))
        return _report(ActionOutcome.SIGNED_IN, message, professional=professional)
