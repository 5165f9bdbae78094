"""The reference candidate's MSSanté part: the driver's ``mss.*`` actions on a fresh :class:`MssCandidate` per
``/reset``. Transient failures are retried twice; permanent refusals are reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from esante.harness.driver import ActionOutcome
from esante.harness.reference.mssante.candidate import MssCandidate, report
from esante.harness.reference.mssante.models import LoginParams, LookupParams, MssReport, SendParams
from esante.harness.reference.mssante.transport import MailFailure
from esante.harness.reference.parts import NoParams, NotConfigured, Part, ReferenceContext, validated
from esante.harness.reference.psc.tokens import PscError, PscUnavailable

Work = Callable[[MssCandidate], MssReport]


class MssPart(Part):
    actions = ("mss.login", "mss.lookup_recipient", "mss.send", "mss.integrate")
    callback_prefix = "/mss/"

    def __init__(self, context: ReferenceContext) -> None:
        super().__init__(context)
        self.candidate: MssCandidate | None = None

    def reset(self, endpoints: dict[str, str]) -> None:
        self.close()
        if endpoints.get("mssante"):
            self.candidate = MssCandidate(self.context, endpoints["mssante"], endpoints.get("psc"))

    def close(self) -> None:
        if self.candidate is not None:
            self.candidate.close()
            self.candidate = None

    def _mail(self) -> MssCandidate:
        if self.candidate is None:
            raise NotConfigured("no MSSanté endpoint was given on /reset")
        return self.candidate

    def act(self, action: str, params: dict[str, Any], own_url: str) -> MssReport:
        work = self._work(action, params, own_url)
        mail = self._mail()
        try:
            return work(mail)
        except MailFailure as exc:
            return report(exc.outcome, str(exc))
        except PscError as exc:
            return report(ActionOutcome.ERROR, f"Pro Santé Connect: {exc}", error_code=exc.error)
        except (httpx.HTTPError, PscUnavailable) as exc:  # the directory or PSC unreachable: the user is told so
            return report(ActionOutcome.UNAVAILABLE, str(exc))

    @staticmethod
    def _work(action: str, params: dict[str, Any], own_url: str) -> Work:
        """The action to do, its parameters validated first (a bad request is the harness's mistake: 422)."""
        if action == "mss.login":
            validated(LoginParams, params)
            return lambda mss: mss.login(own_url)
        if action == "mss.lookup_recipient":
            recipient = validated(LookupParams, params).recipient
            return lambda mss: mss.lookup(recipient)
        if action == "mss.send":
            send = validated(SendParams, params)
            return lambda mss: mss.send(send)
        validated(NoParams, params)
        return lambda mss: mss.integrate()

    def callback(self, url: str) -> MssReport:
        return self._mail().callback(url)
