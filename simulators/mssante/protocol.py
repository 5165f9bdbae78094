"""MSSanté protocol constants: paths, addresses, headers, XDM layout, receipts, replies.

Sources: ASIP Santé "Client de messagerie sécurisée de santé" (2014) and Référentiel #2 v1.0 (2023) for
transport and authentication; ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss (struct-email-standard,
struct-msg-mdn, error-codes) for structured mail, XDM and receipts; Annuaire Santé FHIR API v2 for the
directory (see ../shared/research/psc-mssante-mes.md §2).
"""

from __future__ import annotations

import re
from typing import Final

# -- endpoints ------------------------------------------------------------------------------------------------
AUTOCONFIG_PATH: Final = "/mail/config-v1.1.xml"  # Thunderbird autoconfig, as autoconfig.{domain} serves it
FHIR_BASE: Final = "/fhir/v2"
FHIR_JSON: Final = "application/fhir+json"
PAGE_SIZE: Final = 50  # Annuaire Santé pages of 50
MAX_PAGE_SIZE: Final = 100

# -- addresses ------------------------------------------------------------------------------------------------
PATIENT_DOMAIN: Final = "patient.mssante.fr"
MAILBOX_TYPES: Final = ("PER", "ORG", "APP", "CAB")

# -- headers (Référentiel #2 §3.8) ----------------------------------------------------------------------------
H_NIL: Final = "X-MSS-NIL"          # every message: the sending software's product reference
H_CODECDA: Final = "X-MSS-CODECDA"  # the CDA code(s) of the documents of the XDM archive
H_INS: Final = "X-MSS-INS"          # O/N: the patient's INS is qualified
H_MES: Final = "X-MSS-MES"          # FIN on mail to a patient: no reply possible
MES_FIN: Final = "FIN"

# -- structured mail (IHE XDM) --------------------------------------------------------------------------------
XDM_ATTACHMENT: Final = "IHE_XDM.ZIP"
XDM_SUBJECT_PREFIX: Final = "XDM/1.0/DDM"
XDM_README: Final = "README.TXT"
XDM_INDEX: Final = "INDEX.HTM"
XDM_SUBSET: Final = "IHE_XDM/SUBSET01/"
XDM_METADATA: Final = XDM_SUBSET + "METADATA.XML"
NAME_8_3: Final = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$")
NS_LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_CDA: Final = "urn:hl7-org:v3"
XDS_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"  # DocumentEntry.patientId
INS_OID: Final = "1.2.250.1.213.1.4.8"
INS_TEST_OID: Final = "1.2.250.1.213.1.4.10"

# -- hostile archives -----------------------------------------------------------------------------------------
MAX_ARCHIVE_BYTES: Final = 20 * 1024 * 1024
MAX_MEMBERS: Final = 64
MAX_MEMBER_BYTES: Final = 20 * 1024 * 1024
MAX_TOTAL_BYTES: Final = 50 * 1024 * 1024
MAX_RATIO: Final = 200  # uncompressed / compressed beyond this is a bomb

# -- read receipts (RFC 8098; struct-msg-mdn) -----------------------------------------------------------------
DNT: Final = "Disposition-Notification-To"
MDN_PROCESSED: Final = "automatic-action/MDN-sent-automatically; processed"
MDN_ERROR_PREFIX: Final = "automatic-action/MDN-sent-automatically; processed/Error: "
ERROR_UNKNOWN_PATIENT: Final = "902"
ERROR_UNKNOWN_PATIENT_LABEL: Final = "Identifiant de patient inconnu"
KO_SUBJECT_PREFIX: Final = "[KO Intégration système !]"

# -- transport ------------------------------------------------------------------------------------------------
MAX_MESSAGE_BYTES: Final = 20 * 1024 * 1024
SASL_TOKEN_MECHANISMS: Final = ("XOAUTH2", "OAUTHBEARER")
REPLY_AUTH_FAILED: Final = "535 5.7.8 Authentication credentials invalid"
REPLY_TLS_FIRST: Final = "530 5.7.0 Must issue a STARTTLS command first"
REPLY_TLS_UNAVAILABLE: Final = "454 4.7.0 TLS not available due to temporary reason"  # RFC 3207 §4
REPLY_BUSY: Final = "421 4.3.2 Service not available, closing transmission channel"
REPLY_MAILBOX_FULL: Final = "452 4.2.2 Mailbox full"
REPLY_OUTSIDE_TRUST: Final = "550 5.7.1 Address outside the MSSante trust space"
REPLY_UNKNOWN_MAILBOX: Final = "550 5.1.1 No such MSSante mailbox"
REPLY_SENDER_NOT_OWNED: Final = "553 5.7.1 Sender address not owned by the authenticated user"
