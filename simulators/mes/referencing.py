"""The service catalogue and the referencing window: the partner apps MES lists, the criteria of the
referencing framework, and an editor's dossier from submission (admissibility checked at once) through the
steps the ANS moves it on (``catalogue.LIFECYCLE``)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import Request
from starlette.responses import JSONResponse, Response

from esante.simulators.core.runtime import Simulator
from esante.simulators.kits.fhir.bodies import parse_json
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.mes import catalogue
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.state import MesState

MAX_NOTE_CHARS = 500


class ReferencingWindow:
    """The catalogue and the window; ``simulator`` gives the current data set's partners."""

    def __init__(self, simulator: Simulator, state: MesState) -> None:
        self.simulator, self.state = simulator, state

    async def catalogue(self, request: Request) -> Response:
        category = request.query_params.get("category")
        services = [{"client_id": p.client_id, "name": p.name, "editor": p.editor, "categories": p.categories,
                     "data_exchange": p.data_exchange, "status": p.status}
                    for p in self.simulator.dataset.mes_partners if category is None or category in p.categories]
        return JSONResponse({"total": len(services), "services": services})

    async def criteria(self, request: Request) -> Response:
        return JSONResponse({"criteria": [asdict(c) for c in catalogue.criteria().values()]})

    async def submit(self, request: Request) -> Response:
        """A dossier is admissible when complete and well formed (201), else inadmissible with its findings (422)."""
        result = catalogue.check_dossier(await request.body())
        dossier = catalogue.Dossier(new_id(9), result.service, "submitted", result.findings)
        dossier.step("submitted")
        dossier.step("admissible" if result.admissible else "inadmissible",
                     f"{len(result.findings)} finding(s)" if result.findings else "complete")
        self.state.add_dossier(dossier)
        notes = MesNotes.of(request)
        notes.dossier, notes.status, notes.findings = dossier.id, dossier.status, len(result.findings)
        return JSONResponse(dossier.as_json(), status_code=201 if result.admissible else 422)

    def _dossier(self, request: Request) -> catalogue.Dossier:
        dossier = self.state.dossiers.get(request.path_params["dossier_id"])
        if dossier is None:
            raise FhirError(404, "not-found", "no such dossier")
        return dossier

    async def dossier(self, request: Request) -> Response:
        return JSONResponse(self._dossier(request).as_json())

    async def advance(self, request: Request) -> Response:
        """The ANS moves the dossier on (evaluation, commission opinion, agreement, connection tests...)."""
        dossier = self._dossier(request)
        body = parse_json(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("to"), str):
            raise FhirError(400, "structure", 'the body is {"to": <next status>, "note": <text>}')
        try:
            with self.state.lock:
                dossier.advance(body["to"], str(body.get("note", ""))[:MAX_NOTE_CHARS])
        except ValueError as exc:
            raise FhirError(409, "business-rule", str(exc)) from None
        MesNotes.of(request).status = dossier.status
        return JSONResponse(dossier.as_json())
