"""The FHIR R4 resources the reference partner app sends to Mon espace santé, built from its own tables
(the ANS "Mesures de santé" IG's profiles, LOINC codes and UCUM units as an app would hard-wire them), and
checked with fhir.resources before they leave. Independent of the simulator's validation: a candidate must
not share the judge's code.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference

PROFILE_BASE = "https://interop.esante.gouv.fr/ig/fhir/mesures/StructureDefinition/"
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
#: This app's identifier system for the measures, documents and appointments it creates.
APP_SYSTEM = "urn:oid:1.2.250.1.999.42.1"

#: kind -> (profile id, LOINC code, display)
MEASURES: dict[str, tuple[str, str, str]] = {
    "body_weight": ("mesures-fr-observation-body-weight", "29463-7", "Body weight"),
    "body_height": ("mesures-fr-observation-bodyheight", "8302-2", "Body height"),
    "bmi": ("mesures-fr-observation-bmi", "39156-5", "Body mass index (BMI) [Ratio]"),
    "blood_pressure": ("mesures-fr-observation-bp", "85354-9", "Blood pressure panel"),
    "heart_rate": ("mesures-fr-observation-heartrate", "8867-4", "Heart rate"),
    "body_temperature": ("mesures-fr-observation-body-temperature", "8310-5", "Body temperature"),
    "glucose": ("mesures-observation-glucose", "2339-0", "Glucose [Mass/volume] in Blood"),
    "oxygen_saturation": ("mesures-fr-observation-oxygen-sat", "59408-5", "Oxygen saturation by Pulse oximetry"),
    "steps": ("mesures-observation-steps-by-day", "41950-7", "Number of steps in 24 hour Measured"),
    "pain": ("mesures-observation-pain-severity", "72514-3", "Pain severity 0-10 verbal numeric rating"),
    "waist_circumference": ("mesures-observation-waist-circumference", "8280-0", "Waist circumference"),
    "head_circumference": ("mesures-observation-head-circumference", "9843-4", "Head circumference"),
}
BP_COMPONENTS = {"systolic": "8480-6", "diastolic": "8462-4"}
#: How a careless app writes a unit for people (the mes_unit_not_ucum defect sends these as codes).
HUMAN_UNITS = {"Cel": "°C", "/min": "bpm", "mm[Hg]": "mmHg", "{score}": "score", "1/(24.h)": "steps/day",
               "kg/m2": "kg/m²", "[lb_av]": "lb"}


def quantity(value: float, unit: str, human_units: bool) -> dict[str, Any]:
    code = HUMAN_UNITS.get(unit, unit) if human_units else unit
    return {"value": value, "unit": HUMAN_UNITS.get(unit, unit), "system": UCUM, "code": code}


def measure_bundle(measure: dict[str, Any], patient_ref: str, measured_at: str, *, conditional: bool = True,
                   human_units: bool = False) -> dict[str, Any]:
    """A MesBundleFluxAlimentation for one measure, keyed by the app's measure id (conditional create)."""
    profile, code, display = MEASURES[measure["kind"]]
    identifier = {"system": APP_SYSTEM, "value": str(measure["id"]) if conditional else str(uuid.uuid4())}
    observation: dict[str, Any] = {
        "resourceType": "Observation", "meta": {"profile": [PROFILE_BASE + profile]}, "status": "final",
        "identifier": [identifier],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": measure.get("code") or code, "display": display}]},
        "subject": {"reference": patient_ref}, "effectiveDateTime": measured_at}
    unit = str(measure.get("unit", ""))
    if measure["kind"] == "blood_pressure":
        observation["component"] = [{"code": {"coding": [{"system": LOINC, "code": loinc}]},
                                     "valueQuantity": quantity(float(measure[name]), unit, human_units)}
                                    for name, loinc in BP_COMPONENTS.items()]
    else:
        observation["valueQuantity"] = quantity(float(measure["value"]), unit, human_units)
    request = {"method": "POST", "url": "Observation"}
    if conditional:
        request["ifNoneExist"] = f"identifier={APP_SYSTEM}|{identifier['value']}"
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": observation, "request": request}]}
    Bundle.model_validate(bundle)  # the app's own structural check before sending
    return bundle


def document_reference(document: dict[str, Any], content_b64: str, patient_ref: str, *,
                       content_type: str, keyed: bool = True, typed: bool = True) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "type": {"coding": [{"system": LOINC, "code": document["type"]}]} if typed else {"text": document["title"]},
        "subject": {"reference": patient_ref}, "description": document["title"],
        "content": [{"attachment": {"contentType": content_type, "title": document["title"], "data": content_b64}}]}
    if keyed:
        resource["masterIdentifier"] = {"system": APP_SYSTEM, "value": str(document["id"])}
    DocumentReference.model_validate(resource)
    return resource


def appointment(entry: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    resource = {"resourceType": "Appointment", "status": entry.get("status", "booked"),
                "identifier": [{"system": APP_SYSTEM, "value": str(entry["id"])}],
                "description": entry.get("description", ""), "start": entry["start"], "end": entry["end"],
                "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}]}
    Appointment.model_validate(resource)
    return resource
