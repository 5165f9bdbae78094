"""Who may call the FHIR API: an access token of an active pairing (RFC 6750), the scope the call needs, and
the rate limit. Each refusal is an OperationOutcome whose ``details`` code says why (``TOKEN_EXPIRED``,
``PAIRING_REVOKED``, ``SCOPE``...), so that an app can tell "refresh and retry" from "ask to pair again"."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.runtime import Simulator
from esante.simulators.dataset.models import Patient
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.oauth.requests import bearer_token
from esante.simulators.kits.oauth.server import IssuedToken
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.protocol import ERROR_CODES_SYSTEM, RETRY_AFTER, mes_patient_id
from esante.simulators.mes.state import MesState, Pairing


def refusal(status: int, code: str, message: str, details: str, headers: dict[str, str] | None = None) -> FhirError:
    """A refusal of MES's own, coded in its error system."""
    return FhirError(status, code, message, details=details, details_system=ERROR_CODES_SYSTEM, headers=headers)


def unauthorized(code: str, message: str, details: str) -> FhirError:
    """401 with RFC 6750's ``WWW-Authenticate: Bearer error="invalid_token"``."""
    return refusal(401, code, message, details,
                   {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'})


def not_paired() -> FhirError:
    return refusal(403, "forbidden", "the account is not paired with this patient", "PAIRING_NONE")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authorised API call: the token, its pairing, the citizen, and the citizen as a FHIR reference."""

    token: IssuedToken
    pairing: Pairing
    patient: Patient

    @property
    def reference(self) -> str:
        return f"Patient/{mes_patient_id(self.patient.ins.nir)}"


class Access:
    """The API's gate; ``simulator`` gives the current data set, ``rate_limit`` is calls per second per pairing."""

    def __init__(self, simulator: Simulator, state: MesState, rate_limit: int) -> None:
        self.simulator, self.state, self.rate_limit = simulator, state, rate_limit

    def bearer(self, request: Request, *, check_pairing: bool = True) -> Caller:
        """The caller of a valid access token; ``check_pairing`` False lets an ended pairing's status be read."""
        notes = MesNotes.of(request)
        value = bearer_token(request)
        token = self.state.token(value, "access")
        pairing = self.state.pairing(token.grant_id) if token is not None else None
        if token is None or pairing is None:
            notes.token_state = "missing" if not value else "unknown"
            raise unauthorized("login", "no valid access token", "TOKEN_INVALID")
        notes.pairing_id, notes.client_id = pairing.id, pairing.client_id
        self._misbehave(request, token, pairing)
        expired_by = time.time() - token.expires
        notes.token_expires_in = round(-expired_by, 3)
        status = pairing.status()
        if check_pairing and status != "active":
            notes.token_state = f"pairing_{status}"
            raise unauthorized("security", pairing.ended(), f"PAIRING_{status.upper()}")
        if expired_by > 0:
            notes.token_state = "expired"
            raise unauthorized("expired", "the access token has expired", "TOKEN_EXPIRED")
        if not token.active and (check_pairing or status == "active"):  # ending a pairing revokes its tokens:
            notes.token_state = "revoked"                                # its status can still be read
            raise unauthorized("security", "the access token was revoked", "TOKEN_REVOKED")
        notes.token_state = "valid"
        return Caller(token, pairing, self.simulator.dataset.patient(pairing.patient_id))

    def _misbehave(self, request: Request, token: IssuedToken, pairing: Pairing) -> None:
        """The behaviours that end the token or the pairing just before the call."""
        behaviours = behaviours_of(request)
        if "revoke_pairing" in behaviours:
            self.state.end_pairing(pairing, "user")
        if "revoke_token" in behaviours:
            token.active = False
        if "expire_pairing" in behaviours:
            pairing.expires = min(pairing.expires, time.time())

    def api(self, request: Request, scope: str) -> Caller:
        """Authorise an API call: a valid token of an active pairing, the scope, the rate limit."""
        caller = self.bearer(request)
        if scope not in caller.token.scope.split():
            raise refusal(403, "forbidden", f"the pairing does not grant {scope}", "SCOPE")
        if "rate_limited" in behaviours_of(request) or self.state.over_limit(caller.pairing.id, self.rate_limit):
            raise refusal(429, "throttled", "too many requests: retry after the delay given", "RATE_LIMIT",
                          {"Retry-After": str(RETRY_AFTER)})
        return caller
