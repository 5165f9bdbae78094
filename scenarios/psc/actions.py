"""The Pro Santé Connect driver actions: what a professional does in a software that integrates PSC.

* ``psc.login`` — the user clicks "Se connecter avec Pro Santé Connect" and signs in as the step's
  professional; a browser flow (the candidate answers ``redirect``; the harness fills the login page with
  the professional's national id and hands the candidate the callback).
* ``psc.show_profile`` — the user opens a page that needs the professional's current PSC data (the
  software calls userinfo, refreshing its access token as needed).
* ``psc.logout`` — the user clicks "Se déconnecter". A browser flow when the software also ends the PSC
  session (it should).
* ``psc.ciba_login`` — a thick client signs in through its intermediary server with CIBA; the professional
  approves on the e-CPS app (``with: {channel: CARD}``, default MOBILE).
* ``psc.call_api`` — the software calls an "API Pro Santé connectée": it exchanges its PSC access token for
  a token bound to its structure certificate (RFC 8693 + RFC 8705) (``with: {structure: S001}``, default S001).

The sign-in actions report the professional signed in (:class:`SignInReport`); ``psc.call_api`` only its
outcome.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import (
    ActionOutcome,
    ActionReport,
    Dataset,
    SignInReport,
    Step,
    action,
    ask_professional,
    professional_payload,
    structure_payload,
)
from esante.scenarios.psc.models import CallApi, CibaLogin, Login, NoParams

#: What a software may report for an action of this service (operator mode offers these, and only these).
OUTCOMES = (ActionOutcome.SIGNED_IN, ActionOutcome.SIGNED_OUT, ActionOutcome.COMPLETED, ActionOutcome.REFUSED,
            ActionOutcome.ERROR, ActionOutcome.UNAVAILABLE)


def _login_page(params: dict[str, Any]) -> dict[str, str]:
    """What the professional does on PSC's login page: choose who they are and how they authenticate."""
    return {"national_id": params["professional"]["national_id"], "channel": params.get("channel", "MOBILE")}


@action("psc.login", title="Sign in with Pro Santé Connect", params=Login, report=SignInReport,
        operator_questions=ask_professional,
        instruction="Click \"Se connecter avec Pro Santé Connect\" and, on the PSC page, sign in as "
                    "{professional[national_id]} ({professional[given_name]} {professional[family_name]}).",
        browser_form=_login_page, outcomes=OUTCOMES)
def login(step: Step, dataset: Dataset) -> Login:
    return Login(professional=professional_payload(dataset, step))


@action("psc.show_profile", title="Show the signed-in professional's profile", params=NoParams,
        report=SignInReport, operator_questions=ask_professional,
        instruction="Open the page showing the signed-in professional's identity and practice (from PSC).",
        outcomes=OUTCOMES)
def show_profile(step: Step, dataset: Dataset) -> NoParams:
    return NoParams()


@action("psc.logout", title="Sign out", params=NoParams, report=SignInReport,
        instruction="Click \"Se déconnecter\".", outcomes=OUTCOMES)
def logout(step: Step, dataset: Dataset) -> NoParams:
    return NoParams()


@action("psc.ciba_login", title="Sign in from the thick client (CIBA, e-CPS)", params=CibaLogin,
        report=SignInReport, operator_questions=ask_professional,
        instruction="In the thick client, sign in with PSC as {professional[national_id]} using {channel}; "
                    "approve the request on the e-CPS app (the simulator's /ecps page).", outcomes=OUTCOMES)
def ciba_login(step: Step, dataset: Dataset) -> CibaLogin:
    return CibaLogin(professional=professional_payload(dataset, step), channel=step.with_.get("channel", "MOBILE"))


@action("psc.call_api", title="Call an API Pro Santé connectée", params=CallApi, report=ActionReport,
        instruction="Use the feature that calls an API Pro Santé connectée on behalf of {structure[name]}.",
        outcomes=OUTCOMES)
def call_api(step: Step, dataset: Dataset) -> CallApi:
    return CallApi(structure=structure_payload(dataset, step.with_.get("structure", "S001")))
