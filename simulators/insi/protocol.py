"""INSi teleservice: names, namespaces, operations and codes, as publicly specified.

Sources (see ``../shared/research/insi.md``): the WSDL DESIR_ICIR_EXP 1.5.0 and its XSDs as published in
padoa/tlsi-ins, and the official DMP editors' package example ``WS_INS2_rechercherInsAvecTraitsIdentite``.
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

#: The service path of the qualification endpoint (``…/lps`` in the WSDL).
SERVICE_PATH = "/lps"


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

#: Client certificate common names that the mutual-TLS endpoint accepts (else fault desir_560).
AUTHORISED_CERT_CNS = ("INSI-AUTO", "INSI-MANU")
