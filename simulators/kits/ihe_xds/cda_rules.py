"""CI-SIS header rules (volet Structuration minimale des documents de santé, 3.5) over a :class:`CdaHeader`.

Each rule is one requirement id. Severity follows the spec text and the DMP's own examples:

* the INS identity traits (family/given names qualified BR, gender, birth date, birth place COG) are
  mandatory "si le matricule INS est présent" since the INS became mandatory on 1 January 2021: a document
  whose effectiveTime is older was produced under the previous rules and gets warnings (the official TD2.1
  example, dated 2019, has a "SP" family name and no birth place);
* setId and versionNumber are [1..1] in the volet, but the DMP's own TD2.1 example has neither: warnings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from esante.simulators.core.findings import Finding, Severity
from esante.simulators.kits.ihe_xds.authorities import CONFIDENTIALITY_SYSTEM, INS_OIDS, PS_NATIONAL_ID_OID, is_oid
from esante.simulators.kits.ihe_xds.cda import CdaHeader
from esante.simulators.kits.ihe_xds.rules import CDA_HEADER, finding

HL7_FRANCE_TEMPLATE = "2.16.840.1.113883.2.8.2.1"
CISIS_TEMPLATE = "1.2.250.1.213.1.1.1.1"
XDS_SD_TEMPLATE = "1.3.6.1.4.1.19376.1.2.20"
CDA_TYPE_ID = ("2.16.840.1.113883.1.3", "POCD_HD000040")
NON_XML_MEDIA_TYPES = ("application/pdf", "image/jpeg", "image/tiff", "text/plain", "text/rtf")
INS_MANDATORY_SINCE = "20210101"
_INS = re.compile(r"^[1-478](\d{2})(\d{2})(\d{2}|2A|2B)\d{6}\d{2}$")
_TS = re.compile(r"^\d{8}(\d{4}(\d{2}(\.\d{1,4})?)?)?([+-]\d{4})?$")
_COG = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_CODE = "XDSRepositoryError"

Issue = tuple[str, str, str, Severity]  # requirement, path, message, severity
Rule = Callable[[CdaHeader], Iterator[Issue]]


def _error(requirement: str, path: str, message: str) -> Issue:
    return requirement, path, message, "error"


def realm_and_type(header: CdaHeader) -> Iterator[Issue]:
    if header.realm != "FR":
        yield _error("CISIS-HDR-REALM", "/ClinicalDocument/realmCode",
                     f"realmCode/@code is {header.realm!r}; expected \"FR\"")
    type_id = header.type_id
    if type_id is None or (type_id.root, type_id.extension) != CDA_TYPE_ID:
        yield _error("CISIS-HDR-TYPEID", "/ClinicalDocument/typeId",
                     f"typeId is {type_id}; expected root {CDA_TYPE_ID[0]} extension {CDA_TYPE_ID[1]}")


def templates(header: CdaHeader) -> Iterator[Issue]:
    required = [HL7_FRANCE_TEMPLATE, CISIS_TEMPLATE]
    if header.body_kind == "nonXML":
        required.append(XDS_SD_TEMPLATE)
    declared = ", ".join(header.template_ids) or "none"
    for template in required:
        if template not in header.template_ids:
            yield _error("CISIS-HDR-TEMPLATE", "/ClinicalDocument/templateId",
                         f"templateId {template} is missing (declared: {declared})")
    if header.body_kind == "structured" and not set(header.template_ids) - set(required):
        yield _error("CISIS-HDR-TEMPLATE", "/ClinicalDocument/templateId",
                     f"a structured document declares the template of its volet after the CI-SIS ones "
                     f"(templateId [3..*], 3.5.5.3); declared: {declared}")


def document_fields(header: CdaHeader) -> Iterator[Issue]:
    if header.document_id is None or not is_oid(header.document_id.root):
        yield _error("CISIS-HDR-ID", "/ClinicalDocument/id/@root",
                     f"the document id {header.document_id} must have an OID of at most 64 characters as @root")
    elif header.document_id.extension:
        yield _error("CISIS-HDR-ID", "/ClinicalDocument/id/@extension",
                     "the DMP needs the document id as a full OID in @root, without @extension (3.5.5.4)")
    if header.code is None or not header.code.system:
        yield _error("CISIS-HDR-CODE", "/ClinicalDocument/code",
                     "the document type code (@code, @codeSystem) is missing")
    if not header.title:
        yield _error("CISIS-HDR-TITLE", "/ClinicalDocument/title", "the document title is missing or empty")
    if not _TS.match(header.effective_time or ""):
        yield _error("CISIS-HDR-EFFECTIVE-TIME", "/ClinicalDocument/effectiveTime/@value",
                     f"effectiveTime is {header.effective_time!r}; expected a timestamp YYYYMMDD[HHMM[SS]][+ZZZZ]")
    confidentiality = header.confidentiality
    if confidentiality is None or confidentiality.system != CONFIDENTIALITY_SYSTEM \
            or confidentiality.code not in ("N", "R", "V"):
        yield _error("CISIS-HDR-CONFIDENTIALITY", "/ClinicalDocument/confidentialityCode",
                     f"confidentialityCode is {confidentiality}; expected N, R or V in {CONFIDENTIALITY_SYSTEM}")
    if not header.language:
        yield _error("CISIS-HDR-LANGUAGE", "/ClinicalDocument/languageCode", "languageCode/@code is missing")
    if header.set_id is None or not header.version_number:
        yield ("CISIS-HDR-VERSIONING", "/ClinicalDocument/setId",
               "setId and versionNumber are [1..1] (3.5.5.10-11); the DMP accepts a document without them",
               "warning")


def ins_first(header: CdaHeader) -> Iterator[Issue]:
    ids = header.patient_ids
    where = "/ClinicalDocument/recordTarget/patientRole/id[1]"
    if not ids:
        yield _error("CISIS-HDR-INS-FIRST", where, "recordTarget/patientRole has no id; the INS is required")
        return
    first = ids[0]
    if first.root not in INS_OIDS:
        later = next((n for n, ii in enumerate(ids, 1) if ii.root in INS_OIDS), None)
        detail = f"the INS is at id[{later}]" if later else "there is no INS at all"
        yield _error("CISIS-HDR-INS-FIRST", where,
                     f"the first patient id has root {first.root}; it must be the INS matricule "
                     f"(root one of {', '.join(INS_OIDS)}): {detail}")
    elif not _INS.match(first.extension):
        yield _error("CISIS-HDR-INS-VALUE", f"{where}/@extension",
                     f"INS {first.extension!r} is not a NIR/NIA of 13 characters followed by its 2-digit key")


def ins_traits(header: CdaHeader) -> Iterator[Issue]:
    if not header.patient_ids or header.patient_ids[0].root not in INS_OIDS:
        return
    legacy = (header.effective_time or "")[:8] < INS_MANDATORY_SINCE
    severity: Severity = "warning" if legacy else "error"
    note = " (document older than the INS obligation of 2021-01-01: warning)" if legacy else ""
    patient = "/ClinicalDocument/recordTarget/patientRole/patient"
    checks = [
        ("CISIS-HDR-PATIENT-FAMILY", f"{patient}/name/family",
         any(q == "BR" and name for q, name in header.family_names), "the birth name family@qualifier=\"BR\""),
        ("CISIS-HDR-PATIENT-GIVEN", f"{patient}/name/given",
         any(q == "BR" and name for q, name in header.given_names)
         and any(not q and name for q, name in header.given_names),
         "the first given name given@qualifier=\"BR\" and the full list of given names (no qualifier)"),
        ("CISIS-HDR-PATIENT-GENDER", f"{patient}/administrativeGenderCode",
         header.gender in ("M", "F", "U"), "administrativeGenderCode/@code"),
        ("CISIS-HDR-PATIENT-BIRTHTIME", f"{patient}/birthTime",
         bool(re.match(r"^\d{8}", header.birth_time or "")), "birthTime/@value (YYYYMMDD)"),
        ("CISIS-HDR-PATIENT-BIRTHPLACE", f"{patient}/birthplace/place/addr/county",
         bool(_COG.match(header.birthplace_cog or "")), "the birth place COG code in birthplace/place/addr/county"),
    ]
    for requirement, path, ok, what in checks:
        if not ok:
            yield requirement, path, f"with an INS, {what} is mandatory (3.5.5.12){note}", severity


def author_and_custodian(header: CdaHeader) -> Iterator[Issue]:
    if not header.author_ids:
        yield _error("CISIS-HDR-AUTHOR-ID", "/ClinicalDocument/author", "the document has no author")
    for number, ids in enumerate(header.author_ids, 1):
        if not any(ii.root == PS_NATIONAL_ID_OID and ii.extension for ii in ids):
            yield _error("CISIS-HDR-AUTHOR-ID", f"/ClinicalDocument/author[{number}]/assignedAuthor/id",
                         f"the author needs an id with root {PS_NATIONAL_ID_OID} and the national PS id as "
                         f"extension; found {', '.join(f'{i.root}/{i.extension}' for i in ids) or 'none'}")
    if not any(ii.extension for ii in header.custodian_ids):
        yield _error("CISIS-HDR-CUSTODIAN", "/ClinicalDocument/custodian/assignedCustodian/"
                     "representedCustodianOrganization/id", "the custodian structure id (@root, @extension) is missing")
    if not header.legal_authenticator_ids:
        yield _error("CISIS-HDR-LEGAL-AUTHENTICATOR", "/ClinicalDocument/legalAuthenticator/assignedEntity/id",
                     "legalAuthenticator/assignedEntity/id is missing")


def context_and_body(header: CdaHeader) -> Iterator[Issue]:
    if header.documentation_of == 0:
        yield _error("CISIS-HDR-DOCUMENTATIONOF", "/ClinicalDocument/documentationOf",
                     "documentationOf [1..*] (the documented event) is missing")
    if not header.component_of:
        yield _error("CISIS-HDR-COMPONENTOF", "/ClinicalDocument/componentOf/encompassingEncounter",
                     "componentOf/encompassingEncounter [1..1] is missing")
    if header.body_kind is None:
        yield _error("CISIS-HDR-BODY", "/ClinicalDocument/component",
                     "the document has neither structuredBody nor nonXMLBody")
    elif header.body_kind == "nonXML" and (header.media_type not in NON_XML_MEDIA_TYPES
                                           or header.representation != "B64"):
        yield _error("CISIS-HDR-BODY", "/ClinicalDocument/component/nonXMLBody/text",
                     f"nonXMLBody/text has mediaType {header.media_type!r} and representation "
                     f"{header.representation!r}; expected one of {', '.join(NON_XML_MEDIA_TYPES)} and \"B64\" (3.7.2)")


RULES: tuple[Rule, ...] = (realm_and_type, templates, document_fields, ins_first, ins_traits,
                           author_and_custodian, context_and_body)


def check_header(header: CdaHeader, label: str) -> list[Finding]:
    """Findings (rule ``cda_header``) for the document whose DocumentEntry id is ``label``."""
    return [finding(CDA_HEADER, _CODE, requirement, f"CDA {label} {path}", message, severity)
            for rule in RULES for requirement, path, message, severity in rule(header)]
