"""The Pro Santé Connect driver actions: what a professional does in a software that integrates PSC.

* ``psc.login`` — the user clicks "Se connecter avec Pro Santé Connect" and signs in as the step's
  professional; a browser flow (the candidate answers ``redirect``; the harness fills the login page with
  the professional's national id and hands the candidate the callback). Params ``{professional}``.
* ``psc.show_profile`` — the user opens a page that needs the professional's current PSC data (the
  software calls userinfo, refreshing its access token as needed). No params.
* ``psc.logout`` — the user clicks "Se déconnecter". A browser flow when the software also ends the PSC
  session (it should). No params.
* ``psc.ciba_login`` — a thick client signs in through its intermediary server with CIBA; the professional
  approves on the e-CPS app. Params ``{professional, channel}`` (``with: {channel: CARD}``, default MOBILE).
* ``psc.call_api`` — the software calls an "API Pro Santé connectée": it exchanges its PSC access token for
  a token bound to its structure certificate (RFC 8693 + RFC 8705). Params ``{structure}`` (``with:
  {structure: S001}``, default the professional's or S001).
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import Step, action
from esante.simulators.dataset import Dataset


def _professional(step: Step, dataset: Dataset) -> dict[str, Any]:
    if step.professional is None:
        raise ValueError(f"step {step.action} needs a 'professional'")
    p = dataset.professional(step.professional)
    return {"id": p.id, "national_id": p.national_id, "family_name": p.family_name, "given_name": p.given_name}


def _login_page(params: dict[str, Any]) -> dict[str, str]:
    """What the professional does on PSC's login page: choose who they are and how they authenticate."""
    return {"national_id": params["professional"]["national_id"], "channel": params.get("channel", "MOBILE")}


@action("psc.login", title="Sign in with Pro Santé Connect",
        instruction="Click \"Se connecter avec Pro Santé Connect\" and, on the PSC page, sign in as "
                    "{professional[national_id]} ({professional[given_name]} {professional[family_name]}).",
        browser_form=_login_page)
def login(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {"professional": _professional(step, dataset)}


@action("psc.show_profile", title="Show the signed-in professional's profile",
        instruction="Open the page showing the signed-in professional's identity and practice (from PSC).")
def show_profile(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {}


@action("psc.logout", title="Sign out", instruction="Click \"Se déconnecter\".")
def logout(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {}


@action("psc.ciba_login", title="Sign in from the thick client (CIBA, e-CPS)",
        instruction="In the thick client, sign in with PSC as {professional[national_id]} using {channel}; "
                    "approve the request on the e-CPS app (the simulator's /ecps page).")
def ciba_login(step: Step, dataset: Dataset) -> dict[str, Any]:
    channel = step.with_.get("channel", "MOBILE")
    if channel not in ("CARD", "MOBILE"):
        raise ValueError(f"psc.ciba_login channel must be CARD or MOBILE, not {channel!r}")
    return {"professional": _professional(step, dataset), "channel": channel}


@action("psc.call_api", title="Call an API Pro Santé connectée",
        instruction="Use the feature that calls an API Pro Santé connectée on behalf of {structure[name]}.")
def call_api(step: Step, dataset: Dataset) -> dict[str, Any]:
    structure = dataset.structure(step.with_.get("structure", "S001"))
    return {"structure": {"id": structure.id, "finess": structure.finess, "name": structure.name}}
