"""The French identifier authorities (OIDs) that CI-SIS documents and their XDS metadata use."""

from __future__ import annotations

import re

#: INS authorities (ANS "Liste des OID des autorités d'affectation des INS"): NIR, NIA, and their test
#: counterparts, which the national services' test platforms (and these simulators) accept.
INS_OIDS = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.9": "INS-NIA",
            "1.2.250.1.213.1.4.10": "INS-NIR de test", "1.2.250.1.213.1.4.11": "INS-NIA de test"}
#: National professional identifiers (idNat_PS: "8" + RPPS...).
PS_NATIONAL_ID_OID = "1.2.250.1.71.4.2.1"
#: National structure identifiers (idNat_Struct: "1" + FINESS, "3" + SIRET...).
STRUCTURE_OID = "1.2.250.1.71.4.2.2"
#: An OID as the CI-SIS accepts it (3.5.7.4): dotted decimal, no leading zeros, at most 64 characters.
OID_PATTERN = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
OID_MAX_LENGTH = 64


def is_oid(value: str | None) -> bool:
    return bool(value) and len(value or "") <= OID_MAX_LENGTH and OID_PATTERN.match(value or "") is not None


#: HL7 Confidentiality (N, R, V).
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
