"""The citizen's record over REST-FHIR R4: Mon espace santé's side of the FHIR kit's REST layer (a
:class:`~esante.simulators.kits.fhir.rest.Backend`). It says who may call (an active pairing, the scope of
the interaction), applies MES's rules to writes (measures: a MesBundleFluxAlimentation transaction; documents;
appointments), keys writes by the app's own identifier so that a retry files nothing twice (FHIR conditional
create and update), files documents in the DMP too, and plays the ``lose_response`` behaviour (the write is
filed, then its answer lost)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.runtime import Simulator
from esante.simulators.dataset.models import Patient
from esante.simulators.kits.fhir.errors import FhirError, Invalid, problem
from esante.simulators.kits.fhir.media import fhir_response
from esante.simulators.kits.fhir.rest import Backend, FhirServer, Write
from esante.simulators.kits.fhir.search import Search
from esante.simulators.kits.fhir.store import ResourceStore
from esante.simulators.kits.fhir.values import reference_test
from esante.simulators.mes import agenda, documents, measures
from esante.simulators.mes.access import Access, Caller, not_paired
from esante.simulators.mes.dmp import file_in_dmp
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.protocol import RETRY_AFTER, mes_patient_id
from esante.simulators.mes.state import MesState

#: The scope that reads each resource type (a measure's device and the citizen come with the measures).
READ_SCOPES = {"Observation": "Observation", "DocumentReference": "DocumentReference", "Appointment": "Appointment",
               "Device": "Observation", "Patient": "Observation"}
#: What MES's journal calls each interaction, for the test kit's checks.
OPERATIONS = {"create": {"DocumentReference": "document", "Appointment": "appointment"},
              "update": {"Appointment": "appointment"}}
CITIZEN_PARAMS = ("patient", "subject")


@dataclass(frozen=True, slots=True)
class Context:
    """An authorised call: who (the pairing and its citizen), and the citizen's record."""

    caller: Caller
    store: ResourceStore


class Records(Backend):
    """The FHIR API on the citizens' records; ``simulator`` gives the lab's DMP."""

    def __init__(self, simulator: Simulator, state: MesState, access: Access) -> None:
        self.simulator, self.state, self.access = simulator, state, access
        self.server: FhirServer | None = None  # set by the simulator once the server is built

    def open(self, request: Request, interaction: str, resource_type: str | None) -> Context:
        notes = MesNotes.of(request)
        if interaction == "transaction":
            notes.operation, scope = "transaction", "patient/Observation.write"
        elif interaction in ("create", "update"):
            notes.operation, scope = OPERATIONS[interaction][str(resource_type)], f"patient/{resource_type}.write"
        else:
            notes.operation = "search" if interaction == "search-type" else "read"
            scope = f"patient/{READ_SCOPES[str(resource_type)]}.read"
        caller = self.access.api(request, scope)
        return Context(caller, self.state.record(caller.patient.id, patient_resource(caller.patient)))

    def check_search(self, request: Request, context: Context, resource_type: str, search: Search) -> None:
        """A search may name the paired citizen only (another citizen's data is not the app's to ask for)."""
        own = reference_test(context.caller.reference)
        for found in search.filters:
            if found.param.name in CITIZEN_PARAMS:
                asked = [v for v in found.asked[1].split(",") if v]
                if not all(own(value) or own(f"Patient/{value}") for value in asked):
                    raise not_paired()

    def check(self, request: Request, context: Context, write: Write) -> None:
        """MES's rules on a document or an appointment; what keys it against retries."""
        notes, patient = MesNotes.of(request), context.caller.reference
        if write.resource_type == "DocumentReference":
            key, _ = documents.validate_document(write.resource, patient)
            write.criteria = write.criteria or urlencode([("identifier", key)])  # a retried push is filed once
            notes.idempotency_key = key
            return
        key = agenda.validate_appointment(write.resource, patient)
        if write.criteria is not None:
            if parse_qsl(write.criteria) != [("identifier", key)]:
                raise Invalid([problem("invalid", f"the condition {write.criteria[:200]!r} must name the appointment's "
                                                  f"own identifier (identifier={key})", "Appointment.identifier")],
                              status=400)
            notes.idempotency_key = key

    async def written(self, request: Request, context: Context, write: Write, stored: dict[str, Any],
                      created: bool) -> None:
        if write.resource_type == "DocumentReference" and created:  # the DMP call blocks: off the event loop
            data = base64.b64decode(stored["content"][0]["attachment"]["data"])
            MesNotes.of(request).dmp = await run_in_threadpool(
                file_in_dmp, self.simulator.peer("dmp"), stored, context.caller.patient, data)
        _lost(request)

    async def transaction(self, request: Request, context: Context, bundle: dict[str, Any]) -> Response:
        """A MesBundleFluxAlimentation: one measure, and the device that took it, answered in request order. A
        retried bundle (its ifNoneExist finds the measure) files neither again: both entries answer 200."""
        server, store = self._server(), context.store
        entry = measures.validate_bundle(bundle, context.caller.reference)
        observations = server.types["Observation"]
        notes = MesNotes.of(request)
        with store.lock:
            known = server.match(store, observations, urlencode([("identifier", entry.key)]), "ifNoneExist") \
                if entry.key else None
            if known is not None:
                device = _device_of(store, known)
                done = {"Observation": (known, False), "Device": (device, False) if device else
                        (store.create(entry.device), True) if entry.device else (None, False)}
            else:
                device = store.create(entry.device) if entry.device is not None else None
                observation = dict(entry.observation)
                if device is not None:  # transaction: the urn:uuid reference resolved
                    observation["device"] = {"reference": f"Device/{device['id']}"}
                done = {"Observation": (store.create(observation), True),
                        **({"Device": (device, True)} if device else {})}
        notes.measure, notes.created, notes.idempotency_key = entry.kind, known is None, entry.key
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        answer = {"resourceType": "Bundle", "type": "transaction-response",
                  "entry": [server.entry_response(request, *done[kind]) for kind in kinds]}
        _lost(request)
        return fhir_response(answer)

    def _server(self) -> FhirServer:
        if self.server is None:
            raise RuntimeError("the FHIR server of Mon espace santé was not built")
        return self.server


def _device_of(store: ResourceStore, observation: dict[str, Any]) -> dict[str, Any] | None:
    reference = (observation.get("device") or {}).get("reference", "")
    return store.get("Device", reference.removeprefix("Device/")) if reference.startswith("Device/") else None


def _lost(request: Request) -> None:
    """The lose_response behaviour: the write was filed, the answer does not reach the app."""
    if "lose_response" in behaviours_of(request):
        MesNotes.of(request).response_lost = True
        raise FhirError(503, "transient", "the answer was lost on the way back (gateway)",
                        headers={"Retry-After": str(RETRY_AFTER)})


def patient_resource(patient: Patient) -> dict[str, Any]:
    """The citizen as FR Core Patient, with the INS as identifier."""
    return {"resourceType": "Patient", "id": mes_patient_id(patient.ins.nir),
            "identifier": [{"use": "official", "system": f"urn:oid:{patient.ins.oid}",
                            "value": patient.ins.nir + patient.ins.key}],
            "name": [{"use": "official", "family": patient.birth_name, "given": patient.first_names}],
            "gender": {"M": "male", "F": "female"}[patient.sex], "birthDate": patient.birth_date}
