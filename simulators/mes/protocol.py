"""Mon espace santé (MES) as this simulator exposes it: paths, scopes, lifetimes, code systems.

MES's partner APIs (pairing, measures, documents, agenda) are described only in documents given to
referenced editors; what is public is their shape: OAuth 2.0 pairing ("appariement") where the citizen
signs in to MES from the partner app and consents, then REST-FHIR R4 on FR Core and the ANS "Mesures de
santé" IG. Every name below that the public sources do not give is our design, in that spirit (see
``DESIGN.md``): SMART-on-FHIR-style patient scopes, an authorization server under ``/oauth``, the FHIR
base under ``/fhir``, the referencing window under ``/referencing``.
"""

from __future__ import annotations

import uuid

AUTHORIZE_PATH = "/oauth/authorize"
CONSENT_PATH = "/oauth/consent"
TOKEN_PATH = "/oauth/token"
REVOKE_PATH = "/oauth/revoke"
PAIRING_PATH = "/api/pairing"  # GET: the pairing's status; DELETE: the partner ends the pairing
USER_PAIRINGS_PATH = "/espace/appariements"  # the citizen's page of paired apps (revoke from MES)
FHIR_BASE = "/fhir"
CATALOGUE_PATH = "/catalogue/services"
DOSSIERS_PATH = "/referencing/dossiers"
CRITERIA_PATH = "/referencing/criteria"

GRANT_CODE = "authorization_code"
GRANT_REFRESH = "refresh_token"
SCOPE_OFFLINE = "offline_access"
#: SMART on FHIR v1 patient scopes (our choice: MES's scope names are not public).
RESOURCE_SCOPES = tuple(f"patient/{r}.{m}" for r in ("Observation", "DocumentReference", "Appointment")
                        for m in ("read", "write"))
#: SMART's standalone-launch context scope: asks for the patient in context, which a pairing always gives (the
#: paired citizen), so any partner may ask for it.
CONTEXT_SCOPES = ("launch/patient",)

CODE_LIFETIME = 60            # seconds an authorization code can be redeemed
ACCESS_LIFETIME = 300         # seconds an access token lives (short_lifetimes: 2)
SHORT_ACCESS_LIFETIME = 2
PAIRING_LIFETIME = 365 * 24 * 3600  # a pairing lasts a year, then the citizen consents again
RETRY_AFTER = 1               # seconds, on 429 and 503
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_TRANSACTION_ENTRIES = 2   # MesBundleFluxAlimentation: one Observation and an optional Device

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INS_NIR_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.10")  # INS-NIR, and its test OID
FHIR_JSON = "application/fhir+json"

#: The measures of the "Mesures de santé" IG that MES files (their profiles, codes and units: data/measures.yaml).
MEASURE_KINDS = ("body_weight", "body_height", "bmi", "blood_pressure", "heart_rate", "body_temperature", "glucose",
                 "oxygen_saturation", "steps", "pain", "waist_circumference", "head_circumference")

#: Document types a partner may push (LOINC, as the DMP's typeCode), and formats MES files.
DOCUMENT_FORMATS = {"application/pdf": b"%PDF-", "image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n",
                    "text/plain": b""}


def mes_patient_id(ins_nir: str) -> str:
    """The opaque logical id of a citizen's ``Patient`` in MES (stable, not the NIR itself)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mes:patient:{ins_nir}"))

#: The code system of the ``details`` of MES's OperationOutcomes (our design): why a call was refused.
ERROR_CODES_SYSTEM = "https://esante-conformance.example.org/mes/errors"
