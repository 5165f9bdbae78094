"""What Mon espace santé's FHIR API serves (our design, ``DESIGN.md``): the resource types, their interactions
and search parameters, and the SMART endpoints of the pairing. The FHIR kit routes exactly this table and
writes the CapabilityStatement (``GET /fhir/metadata``) and ``/.well-known/smart-configuration`` from it."""

from __future__ import annotations

from esante.simulators.kits.fhir.capability import ResourceType, ServerDescription, SmartEndpoints
from esante.simulators.kits.fhir.search import HL7_PARAM, SearchParam
from esante.simulators.mes.measures import catalogue
from esante.simulators.mes.protocol import (
    AUTHORIZE_PATH,
    CONTEXT_SCOPES,
    RESOURCE_SCOPES,
    REVOKE_PATH,
    SCOPE_OFFLINE,
    TOKEN_PATH,
)

READ = ("read", "vread", "history-instance", "search-type")


def _patient(name: str, path: str) -> SearchParam:
    return SearchParam(name, "reference", (path,), HL7_PARAM + ("clinical-patient" if name == "patient" else
                                                                  "Observation-subject"),
                       "the paired citizen only (Patient/<id> of the token answer)")


def resource_types() -> tuple[ResourceType, ...]:
    measures = catalogue()
    identifier = SearchParam("identifier", "token", ("identifier",), HL7_PARAM + "clinical-identifier",
                             "the app's own identifier (system|value): what conditional writes are keyed by")
    return (
        ResourceType("Observation", READ, (
            SearchParam("code", "token", ("code",), HL7_PARAM + "clinical-code", "the measure's LOINC code"),
            SearchParam("date", "date", ("effective[x]",), HL7_PARAM + "clinical-date", "when it was measured"),
            SearchParam("category", "token", ("category",), HL7_PARAM + "Observation-category"),
            SearchParam("status", "token", ("status",), HL7_PARAM + "Observation-status"),
            identifier, _patient("patient", "subject"), _patient("subject", "subject")),
            profiles=tuple(measures.profile_base + m["profile"] for m in measures.measures.values()),
            conditional_create=True, default_sort="-date",
            documentation="Measures (ANS Mesures de santé IG): written as a MesBundleFluxAlimentation "
                          "transaction, ifNoneExist identifier=system|value; newest first"),
        ResourceType("Device", READ, (), profiles=(measures.device_profile,),
                     documentation="The device that took a measure (written with it, in the transaction)"),
        ResourceType("DocumentReference", ("create", *READ), (
            SearchParam("type", "token", ("type",), HL7_PARAM + "clinical-type", "the LOINC document type"),
            SearchParam("date", "date", ("date",), HL7_PARAM + "DocumentReference-date"),
            SearchParam("status", "token", ("status",), HL7_PARAM + "DocumentReference-status"),
            SearchParam("identifier", "token", ("masterIdentifier", "identifier"), HL7_PARAM + "clinical-identifier",
                        "masterIdentifier or identifier"),
            _patient("patient", "subject"), _patient("subject", "subject")),
            conditional_create=True, default_sort="-_lastUpdated",
            documentation="Documents with their content inline; a create is conditional on its masterIdentifier "
                          "(a retried push is filed once), If-None-Exist is honoured too"),
        ResourceType("Appointment", ("create", "update", *READ), (
            SearchParam("date", "date", ("start",), HL7_PARAM + "Appointment-date"),
            SearchParam("status", "token", ("status",), HL7_PARAM + "Appointment-status"),
            SearchParam("identifier", "token", ("identifier",), HL7_PARAM + "clinical-identifier"),
            SearchParam("patient", "reference", ("participant.actor",), HL7_PARAM + "Appointment-patient")),
            conditional_create=True, conditional_update=True, default_sort="-date",
            documentation="The citizen's agenda, kept in sync by PUT Appointment?identifier=system|value"),
        ResourceType("Patient", READ, (
            SearchParam("identifier", "token", ("identifier",), HL7_PARAM + "Patient-identifier", "the INS"),),
            documentation="The paired citizen (FR Core Patient, the INS as identifier)"),
    )


SMART = SmartEndpoints(AUTHORIZE_PATH, TOKEN_PATH, REVOKE_PATH,
                       scopes=(*CONTEXT_SCOPES, *RESOURCE_SCOPES, SCOPE_OFFLINE))


def description(version: str, date: str) -> ServerDescription:
    return ServerDescription(
        title="Mon espace santé (simulated): a partner app's FHIR R4 API", software="esante-conformance MES simulator",
        version=version, date=date, system_interactions=("transaction",), smart=SMART,
        documentation="Every call needs the access token of an active pairing (SMART on FHIR patient scopes). "
                      "Search: unknown parameters are refused (400) unless Prefer: handling=lenient; _count up to "
                      "100 (0: the count only); paging by the next link. JSON only (FHIR 4.0).")
