"""The Mon espace santé simulator: pairing (:mod:`.pairing`), the REST-FHIR R4 record (:mod:`.records`, behind
:mod:`.access`), the service catalogue and the referencing window (:mod:`.referencing`); paths in
:mod:`.protocol`, design choices in ``DESIGN.md``. Errors are OAuth's JSON on the pairing endpoints and an
OperationOutcome everywhere else."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar

from fastapi import APIRouter
from starlette.responses import Response

from esante.simulators.core.notes import Notes
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.rest import METHODS, SMART_CONFIGURATION, FhirServer
from esante.simulators.kits.fhir.store import instant
from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.routes import Route, router_of
from esante.simulators.mes import api
from esante.simulators.mes.access import Access
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.pairing import PairingServer
from esante.simulators.mes.protocol import (
    AUTHORIZE_PATH,
    CATALOGUE_PATH,
    CONSENT_PATH,
    CRITERIA_PATH,
    DOSSIERS_PATH,
    FHIR_BASE,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    PAIRING_PATH,
    RETRY_AFTER,
    REVOKE_PATH,
    TOKEN_PATH,
    USER_PAIRINGS_PATH,
)
from esante.simulators.mes.records import Records
from esante.simulators.mes.referencing import ReferencingWindow
from esante.simulators.mes.state import MesState

_STARTED = instant()  # the CapabilityStatement's date: when this software started


def _version() -> str:
    try:
        return version("esante-conformance")
    except PackageNotFoundError:
        return "0.0.0+source"


class MesSimulator(Simulator):
    """Mon espace santé as a partner app meets it.

    Options: ``rate_limit`` — calls per second per pairing before 429 (default 50).
    """

    name: ClassVar[str] = "mes"
    title: ClassVar[str] = "Mon espace santé"
    notes_model: ClassVar[type[Notes]] = MesNotes

    def __init__(self, dataset: Dataset, *, rate_limit: int = 50) -> None:
        super().__init__(dataset)
        self.rate_limit = int(rate_limit)
        self.state = MesState()
        access = Access(self, self.state, self.rate_limit)
        self.pairing = PairingServer(self, self.state, access)
        self.records = Records(self, self.state, access)
        self.fhir = FhirServer(FHIR_BASE, api.resource_types(), self.records, api.description(_version(), _STARTED),
                               page_size=PAGE_SIZE, max_page=MAX_PAGE_SIZE)
        self.records.server = self.fhir
        self.referencing = ReferencingWindow(self, self.state)

    def reset(self) -> None:
        self.state.reset()

    def error_response(self, error: ServiceError) -> Response:
        spec = self.injected_fault(error)
        if spec is not None:
            return FhirError(spec.status, spec.answer["issue"], spec.description,
                             headers={"Retry-After": str(RETRY_AFTER)}).response()
        if error.kind == "too_large":
            return FhirError(413, "too-costly", error.message).response()
        return FhirError(500, "exception", error.message).response()

    def router(self) -> APIRouter:
        pairing, window = self.pairing, self.referencing
        routes: list[Route] = [
            (AUTHORIZE_PATH, ["GET"], "authorize", pairing.authorize),
            (CONSENT_PATH, ["POST"], "consent", pairing.consent),
            (TOKEN_PATH, ["POST"], "token", pairing.token),
            (REVOKE_PATH, ["POST"], "revoke", pairing.revoke),
            (PAIRING_PATH, ["GET", "DELETE"], "pairing", pairing.pairing),
            (USER_PAIRINGS_PATH + "/{pairing_id}/revoke", ["POST"], "user_revoke", pairing.user_revoke),
            (FHIR_BASE, METHODS, "fhir", self.fhir.handle),
            (FHIR_BASE + "/{path:path}", METHODS, "fhir", self.fhir.handle),
            ("/" + SMART_CONFIGURATION, ["GET"], "smart-configuration", self.fhir.handle_smart_configuration),
            (CATALOGUE_PATH, ["GET"], "catalogue", window.catalogue),
            (CRITERIA_PATH, ["GET"], "criteria", window.criteria),
            (DOSSIERS_PATH, ["POST"], "dossier_submit", window.submit),
            (DOSSIERS_PATH + "/{dossier_id}", ["GET"], "dossier", window.dossier),
            (DOSSIERS_PATH + "/{dossier_id}/advance", ["POST"], "dossier_advance", window.advance),
        ]
        return router_of(routes, MesNotes, (OAuthError, FhirError))
