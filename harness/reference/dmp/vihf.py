"""The reference candidate's VIHF: the SAML 2 assertion its DMP client puts in ``wsse:Security``, built and
signed here independently of the simulator (nothing from ``simulators.dmp`` is imported: a candidate must
not share the judge's code).

:func:`build_vihf` writes the assertion from plain data (a professional, the patient's INS, the mode, the
purpose of use, the software), :func:`sign_vihf` signs it (XML-DSig enveloped, exclusive c14n, SHA-256,
``KeyInfo/X509Certificate``) with signxml, and :func:`signed_vihf` picks the signer the mode wants: the
professional's CPS in DIRECTE, the structure's certificate in INDIRECTE / INDIRECTE_RENFORCEE (the mode a
Pro Santé Connect identity uses: :func:`professional_from_psc` turns PSC's userinfo into the professional).

Named defects (in the ``defects`` set: the ``vihf_*`` of ``scenarios/dmp/defects.yaml``) break one rule each.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner
from signxml.algorithms import SignatureConstructionMethod

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
TEST_INS_OID = "1.2.250.1.213.1.4.10"
_SMARTCARD = "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
_PURPOSE_DISPLAY = {"normal": "Accès normal", "centre_15": "Accès par un centre de régulation médicale",
                    "bris_de_glace": "Accès en bris de glace"}
_PROFESSION_DISPLAY = {"10": "Médecin", "21": "Pharmacien", "40": "Chirurgien-dentiste", "50": "Sage-femme",
                       "60": "Infirmier", "70": "Masseur-kinésithérapeute"}



def _attribute(statement: etree._Element, name: str, value: str | None = None) -> etree._Element:
    attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=name)
    if value is not None:
        element = etree.SubElement(attribute, f"{{{SAML}}}AttributeValue", nsmap={"xs": XS})
        element.set(f"{{{XSI}}}type", "xs:string")
        element.text = value
    return attribute


def _coded(attribute: etree._Element, tag: str, code: str, system: str, display: str,
           system_name: str | None = None) -> None:
    value = etree.SubElement(attribute, f"{{{SAML}}}AttributeValue")
    element = etree.SubElement(value, f"{{{HL7}}}{tag}", nsmap={None: HL7})
    element.set("code", code)
    element.set("codeSystem", system)
    if system_name:
        element.set("codeSystemName", system_name)
    element.set("displayName", display)
    element.set(f"{{{XSI}}}type", "CE")


def _roles(statement: etree._Element, professional: Mapping[str, Any], defects: frozenset[str]) -> None:
    if "vihf_missing_role" in defects:
        return
    attribute = _attribute(statement, "urn:oasis:names:tc:xacml:2.0:subject:role")
    code = professional["profession_code"]
    _coded(attribute, "Role", code, "1.2.250.1.71.1.2.7",
           professional.get("profession_display") or _PROFESSION_DISPLAY.get(code, code), "professions")
    savoir_faire = professional.get("savoir_faire_code")
    if savoir_faire and "vihf_missing_savoir_faire" not in defects:
        _coded(attribute, "Role", savoir_faire, "1.2.250.1.71.4.2.5",
               professional.get("savoir_faire_display") or savoir_faire, "specialites RPPS")


def build_vihf(professional: Mapping[str, Any], patient_ins: str, *, mode: str, lps: Mapping[str, str],
               purpose: str = "normal", ins_oid: str = TEST_INS_OID, issue_instant: datetime | None = None,
               defects: frozenset[str] = frozenset()) -> etree._Element:
    """The unsigned assertion. ``professional``: national_id, family_name, given_name, profession_code
    (+ profession_display), savoir_faire_code (+ display) or None, structure_id (idNat_Struct, e.g. ``1`` +
    FINESS), sector (``SA07``). ``lps``: id, name, version, homologation. ``patient_ins``: 15 characters."""
    issued = issue_instant or datetime.now(UTC)
    if "vihf_stale" in defects:
        issued -= timedelta(hours=2)
    stamp = issued.strftime("%Y-%m-%dT%H:%M:%S.") + f"{issued.microsecond // 1000:03d}Z"
    assertion = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml2": SAML, "xsi": XSI},
                              ID=f"_{uuid.uuid4()}", IssueInstant=stamp, Version="2.0")
    issuer = etree.SubElement(assertion, f"{{{SAML}}}Issuer",
                              Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    issuer.text = professional.get("issuer", "")  # set to the signer's subject by signed_vihf
    subject = etree.SubElement(assertion, f"{{{SAML}}}Subject")
    etree.SubElement(subject, f"{{{SAML}}}NameID").text = professional["national_id"]
    authn = etree.SubElement(assertion, f"{{{SAML}}}AuthnStatement", AuthnInstant=stamp)
    context = etree.SubElement(authn, f"{{{SAML}}}AuthnContext")
    etree.SubElement(context, f"{{{SAML}}}AuthnContextClassRef").text = _SMARTCARD
    if mode == "INDIRECTE_RENFORCEE":
        etree.SubElement(context, f"{{{SAML}}}AuthnContextDecl").text = _SMARTCARD
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    _attribute(statement, "Identifiant_Structure", professional["structure_id"])
    _attribute(statement, "Secteur_Activite", f"{professional['sector']}^1.2.250.1.71.4.2.4")
    _attribute(statement, "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
               f"{professional['given_name']} {professional['family_name']}")
    _roles(statement, professional, defects)
    _attribute(statement, "VIHF_Version", "3.0")
    _attribute(statement, "Authentification_mode", mode)
    resource = patient_ins[:13] if "vihf_wrong_ins" in defects else patient_ins
    _attribute(statement, "urn:oasis:names:tc:xacml:2.0:resource:resource-id", f"{resource}^^^&{ins_oid}&ISO^NH")
    _attribute(statement, "Ressource_URN", "urn:dmp")
    if "vihf_purpose_not_declared" not in defects:
        _coded(_attribute(statement, "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"), "PurposeOfUse",
               purpose, "1.2.250.1.213.1.1.4.248", _PURPOSE_DISPLAY[purpose], "mode acces VIHF 2.0")
    _attribute(statement, "LPS_ID", lps["id"])
    _attribute(statement, "LPS_Nom", lps["name"])
    _attribute(statement, "LPS_Version", lps["version"])
    if "vihf_no_lps_homologation" not in defects:
        _attribute(statement, "LPS_ID_HOMOLOGATION_DMP", lps["homologation"])
    return assertion


def sign_vihf(assertion: etree._Element, cert_pem: bytes, key_pem: bytes,
              defects: frozenset[str] = frozenset()) -> etree._Element:
    """The assertion signed (enveloped, after Issuer as SAML wants), or as is under ``vihf_unsigned``."""
    if "vihf_unsigned" in defects:
        return assertion
    key = load_pem_private_key(key_pem, password=None)
    method = SignatureMethod.ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else SignatureMethod.RSA_SHA256
    placeholder = etree.Element(f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    assertion.find(f"{{{SAML}}}Issuer").addnext(placeholder)
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=method,
                       digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=EXC_C14N)
    signed = signer.sign(assertion, key=key_pem, cert=cert_pem.decode(), reference_uri=f"#{assertion.get('ID')}")
    if "vihf_bad_signature" in defects:
        version = signed.find(f".//{{{SAML}}}Attribute[@Name='LPS_Version']/{{{SAML}}}AttributeValue")
        version.text = f"{version.text}-modified"
    return signed


def signed_vihf(professional: Mapping[str, Any], patient_ins: str, *, mode: str, lps: Mapping[str, str],
                cps: tuple[bytes, bytes, str] | None, structure: tuple[bytes, bytes, str],
                purpose: str = "normal", issue_instant: datetime | None = None,
                defects: frozenset[str] = frozenset()) -> etree._Element:
    """Build and sign with the certificate the mode wants. ``cps`` and ``structure`` are (certificate PEM,
    key PEM, RFC 4514 subject); DIRECTE needs ``cps``."""
    use_cps = mode == "DIRECTE" and "vihf_wrong_mode" not in defects
    if use_cps and cps is None:
        raise ValueError("DIRECTE needs the professional's CPS certificate")
    cert_pem, key_pem, subject = cps if use_cps and cps else structure
    assertion = build_vihf({**professional, "issuer": subject}, patient_ins, mode=mode, lps=lps, purpose=purpose,
                           issue_instant=issue_instant, defects=defects)
    return sign_vihf(assertion, cert_pem, key_pem, defects)


def professional_from_psc(userinfo: Mapping[str, Any], *, structure_id: str, sector: str) -> dict[str, Any]:
    """The professional of a Pro Santé Connect userinfo answer: the national id is ``SubjectNameID`` (never
    ``sub``), profession and savoir-faire from the first exercice."""
    exercice = userinfo["SubjectRefPro"]["exercices"][0]
    return {
        "national_id": userinfo["SubjectNameID"],
        "family_name": exercice.get("nomDexercice") or userinfo.get("family_name", ""),
        "given_name": exercice.get("prenomDexercice") or userinfo.get("given_name", ""),
        "profession_code": exercice["codeProfession"],
        "savoir_faire_code": exercice.get("codeSavoirFaire") or None,
        "structure_id": structure_id,
        "sector": sector,
    }
