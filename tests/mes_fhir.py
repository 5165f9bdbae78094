"""Builders of the FHIR resources a partner app sends to Mon espace santé, shared by the MES tests (the
simulator's own validation is what they exercise; codes and units come from its measures catalogue)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from esante.simulators.mes.measures import catalogue

APP = "urn:oid:1.2.250.1.999.1"  # the fictitious app's identifier system
SAMPLE_VALUES = {"body_weight": 72.5, "body_height": 172, "bmi": 24.5, "heart_rate": 64, "body_temperature": 36.8,
                 "glucose": 95, "oxygen_saturation": 98, "steps": 8500, "pain": 3, "waist_circumference": 82,
                 "head_circumference": 45}


def observation(kind: str, patient_ref: str, *, unit: str | None = None, code: str | None = None,
                value: float | None = None, ident: str | None = None) -> dict[str, Any]:
    spec = catalogue().measures[kind]
    resource: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "meta": {"profile": [catalogue().profile_base + spec["profile"]]},
        "identifier": [{"system": APP, "value": ident or str(uuid.uuid4())}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code or spec["codes"][0],
                             "display": spec["display"]}]},
        "subject": {"reference": patient_ref}, "effectiveDateTime": "2026-01-15T08:30:00+01:00"}
    if "components" in spec:
        resource["component"] = [
            {"code": {"coding": [{"system": "http://loinc.org", "code": c["code"]}]},
             "valueQuantity": {"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                               "code": unit or "mm[Hg]"}}
            for c, v in zip(spec["components"].values(), (128, 82), strict=True)]
    else:
        chosen = unit or next(iter(spec["units"]))
        resource["valueQuantity"] = {"value": value if value is not None else SAMPLE_VALUES[kind], "unit": chosen,
                                     "system": "http://unitsofmeasure.org", "code": chosen}
    return resource


def bundle(resource: dict[str, Any], *, conditional: bool = True) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": "Observation"}
    if conditional:
        ident = resource["identifier"][0]
        request["ifNoneExist"] = f"identifier={ident['system']}|{ident['value']}"
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}]}


def document(patient_ref: str, *, content_type: str = "application/pdf", data: bytes = b"%PDF-1.4 test\n%%EOF",
             loinc: str | None = "11502-2", ident: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": APP, "value": ident or str(uuid.uuid4())},
        "subject": {"reference": patient_ref},
        "content": [{"attachment": {"contentType": content_type, "title": "Compte rendu",
                                    "data": base64.b64encode(data).decode()}}]}
    if loinc:
        resource["type"] = {"coding": [{"system": "http://loinc.org", "code": loinc, "display": "Laboratory report"}]}
    return resource


def appointment(patient_ref: str, ident: str, start: str = "2026-02-01T10:00:00+01:00",
                end: str = "2026-02-01T10:30:00+01:00", status: str = "booked") -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": status, "identifier": [{"system": APP, "value": ident}],
            "description": "Consultation", "start": start, "end": end,
            "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}]}
