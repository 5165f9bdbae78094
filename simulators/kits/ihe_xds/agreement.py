"""Agreement between a DocumentEntry, the header of its CDA document and the data set's people: rule ``agreement``.

The CI-SIS maps the CDA header onto the XDS metadata (patientId = INS, authorPerson = author ids, typeCode =
code, confidentialityCode, creationTime = effectiveTime in UTC, service times = documentationOf, uniqueId =
id, formatCode from the body). Severity follows what the DMP does with its own examples: the official TD2.1
request's creationTime, service times and uniqueId differ from its CDA, so those disagreements are warnings;
the patient, type, confidentiality, author and format must agree (errors).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from esante.simulators.core.findings import Finding, Severity
from esante.simulators.dataset.models import Dataset
from esante.simulators.kits.ihe_xds.authorities import INS_OIDS, PS_NATIONAL_ID_OID
from esante.simulators.kits.ihe_xds.cda import CdaHeader
from esante.simulators.kits.ihe_xds.ebrim import DocumentEntry
from esante.simulators.kits.ihe_xds.hl7v2 import parse_cx, parse_xcn
from esante.simulators.kits.ihe_xds.rules import AGREEMENT, finding

#: nonXMLBody mediaType -> the XDS-SD formatCode it requires (JDV_J10).
SD_FORMATS = {"application/pdf": "urn:ihe:iti:xds-sd:pdf:2008", "text/plain": "urn:ihe:iti:xds-sd:text:2008",
              "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010", "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
              "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010"}
_META = "XDSRegistryMetadataError"


def _finding(requirement: str, location: str, message: str, code: str = _META,
             severity: Severity = "error") -> Finding:
    return finding(AGREEMENT, code, requirement, location, message, severity)


_TS = re.compile(r"^(\d{4,14})(?:\.\d+)?(?:([+-])(\d{2})(\d{2}))?$")


def utc_dtm(timestamp: str | None) -> str | None:
    """A CDA TS (local time, optional offset) as the XDS DTM in UTC; no offset or no time: kept as it is.
    Not a TS at all: returned unchanged (the header rules report it)."""
    match = _TS.match(timestamp or "")
    if match is None:
        return timestamp
    digits, sign, hours, minutes = match.groups()
    if len(digits) < 12 or sign is None:
        return digits
    try:
        moment = dt.datetime.strptime(digits[:12] + digits[12:14].ljust(2, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return digits
    shift = dt.timedelta(hours=int(hours), minutes=int(minutes))
    return (moment - shift if sign == "+" else moment + shift).strftime("%Y%m%d%H%M%S")[:len(digits)]


def _same_time(metadata: str | None, cda: str | None) -> bool:
    """True when both say the same instant to the precision of the shorter (absent on either side: no claim)."""
    if not metadata or not cda:
        return True
    cda_utc = utc_dtm(cda) or ""
    length = min(len(metadata), len(cda_utc))
    return metadata[:length] == cda_utc[:length]


def _patient(where: str, entry: DocumentEntry, header: CdaHeader, dataset: Dataset) -> Iterator[Finding]:
    ins = next((ii for ii in header.patient_ids if ii.root in INS_OIDS), None)
    cx = parse_cx(entry.patient_id or "")
    if ins is None or cx.problem:
        return  # reported by the CDA header and metadata rules
    if (cx.id, cx.oid) != (ins.extension, ins.root):
        yield _finding("DMP-AGR-PATIENT", f"{where} ExternalIdentifier patientId",
                       f"patientId {cx.id} ({cx.oid}) is not the CDA's INS {ins.extension} ({ins.root})",
                       "XDSPatientIdDoesNotMatch")
        return
    known = any(patient.ins.nir + patient.ins.key == cx.id and patient.ins.oid == cx.oid
                for patient in dataset.patients)
    if not known:
        yield _finding("DMP-AGR-PATIENT-KNOWN", f"{where} ExternalIdentifier patientId",
                       f"INS {cx.id} ({cx.oid}) is not a patient of the DMP (data set {dataset.name})",
                       "XDSUnknownPatientId")


def _authors(where: str, entry: DocumentEntry, header: CdaHeader, dataset: Dataset) -> Iterator[Finding]:
    cda_ids = {ii.extension for ids in header.author_ids for ii in ids if ii.root == PS_NATIONAL_ID_OID}
    metadata_ids = {parse_xcn(author.person or "").id for author in entry.authors} - {""}
    if cda_ids and metadata_ids and cda_ids != metadata_ids:
        yield _finding("DMP-AGR-AUTHOR", f"{where} classification author slot authorPerson",
                       f"authorPerson ids {sorted(metadata_ids)} differ from the CDA authors' {sorted(cda_ids)}")
    known = {professional.national_id for professional in dataset.professionals}
    for national_id in sorted(metadata_ids - known):
        yield _finding("DMP-AGR-AUTHOR-KNOWN", f"{where} classification author slot authorPerson",
                       f"author {national_id} is not a professional of the data set {dataset.name}",
                       severity="warning")


def _codes(where: str, entry: DocumentEntry, header: CdaHeader) -> Iterator[Finding]:
    type_code, code = entry.type_code, header.code
    if type_code and code and code.system and (type_code.code, type_code.scheme) != (code.code, code.system):
        yield _finding("DMP-AGR-TYPECODE", f"{where} classification typeCode",
                       f"typeCode {type_code.code} ({type_code.scheme}) is not the CDA code "
                       f"{code.code} ({code.system})")
    level = header.confidentiality
    if level and entry.confidentiality_codes and not any(
            (c.code, c.scheme) == (level.code, level.system) for c in entry.confidentiality_codes):
        yield _finding("DMP-AGR-CONFIDENTIALITY", f"{where} classification confidentialityCode",
                       f"the CDA confidentialityCode {level.code} is not among the metadata's "
                       f"{', '.join(c.code for c in entry.confidentiality_codes)}")
    fmt = entry.format_code
    if fmt is not None and header.body_kind is not None:
        expected = SD_FORMATS.get(header.media_type or "") if header.body_kind == "nonXML" else None
        wrong = (fmt.code != expected) if header.body_kind == "nonXML" else fmt.code in SD_FORMATS.values()
        if wrong:
            what = f"an XDS-SD formatCode {expected}" if expected else "a structured (non XDS-SD) formatCode"
            yield _finding("DMP-AGR-FORMATCODE", f"{where} classification formatCode",
                           f"formatCode {fmt.code} does not describe the CDA body ({header.body_kind}, "
                           f"{header.media_type or 'structured'}): expected {what}")


def _times_and_ids(where: str, entry: DocumentEntry, header: CdaHeader) -> Iterator[Finding]:
    pairs = (("creationTime", entry.creation_time, "effectiveTime", header.effective_time),
             ("serviceStartTime", entry.service_start_time, "documentationOf/serviceEvent/effectiveTime/low",
              header.service_start),
             ("serviceStopTime", entry.service_stop_time, "documentationOf/serviceEvent/effectiveTime/high",
              header.service_stop))
    for slot, value, cda_name, cda_value in pairs:
        if not _same_time(value, cda_value):
            yield _finding("DMP-AGR-TIMES", f"{where} slot {slot}",
                           f"{slot} {value} is not the CDA {cda_name} {cda_value} in UTC ({utc_dtm(cda_value)})",
                           severity="warning")
    document_id = header.document_id
    if document_id is not None and entry.unique_id and entry.unique_id != document_id.root:
        yield _finding("DMP-AGR-UNIQUEID", f"{where} ExternalIdentifier uniqueId",
                       f"uniqueId {entry.unique_id} is not the CDA id {document_id.root}", severity="warning")


def check_agreement(entry: DocumentEntry, header: CdaHeader, dataset: Dataset) -> list[Finding]:
    where = f"ExtrinsicObject {entry.id}"
    return [*_patient(where, entry, header, dataset), *_authors(where, entry, header, dataset),
            *_codes(where, entry, header), *_times_and_ids(where, entry, header)]
