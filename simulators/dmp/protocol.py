"""The DMPi interface's constants: service paths, WS-Addressing actions, OIDs, namespaces, codes.

Sources: the DMP's "schémas et WSDL" annex v2.01.04 (June 2024: the WSDLs' input and output actions), the DMP
editors' package (official example messages, App.config of the editors' kit, PDT-INF sheets), summarised in
``shared/research/dmp.md``, and ANS's own DMP client ansforge/DRIM-M_DRIMbox (the short service names it calls
on the DMP's test platform). Each transaction (TD) is one WS-Addressing action on one of the DMP's SOAP
services; its reply action is the one the WSDL declares (``wsaw:Action``, else WS-Addressing's default
``{namespace}:{portType}:{output name}``), as the official answers carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICES_BASE = "/si-dmp-server/v2/services"
REGISTRY_PATH = f"{SERVICES_BASE}/DocumentRegistry_Service"
REPOSITORY_PATH = f"{SERVICES_BASE}/DocumentRepository_Service"
PATIENT_PATH = f"{SERVICES_BASE}/patient"
HABILITATION_PATH = f"{SERVICES_BASE}/Habilitation"
PATIENT_SPECIFIC_PATH = f"{SERVICES_BASE}/PatientSpecific"
PATIENT_CERTIF_PATH = f"{SERVICES_BASE}/patientCertif"
#: The same services under the names ANS's DRIMbox calls on the DMP's test platform
#: (``…/si-dmp-server/v2/services/{registry, repository, habilitations, patients}``).
REGISTRY_ALIAS = f"{SERVICES_BASE}/registry"
REPOSITORY_ALIAS = f"{SERVICES_BASE}/repository"
PATIENT_ALIAS = f"{SERVICES_BASE}/patients"
HABILITATION_ALIAS = f"{SERVICES_BASE}/habilitations"
SERVICE_PATHS = (REGISTRY_PATH, REPOSITORY_PATH, PATIENT_PATH, HABILITATION_PATH, PATIENT_SPECIFIC_PATH,
                 PATIENT_CERTIF_PATH, REGISTRY_ALIAS, REPOSITORY_ALIAS, PATIENT_ALIAS, HABILITATION_ALIAS)

# -- namespaces (the XDS ones are IHE's: esante.simulators.kits.ihe_xds) ----------------------------------
HL7_NS = "urn:hl7-org:v3"
GDP_NS = "asip:ci-sis:gdp:2010"
HABILITATIONS_NS = "urn:si-dmp-habilitations"
PATIENTS_NS = "urn:si-dmp-patients"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

# -- identifiers -----------------------------------------------------------------------------------------
OID_DMP = "1.2.250.1.213.4.1.1.1"  # the DMP system (device id, custodian)
OID_DMP_MESSAGE = "1.2.250.1.213.4.1.1.1.1"  # ids of the DMP's own messages
REPOSITORY_UNIQUE_ID = "1.2.250.1.213.4.1.1.1.2"
OID_DMP_INTERNAL_ID = "1.2.250.1.213.1.4.2"  # the DMP's own patient number
INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_PS_NATIONAL_ID = "1.2.250.1.71.4.2.1"
OID_STRUCTURE_ID = "1.2.250.1.71.4.2.2"
OID_REASON = "1.2.250.1.213.1.1.4.11"  # reasonCode of the HL7v3 DMP transactions
OID_ATTENTION_KEYWORD = "1.2.250.1.213.4.1.2.6.1"
OID_AUTHORISATION_VALUE = "1.2.250.1.213.4.1.2.6.2"
OID_TREATING_DOCTOR_KEYWORD = "1.2.250.1.213.4.1.2.6.3"
OID_ADMIN_OBSERVATION = "1.2.250.1.213.4.1.2.3"
OID_WEB_ACCOUNT_OBSERVATION = "1.2.250.1.213.4.1.2.9"
OID_CLOSING_REASON = "1.2.250.1.213.4.1.2.4"
OID_INTERACTION = "2.16.840.1.113883.1.6"

# -- the DMP's documents ---------------------------------------------------------------------------------
#: The DMP's own confidentiality codes (JDV_J58, ``OID_DMP_CONFIDENTIALITY``): masked to professionals (but
#: the author), hidden from the patient.
MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
OID_DMP_CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"
#: The DMP's answers meaning "try again later": a software may retry them (at most twice), like no answer.
TRANSIENT_ERRORS = ("XDSRegistryNotAvailable", "DMPServiceUnavailable")

# -- the VIHF --------------------------------------------------------------------------------------------
#: Access modes (purpose of use, TRE_R248): normal, régulation (centre 15), bris de glace.
PURPOSES = ("normal", "centre_15", "bris_de_glace")
#: Authentication modes: the professional's CPS (DIRECTE), the structure's certificate (INDIRECTE), the
#: structure's certificate with the professional authenticated individually (INDIRECTE_RENFORCEE).
AUTH_MODES = ("DIRECTE", "INDIRECTE", "INDIRECTE_RENFORCEE")


@dataclass(frozen=True, slots=True)
class Transaction:
    """One DMPi transaction: its TD number, WS-Addressing action, the services serving it, its answer."""

    td: str
    title: str
    action: str
    paths: tuple[str, ...]
    response_action: str


def _hl7(td: str, title: str, interaction: str, response: str) -> Transaction:
    return Transaction(td, title, f"urn:hl7-org:v3:{interaction}", (PATIENT_PATH, PATIENT_CERTIF_PATH, PATIENT_ALIAS),
                       f"urn:hl7-org:v3:{response}")


def _service(td: str, title: str, endpoint: str, operation: str, *paths: str) -> Transaction:
    action = f"{endpoint}:{operation}"
    return Transaction(td, title, action, paths, f"{action}Response")


_HABILITATIONS = "urn:si-dmp-habilitations:HabilitationsEndPoint"
_PATIENT_SPECIFIC = "urn:si-dmp-patients:PatientSpecificEndPoint"

#: Every transaction, keyed by a TD. HL7v3 interactions shared by several TDs (PRPA_IN201307UV02 for TD0.2
#: and TD1.3a, PRPA_IN201314UV02 for TD1.3b and TD1.4) are told apart by their reasonCode. PRPA_IN201314UV02 is
#: answered in the wrapper ``PRPA_IN201314UV02_Response``: PRPA_IN201315UV02 (accepted) or PRPA_IN201316UV02
#: (refused), under one reply action.
TRANSACTIONS: dict[str, Transaction] = {t.td: t for t in (
    _hl7("TD0.2", "Test d'existence du DMP et de l'autorisation", "PRPA_IN201307UV02", "PRPA_IN201308UV02"),
    _service("TD0.3", "Mise à jour de l'autorisation", _HABILITATIONS, "setAuthorization", HABILITATION_PATH,
             HABILITATION_ALIAS),
    _service("TD0.4", "Liste des DMP autorisés", _PATIENT_SPECIFIC, "patientList", PATIENT_SPECIFIC_PATH),
    _hl7("TD0.5", "Recherche d'un patient sans INS", "PRPA_IN201305UV02", "PRPA_IN201306UV02"),
    _hl7("TD1.3a", "Consultation des données administratives", "PRPA_IN201307UV02", "PRPA_IN201308UV02"),
    _hl7("TD1.3b", "Modification des données administratives", "PRPA_IN201314UV02", "PRPA_IN201314ResponseUV02"),
    _hl7("TD1.4", "Fermeture du DMP", "PRPA_IN201314UV02", "PRPA_IN201314ResponseUV02"),
    _service("TD1.5a", "Création du compte internet patient", _PATIENT_SPECIFIC, "createPatientAccess",
             PATIENT_SPECIFIC_PATH),
    _service("TD1.5b", "Mise à jour d'un canal OTP", _PATIENT_SPECIFIC, "patientOTPUpdate", PATIENT_SPECIFIC_PATH),
    _service("TD1.5d", "Mise à jour du compte internet patient", _PATIENT_SPECIFIC, "updatePatientAccess",
             PATIENT_SPECIFIC_PATH),
    _service("TD1.6", "Liste des PS autorisés ou bloqués", _HABILITATIONS, "listAuthorizationByPatient",
             HABILITATION_PATH, HABILITATION_ALIAS),
    Transaction("TD2.1", "Alimentation (ITI-41)", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
                (REPOSITORY_PATH, REPOSITORY_ALIAS), "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"),
    Transaction("TD3.1", "Recherche de documents (ITI-18)", "urn:ihe:iti:2007:RegistryStoredQuery",
                (REGISTRY_PATH, REGISTRY_ALIAS), "urn:ihe:iti:2007:RegistryStoredQueryResponse"),
    Transaction("TD3.2", "Consultation d'un document (ITI-43)", "urn:ihe:iti:2007:RetrieveDocumentSet",
                (REPOSITORY_PATH, REPOSITORY_ALIAS), "urn:ihe:iti:2007:RetrieveDocumentSetResponse"),
    Transaction("TD3.3", "Mise à jour des métadonnées (ITI-57)", "urn:ihe:iti:2010:UpdateDocumentSet",
                (REGISTRY_PATH, REGISTRY_ALIAS), "urn:ihe:iti:2010:UpdateDocumentSet-Response"),
)}
#: The patient web-account services the 2024 annex removed from the interface (its readme): served only with
#: the simulator's ``legacy_patient_access`` option, for software still certified against the older kit.
LEGACY_TDS = frozenset({"TD1.5a", "TD1.5b", "TD1.5d"})

#: reasonCode → TD for the HL7v3 interactions several TDs share.
REASONS = {"TEST_EXST": "TD0.2", "CNSLT_DATA": "TD1.3a", "MODIF_DATA": "TD1.3b", "FERM": "TD1.4"}
REASON_NAMES = {
    "TEST_EXST": "Test d'existence de dossier",
    "CNSLT_DATA": "Consultation des données de gestion du dossier",
    "MODIF_DATA": "Modification des données de gestion du dossier",
    "FERM": "Fermeture de dossier",
}
