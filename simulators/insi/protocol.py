"""INSi teleservice: names, namespaces, operations, codes and OIDs, as publicly specified.

Sources (``../shared/research/insi-official/SOURCES.md``): the CNAM WSDL DESIR_ICIR_EXP 1.5.0 and its XSDs as
published in padoa/tlsi-ins (shipped in ``schemas/``), the answers of the CNAM qualification platform recorded
there, the CNDA kit's canned answers and the official DMP editors' package example
``WS_INS2_rechercherInsAvecTraitsIdentite``.
"""

from __future__ import annotations

from enum import StrEnum

NS_RECSANS = "http://www.cnamts.fr/INSiRecSans"
NS_RECVIT = "http://www.cnamts.fr/INSiRecVit"
NS_RESULTAT = "http://www.cnamts.fr/INSiResultat"
NS_CTXBAM = "urn:siram:bam:ctxbam"
NS_CTXLPS = "urn:siram:lps:ctxlps"
NS_SIRAM = "urn:siram"
NS_SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"

#: The service path of both qualification endpoints (``…/lps`` in the WSDL).
SERVICE_PATH = "/lps"

#: The two real endpoints (padoa/tlsi-ins ``src/ins/insi-client.service.ts``): the same service, authenticated
#: by the INSI-AUTO / INSI-MANU certificate in mutual TLS (the request carries no ``wsse:Security``, see
#: ``requests/tlsi-ins_rechercherInsAvecTraitsIdentite_mTLS.xml``), or by a CPS assertion in ``wsse:Security``.
QUALIFICATION_MTLS_URL = "https://qualiflps-services-ps-tlsm.ameli.fr:443/lps"
QUALIFICATION_CPS_URL = "https://qualiflps.services-ps.ameli.fr:443/lps"


class Operation(StrEnum):
    TRAITS = "rechercherInsAvecTraitsIdentite"
    VITALE = "rechercherInsAvecCarteVitale"

    @property
    def action(self) -> str:
        return f"urn:ServiceIdentiteCertifiee:1.0.0:{self.value}"

    @property
    def response_action(self) -> str:
        return f"{self.action}Response"

    @property
    def body_tag(self) -> str:
        return f"{{{NS_RECSANS}}}RECSANSVITALE" if self is Operation.TRAITS else f"{{{NS_RECVIT}}}RECVITALE"

    @classmethod
    def from_action(cls, action: str | None) -> Operation | None:
        return next((op for op in cls if op.action == action), None)


class CodeCR(StrEnum):
    FOUND = "00"
    NOT_FOUND = "01"
    SEVERAL = "02"

    @property
    def label(self) -> str:
        return {"00": "OK", "01": "Aucune identite trouvee", "02": "Plusieurs identites trouvees"}[self.value]


#: OIDs of the INS identifier domains.
OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"
INS_OIDS = {OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO}


def answered_oid(recorded: str) -> str:
    """The OID the teleservice puts on an INS that a data set records under ``recorded``: its domain's.

    Every real answer for a NIR carries INS-NIR ``…4.8``, the qualification platform's test people included
    (``answers/qualification/CR00_*.xml``, the CNDA files, the DMP package example); the one NIA answer
    (CNDA ``TEST_2.05``) carries INS-NIA ``…4.9``; none carries the test OID ``…4.10``. So a record kept as
    INS-NIA is answered ``…4.9`` and every other one (INS-NIR, or the test OIDs our data set uses) ``…4.8``.
    """
    return OID_INS_NIA if recorded == OID_INS_NIA else OID_INS_NIR

#: Client certificate common names that the mutual-TLS endpoint accepts (else fault desir_560).
AUTHORISED_CERT_CNS = ("INSI-AUTO", "INSI-MANU")
