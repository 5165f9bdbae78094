"""Mon espace santé from the partner app's side, to try the lab's MES by hand or in benchmarks and tests:
pairing a test patient's space (OAuth 2 code flow with PKCE S256, the lab playing the citizen's browser on the
consent page) and the FHIR resources a partner app sends (measures, documents, appointments), built from the
ANS measures guide's codes and units as the simulator's catalogue lists them.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from esante.harness.lab.oauth import Client, TokenSet, code_flow
from esante.simulators.dataset import load_dataset
from esante.simulators.mes.measures import catalogue
from esante.simulators.mes.protocol import AUTHORIZE_PATH, TOKEN_PATH

APP = "urn:oid:1.2.250.1.999.1"  # the fictitious app's identifier system
WRITE_SCOPES = "patient/Observation.read patient/Observation.write patient/DocumentReference.write " \
               "patient/Appointment.read patient/Appointment.write offline_access"
SAMPLE_VALUES = {"body_weight": 72.5, "body_height": 172, "bmi": 24.5, "heart_rate": 64, "body_temperature": 36.8,
                 "glucose": 95, "oxygen_saturation": 98, "steps": 8500, "pain": 3, "waist_circumference": 82,
                 "head_circumference": 45}


def mes_pairing(mes_url: str, ca_pem: bytes | None, patient: str = "P001", *,
                client_id: str = "esante-reference-mes", scope: str = WRITE_SCOPES, dataset: str = "default",
                timeout: float = 10.0) -> TokenSet:
    """Pair ``patient``'s space (a data-set id) with the registered partner app ``client_id``; its tokens."""
    partner = load_dataset(dataset).mes_partner(client_id)
    client = Client(client_id, partner.secret or "", partner.redirect_uris[0])
    return code_flow(mes_url, ca_pem, client, authorize_path=AUTHORIZE_PATH, token_path=TOKEN_PATH, timeout=timeout,
                     query={"scope": scope}, page={"patient": patient, "decision": "accept"})


# -- what a partner app sends ----------------------------------------------------------------------------------
def observation(kind: str, patient_ref: str, *, unit: str | None = None, code: str | None = None,
                value: float | None = None, ident: str | None = None) -> dict[str, Any]:
    """A measure of the catalogue's ``kind`` (``blood_pressure``, ``body_weight``...), its first LOINC code and
    unit unless told otherwise."""
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
    """A ``MesBundleFluxAlimentation`` transaction of one measure (conditional on its identifier by default)."""
    request: dict[str, Any] = {"method": "POST", "url": "Observation"}
    if conditional:
        ident = resource["identifier"][0]
        request["ifNoneExist"] = f"identifier={ident['system']}|{ident['value']}"
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}]}


def document(patient_ref: str, *, content_type: str = "application/pdf", data: bytes = b"%PDF-1.4 test\n%%EOF",
             loinc: str | None = "11502-2", ident: str | None = None) -> dict[str, Any]:
    """A DocumentReference with its content inline."""
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
    """An Appointment of the app's agenda, identified for conditional updates."""
    return {"resourceType": "Appointment", "status": status, "identifier": [{"system": APP, "value": ident}],
            "description": "Consultation", "start": start, "end": end,
            "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}]}
