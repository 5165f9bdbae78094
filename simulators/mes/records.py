"""The citizen's record over REST-FHIR R4: measures (a transaction Bundle), documents, appointments, reads and
searches. Writes are idempotent by the app's own identifier (FHIR conditional create and update), so that a
retry files nothing twice; the ``lose_response`` behaviour files a write and then loses its answer."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.runtime import Simulator
from esante.simulators.dataset.models import Patient
from esante.simulators.kits.fhir.bodies import read_resource
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.media import fhir_response
from esante.simulators.kits.fhir.search import searchset
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.mes import agenda, documents, measures
from esante.simulators.mes.access import Access, Caller, not_paired
from esante.simulators.mes.dmp import file_in_dmp
from esante.simulators.mes.notes import MesNotes, Page
from esante.simulators.mes.protocol import FHIR_BASE, RETRY_AFTER, mes_patient_id
from esante.simulators.mes.search import matching, read_search
from esante.simulators.mes.state import MesState

#: The resource types served, and the one whose scope reads each.
READABLE = {"Observation": "Observation", "DocumentReference": "DocumentReference", "Appointment": "Appointment",
            "Device": "Observation", "Patient": "Observation"}


class Records:
    """The FHIR API on the citizens' records; ``simulator`` gives the lab's DMP."""

    def __init__(self, simulator: Simulator, state: MesState, access: Access) -> None:
        self.simulator, self.state, self.access = simulator, state, access

    # -- writes ------------------------------------------------------------------------------------------------
    async def transaction(self, request: Request) -> Response:
        """A MesBundleFluxAlimentation: one measure, and the device that took it."""
        caller = self.access.api(request, "patient/Observation.write")
        bundle = measures.bundle_or_error(await read_resource(request, "Bundle"))
        entry = measures.validate_bundle(bundle, caller.reference)
        stored, created = self._file(caller.patient, "Observation", entry.observation, entry.key)
        notes = MesNotes.of(request)
        notes.measure, notes.created, notes.idempotency_key = entry.kind, created, entry.key
        results = []
        if entry.device is not None and created:  # a retried bundle files neither its measure nor its device again
            device, _ = self._file(caller.patient, "Device", entry.device, None)
            stored["device"] = {"reference": f"Device/{device['id']}"}  # transaction: urn:uuid resolved
            results.append({"response": {"status": "201 Created", "location": f"Device/{device['id']}/_history/1"}})
        results.append({"response": {"status": "201 Created" if created else "200 OK",
                                     "location": f"Observation/{stored['id']}/_history/1"}})
        _lost(request)
        return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": results})

    async def document(self, request: Request) -> Response:
        caller = self.access.api(request, "patient/DocumentReference.write")
        resource = await read_resource(request, "DocumentReference")
        key, data = documents.validate_document(resource, caller.reference)
        stored, created = self._file(caller.patient, "DocumentReference", resource, key)
        notes = MesNotes.of(request)
        notes.created, notes.idempotency_key = created, key
        if created:  # the DMP call blocks: off the event loop
            notes.dmp = await run_in_threadpool(file_in_dmp, self.simulator.peer("dmp"), resource, caller.patient,
                                                data)
        _lost(request)
        return fhir_response(stored, 201 if created else 200,
                             {"Location": f"{FHIR_BASE}/DocumentReference/{stored['id']}/_history/1"})

    async def appointment(self, request: Request) -> Response:
        """POST creates; PUT ?identifier=system|value is a conditional update (create or replace)."""
        caller = self.access.api(request, "patient/Appointment.write")
        resource = await read_resource(request, "Appointment")
        key = agenda.validate_appointment(resource, caller.reference)
        notes = MesNotes.of(request)
        if request.method == "POST":
            stored, created = self._file(caller.patient, "Appointment", resource, None)
        else:
            condition = request.query_params.get("identifier")
            if condition != key:
                raise FhirError(412, "invalid", f"PUT ?identifier={condition} must name the appointment's own "
                                                f"identifier {key}", expression=["Appointment.identifier"])
            stored, created = self._upsert(caller.patient, resource, key)
            notes.idempotency_key = key
        notes.created = created
        _lost(request)
        return fhir_response(stored, 201 if created else 200)

    def _file(self, patient: Patient, resource_type: str, resource: dict[str, Any], key: str | None
              ) -> tuple[dict[str, Any], bool]:
        """Store ``resource`` once per idempotency ``key``; True when it was new."""
        record = self.state.record(patient.id)
        with self.state.lock:
            if key is not None and (known := record.keys.get(f"{resource_type}|{key}")):
                return record.resources[resource_type][known], False
            stored = {**resource, "id": new_id(9), "meta": _meta(resource, "1")}
            record.resources[resource_type][stored["id"]] = stored
            if key is not None:
                record.keys[f"{resource_type}|{key}"] = stored["id"]
        return stored, True

    def _upsert(self, patient: Patient, resource: dict[str, Any], key: str) -> tuple[dict[str, Any], bool]:
        record = self.state.record(patient.id)
        with self.state.lock:
            known = record.keys.get(f"Appointment|{key}")
            if known is None:
                return self._file(patient, "Appointment", resource, key)
            previous = record.resources["Appointment"][known]
            version = str(int(previous["meta"]["versionId"]) + 1)
            stored = {**resource, "id": known, "meta": _meta(resource, version)}
            record.resources["Appointment"][known] = stored
        return stored, False

    # -- reads -------------------------------------------------------------------------------------------------
    def _reader(self, request: Request, resource_type: str) -> Caller:
        if resource_type not in READABLE:
            raise FhirError(404, "not-supported", f"resource type {resource_type} is not served")
        return self.access.api(request, f"patient/{READABLE[resource_type]}.read")

    async def read(self, request: Request) -> Response:
        resource_type, resource_id = request.path_params["resource_type"], request.path_params["resource_id"]
        caller = self._reader(request, resource_type)
        if resource_type == "Patient":
            if f"Patient/{resource_id}" != caller.reference:
                raise not_paired()
            return fhir_response(patient_resource(caller.patient))
        found = self.state.record(caller.patient.id).resources[resource_type].get(resource_id)
        if found is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return fhir_response(found)

    async def search(self, request: Request) -> Response:
        resource_type = request.path_params["resource_type"]
        caller = self._reader(request, resource_type)
        search = read_search(dict(request.query_params), caller.reference)
        with self.state.lock:
            rows = list(self.state.record(caller.patient.id).resources[resource_type].values())
        matches = matching(rows, search)
        url = f"{str(request.base_url).rstrip('/')}{FHIR_BASE}/{resource_type}"
        bundle = searchset(url, matches, search.offset, search.count, list(search.filters.items()))
        MesNotes.of(request).page = Page(offset=search.offset, count=search.count, total=len(matches),
                                         has_next=search.offset + search.count < len(matches))
        return fhir_response(bundle)


def _meta(resource: dict[str, Any], version: str) -> dict[str, Any]:
    return {**resource.get("meta", {}), "versionId": version,
            "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


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
