"""The reference candidate's Pro Santé Connect part: the driver's ``psc.*`` actions on a fresh web session of
the application (:class:`~.application.PscCandidate`) per ``/reset``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esante.harness.reference.parts import NoParams, NotConfigured, Part, ReferenceContext, validated
from esante.harness.reference.psc.application import PscCandidate, guarded
from esante.harness.reference.psc.models import CallApiParams, CibaLoginParams, LoginParams, PscReport


class PscPart(Part):
    """The ``psc.*`` actions on a fresh web session per ``/reset`` (discovery and keys are read again)."""

    actions = ("psc.login", "psc.show_profile", "psc.logout", "psc.ciba_login", "psc.call_api")
    callback_prefix = "/psc/"

    def __init__(self, context: ReferenceContext) -> None:
        super().__init__(context)
        self.session: PscCandidate | None = None

    def reset(self, endpoints: dict[str, str]) -> None:
        self.close()
        base = endpoints.get("psc")
        if base:
            self.session = PscCandidate(base, self.context.pki_dir, self.context.ca_pem_for(base), self.defects)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _web(self) -> PscCandidate:
        if self.session is None:
            raise NotConfigured("no Pro Santé Connect endpoint was given on /reset")
        return self.session

    def act(self, action: str, params: dict[str, Any], own_url: str) -> PscReport:
        """Validate the step's parameters (a 422 is the harness's mistake), then do what the user clicked."""
        work = _work(action, params, own_url)
        web = self._web()
        return guarded(lambda: work(web))

    def callback(self, url: str) -> PscReport:
        return self._web().callback(url)


def _work(action: str, raw: dict[str, Any], own_url: str) -> Callable[[PscCandidate], PscReport]:
    """One PSC action with its validated parameters, ready to run on the web session."""
    if action == "psc.login":
        validated(LoginParams, raw)
        return lambda psc: psc.login(own_url)
    if action == "psc.ciba_login":
        ciba = validated(CibaLoginParams, raw)
        return lambda psc: psc.ciba_login(ciba.professional.national_id, ciba.channel)
    if action == "psc.call_api":
        structure = validated(CallApiParams, raw).structure
        return lambda psc: psc.call_api(structure.finess, structure.name)
    validated(NoParams, raw)
    if action == "psc.logout":
        return lambda psc: psc.logout(own_url)
    return lambda psc: psc.show_profile()
