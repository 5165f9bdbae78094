"""XDS metadata rules of a submission (IHE ITI TF-3 4.2.3 as the CI-SIS profiles it): rule ``xds_metadata``.

Required attributes, coded values against the value sets (:mod:`.value_sets`), HL7 v2 forms with the French
authorities (patient CX with an INS OID, authorPerson XCN with 1.2.250.1.71.4.2.1, authorInstitution XON),
hash/size against the received bytes, and the submission's wiring (HasMember per document, bytes per entry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

from esante.simulators.core.findings import Finding
from esante.simulators.kits.ihe_xds.authorities import (
    CONFIDENTIALITY_SYSTEM,
    INS_OIDS,
    PS_NATIONAL_ID_OID,
    STRUCTURE_OID,
    is_oid,
)
from esante.simulators.kits.ihe_xds.ebrim import HAS_MEMBER, Author, Coded, DocumentEntry, Submission, SubmissionSet
from esante.simulators.kits.ihe_xds.hl7v2 import parse_cx, parse_dtm, parse_xcn, parse_xon
from esante.simulators.kits.ihe_xds.rules import XDS_METADATA, finding
from esante.simulators.kits.ihe_xds.value_sets import ValueSets, cisis_value_sets

_META = "XDSRegistryMetadataError"
_CODED_FIELDS = {  # field -> (slot/classification name in messages, requirement id)
    "class_code": ("classCode", "DMP-XDS-CLASSCODE"),
    "type_code": ("typeCode", "DMP-XDS-TYPECODE"),
    "format_code": ("formatCode", "DMP-XDS-FORMATCODE"),
    "healthcare_facility_type_code": ("healthcareFacilityTypeCode", "DMP-XDS-FACILITYTYPECODE"),
    "practice_setting_code": ("practiceSettingCode", "DMP-XDS-PRACTICESETTINGCODE"),
}
_REQUIRED_SLOTS = {"creation_time": "creationTime", "language_code": "languageCode",
                   "source_patient_id": "sourcePatientId"}
_TIMES = {"creation_time": "creationTime", "service_start_time": "serviceStartTime",
          "service_stop_time": "serviceStopTime"}


def _finding(requirement: str, location: str, message: str, code: str = _META) -> Finding:
    return finding(XDS_METADATA, code, requirement, location, message)


def patient_id_problem(value: str | None) -> str | None:
    """Why ``value`` is not a patient id CX with an INS authority, None when it is one."""
    if not value:
        return "is missing"
    cx = parse_cx(value)
    if cx.problem:
        return f"{value!r} is not a CX: {cx.problem}"
    if cx.oid not in INS_OIDS:
        return f"{value!r} is not assigned by an INS authority ({', '.join(INS_OIDS)})"
    return None


def _coded(sets: ValueSets, where: str, attribute: str, name: str, requirement: str,
           coded: Coded | None) -> Iterator[Finding]:
    if coded is None:
        yield _finding(requirement, f"{where} classification {name}", f"{name} is missing")
        return
    problem = sets.problem(attribute, coded)
    if problem:
        yield _finding(requirement, f"{where} classification {name}", f"{name} {problem}")


def _authors(where: str, authors: tuple[Author, ...]) -> Iterator[Finding]:
    if not authors:
        yield _finding("DMP-XDS-AUTHOR", f"{where} classification author", "no author classification")
    for number, author in enumerate(authors, 1):
        person = parse_xcn(author.person or "")
        if not person.id or person.oid != PS_NATIONAL_ID_OID:
            yield _finding("DMP-XDS-AUTHOR", f"{where} author[{number}] slot authorPerson",
                           f"authorPerson {author.person!r} must be an XCN whose id is the national PS id "
                           f"assigned by &{PS_NATIONAL_ID_OID}&ISO (XCN.9)")
        for institution in author.institutions:
            xon = parse_xon(institution)
            if not xon.name or not xon.id or xon.oid != STRUCTURE_OID:
                yield _finding("DMP-XDS-AUTHOR", f"{where} author[{number}] slot authorInstitution",
                               f"authorInstitution {institution!r} must be an XON "
                               f"name^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^<national structure id>")


def _document_entry(entry: DocumentEntry, sets: ValueSets) -> Iterator[Finding]:
    where = f"ExtrinsicObject {entry.id}"
    problem = patient_id_problem(entry.patient_id)
    if problem:
        yield _finding("DMP-XDS-PATIENTID", f"{where} ExternalIdentifier patientId", f"patientId {problem}")
    if not is_oid(entry.unique_id):
        yield _finding("DMP-XDS-UNIQUEID", f"{where} ExternalIdentifier uniqueId",
                       f"uniqueId {entry.unique_id!r} must be an OID of at most 64 characters (the DMP refuses "
                       "the OID^extension form)")
    for attribute, slot in _REQUIRED_SLOTS.items():
        if not getattr(entry, attribute):
            yield _finding("DMP-XDS-REQUIRED", f"{where} slot {slot}", f"the {slot} slot is missing")
    for attribute, slot in _TIMES.items():
        value = getattr(entry, attribute)
        if value and (parse_dtm(value) is None or not value.isdigit()):
            yield _finding("DMP-XDS-DTM", f"{where} slot {slot}",
                           f"{slot} {value!r} is not an HL7 DTM (YYYY[MM[DD[hh[mm[ss]]]]], UTC)")
    mime = sets.problem("mime_type", Coded(entry.mime_type or "", "mimeType"))
    if mime:
        yield _finding("DMP-XDS-MIMETYPE", f"{where} mimeType", f"mimeType {entry.mime_type!r}: {mime}")
    for attribute, (name, requirement) in _CODED_FIELDS.items():
        yield from _coded(sets, where, attribute, name, requirement, getattr(entry, attribute))
    yield from _confidentiality(sets, where, entry.confidentiality_codes)
    for coded in entry.event_codes:
        yield from _coded(sets, where, "event_code", "eventCodeList", "DMP-XDS-EVENTCODE", coded)
    yield from _authors(where, entry.authors)


def _confidentiality(sets: ValueSets, where: str, codes: tuple[Coded, ...]) -> Iterator[Finding]:
    location = f"{where} classification confidentialityCode"
    for coded in codes:
        yield from _coded(sets, where, "confidentiality_code", "confidentialityCode", "DMP-XDS-CONFIDENTIALITY", coded)
    levels = [coded for coded in codes if coded.scheme == CONFIDENTIALITY_SYSTEM]
    if len(levels) != 1:
        yield _finding("DMP-XDS-CONFIDENTIALITY", location,
                       f"exactly one confidentiality level N/R/V ({CONFIDENTIALITY_SYSTEM}) is required, "
                       f"found {len(levels)}")


def _submission_set(submission_set: SubmissionSet | None, sets: ValueSets) -> Iterator[Finding]:
    if submission_set is None:
        yield _finding("DMP-XDS-SUBMISSIONSET", "RegistryObjectList", "the submission has no SubmissionSet")
        return
    where = f"RegistryPackage {submission_set.id}"
    problem = patient_id_problem(submission_set.patient_id)
    if problem:
        yield _finding("DMP-XDS-PATIENTID", f"{where} ExternalIdentifier patientId", f"patientId {problem}")
    for value, name in ((submission_set.unique_id, "ExternalIdentifier uniqueId"),
                        (submission_set.source_id, "ExternalIdentifier sourceId"),
                        (submission_set.submission_time, "slot submissionTime")):
        if not value:
            yield _finding("DMP-XDS-SUBMISSIONSET", f"{where} {name}", f"{name.split()[-1]} is missing")
    yield from _coded(sets, where, "content_type_code", "contentTypeCode", "DMP-XDS-CONTENTTYPECODE",
                      submission_set.content_type_code)
    yield from _authors(where, submission_set.authors)


def _wiring(submission: Submission, documents: Mapping[str, bytes]) -> Iterator[Finding]:
    submission_set = submission.submission_set
    members = {a.target for a in submission.associations
               if a.type == HAS_MEMBER and submission_set is not None and a.source == submission_set.id}
    patient = parse_cx(submission_set.patient_id or "") if submission_set else None
    same_patient = patient is not None and not patient.problem
    for entry in submission.documents:
        where = f"ExtrinsicObject {entry.id}"
        if entry.id not in members:
            yield _finding("DMP-XDS-HASMEMBER", f"{where} Association HasMember",
                           "no HasMember association links the SubmissionSet to this DocumentEntry")
        if same_patient and not parse_cx(entry.patient_id or "").problem \
                and _cx_key(entry.patient_id) != _cx_key(submission_set.patient_id):
            yield _finding("DMP-XDS-PATIENTID", f"{where} ExternalIdentifier patientId",
                           f"patientId {entry.patient_id!r} differs from the SubmissionSet's "
                           f"{submission_set.patient_id!r}", "XDSPatientIdDoesNotMatch")
        data = documents.get(entry.id)
        if data is None:
            yield _finding("DMP-XDS-DOCUMENT", where, "no document bytes were sent for this DocumentEntry",
                           "XDSMissingDocument")
            continue
        yield from _hash_and_size(where, entry, data)
    known = {entry.id for entry in submission.documents}
    for extra in sorted(set(documents) - known):
        yield _finding("DMP-XDS-DOCUMENT", f"Document {extra}", "document bytes without a DocumentEntry",
                       "XDSMissingDocumentMetadata")


def _cx_key(value: str | None) -> tuple[str, str]:
    cx = parse_cx(value or "")
    return cx.id, cx.oid


def _hash_and_size(where: str, entry: DocumentEntry, data: bytes) -> Iterator[Finding]:
    # Optional in ITI-41 (the repository computes them), they must match the bytes when sent.
    if entry.hash is not None:
        actual = hashlib.sha1(data).hexdigest()
        if entry.hash.lower() != actual:
            yield _finding("DMP-XDS-HASH", f"{where} slot hash",
                           f"hash {entry.hash!r} is not the SHA-1 of the document ({actual})",
                           "XDSRepositoryMetadataError")
    if entry.size is not None and entry.size != str(len(data)):
        yield _finding("DMP-XDS-SIZE", f"{where} slot size",
                       f"size {entry.size!r} is not the document's {len(data)} bytes", "XDSRepositoryMetadataError")


def check_metadata(submission: Submission, documents: Mapping[str, bytes],
                   value_sets: ValueSets | None = None) -> list[Finding]:
    """Every ``xds_metadata`` finding of one submission, its codes judged by ``value_sets`` (the CI-SIS ones
    unless a service gives its own)."""
    sets = value_sets or cisis_value_sets()
    findings = list(_submission_set(submission.submission_set, sets))
    for entry in submission.documents:
        findings.extend(_document_entry(entry, sets))
    findings.extend(_wiring(submission, documents))
    return findings
