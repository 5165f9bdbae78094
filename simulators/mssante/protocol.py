"""MSSanté protocol constants: paths, addresses, headers, XDM layout, receipts, replies.

Sources: ASIP Santé "Client de messagerie sécurisée de santé" (2014) and Référentiel #2 v1.0 (2023) for
transport and authentication; ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss (struct-email-standard,
struct-msg-mdn, error-codes) for structured mail, XDM and receipts; Annuaire Santé FHIR API v2 for the
directory (see ../shared/research/psc-mssante-mes.md §2). The simulator and any candidate read them from here:
they are the specification's, not the simulator's.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

# -- endpoints ------------------------------------------------------------------------------------------------
AUTOCONFIG_PATH: Final = "/mail/config-v1.1.xml"  # Thunderbird autoconfig, as autoconfig.{domain} serves it
FHIR_BASE: Final = "/fhir/v2"
FHIR_JSON: Final = "application/fhir+json"
PAGE_SIZE: Final = 50  # Annuaire Santé pages of 50
MAX_PAGE_SIZE: Final = 100
SYSTEM_IDNAT: Final = "urn:oid:1.2.250.1.71.4.2.1"  # a Practitioner identifier: idNatPS (8 + RPPS)
SYSTEM_RPPS: Final = "https://rpps.esante.gouv.fr"

# -- addresses ------------------------------------------------------------------------------------------------
PATIENT_DOMAIN: Final = "patient.mssante.fr"
MAILBOX_TYPES: Final = ("PER", "ORG", "APP", "CAB")


def patient_address(nir: str, key: str) -> str:
    """A patient's Mon espace santé mailbox: ``<INS>@patient.mssante.fr`` (the matricule and its key)."""
    return f"{nir}{key}@{PATIENT_DOMAIN}"


# -- headers (Référentiel #2 §3.8; RFC 8098 for the receipt request) ---------------------------------------------
class Header(StrEnum):
    NIL = "X-MSS-NIL"          # every message: the sending software's product reference
    CODECDA = "X-MSS-CODECDA"  # the CDA code(s) of the documents of the XDM archive
    INS = "X-MSS-INS"          # O/N: the patient's INS is qualified
    MES = "X-MSS-MES"          # FIN on mail to a patient: no reply possible
    RECEIPT_TO = "Disposition-Notification-To"  # a read receipt is asked for, to this address


MES_FIN: Final = "FIN"


# -- structured mail (IHE XDM) --------------------------------------------------------------------------------
class Xdm(StrEnum):
    """The archive a structured document travels in, and the subject of its message."""

    ATTACHMENT = "IHE_XDM.ZIP"
    SUBJECT_PREFIX = "XDM/1.0/DDM"  # the subject is XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>
    README = "README.TXT"
    INDEX = "INDEX.HTM"
    SUBSET = "IHE_XDM/SUBSET01/"
    METADATA = "IHE_XDM/SUBSET01/METADATA.XML"


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


# -- read receipts (RFC 8098; struct-msg-mdn, error-codes) -------------------------------------------------------
class Mdn(StrEnum):
    """What a read receipt (a message disposition notification) says."""

    PROCESSED = "automatic-action/MDN-sent-automatically; processed"
    ERROR_PREFIX = "automatic-action/MDN-sent-automatically; processed/Error: "  # then code^label^detail
    UNKNOWN_PATIENT = "902"
    UNKNOWN_PATIENT_LABEL = "Identifiant de patient inconnu"
    KO_SUBJECT_PREFIX = "[KO Intégration système !]"  # an error receipt's subject


# -- transport ------------------------------------------------------------------------------------------------
MAX_MESSAGE_BYTES: Final = 20 * 1024 * 1024
SASL_TOKEN_MECHANISMS: Final = ("XOAUTH2", "OAUTHBEARER")
SASL_MECHANISMS: Final = (*SASL_TOKEN_MECHANISMS, "EXTERNAL")  # EXTERNAL: an application mailbox's certificate


class Reply(StrEnum):
    """The SMTP submission server's replies (RFC 5321, enhanced status codes of RFC 3463)."""

    AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
    TLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
    TLS_UNAVAILABLE = "454 4.7.0 TLS not available due to temporary reason"  # RFC 3207 §4
    BUSY = "421 4.3.2 Service not available, closing transmission channel"
    MAILBOX_FULL = "452 4.2.2 Mailbox full"
    OUTSIDE_TRUST = "550 5.7.1 Address outside the MSSante trust space"
    UNKNOWN_MAILBOX = "550 5.1.1 No such MSSante mailbox"
    SENDER_NOT_OWNED = "553 5.7.1 Sender address not owned by the authenticated user"
    MESSAGE_REFUSED = "554 5.6.0 Message refused"  # then why: beyond the MIME bounds, or not checkable in time
