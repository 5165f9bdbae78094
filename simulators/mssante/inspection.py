"""Judging a message submitted over SMTP: headers, subject, XDM archive, CDA agreement, read receipts.

:func:`inspect_message` returns what the session's notes keep of a message (ids, addresses, what it is) with
its findings; the campaign checks (:mod:`simulators.mssante.checks`) read them from the evidence.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from esante.simulators.dataset import Dataset
from esante.simulators.kits.ihe_xds.ebrim import MetadataError, parse_submission
from esante.simulators.kits.ihe_xds.submission import check_submission
from esante.simulators.mssante.findings import Finding
from esante.simulators.mssante.protocol import (
    DNT,
    ERROR_UNKNOWN_PATIENT,
    H_CODECDA,
    H_INS,
    H_MES,
    H_NIL,
    KO_SUBJECT_PREFIX,
    MDN_ERROR_PREFIX,
    MDN_PROCESSED,
    MES_FIN,
    XDM_ATTACHMENT,
    XDM_SUBJECT_PREFIX,
)
from esante.simulators.mssante.xdm import HostileArchive, XdmContent, cda_summary, inspect_xdm


@dataclass(frozen=True, slots=True)
class Original:
    """What the simulator remembers of a message it delivered, to judge the receipts that answer it."""

    receipt_asked: bool
    patient_known: bool | None  # None: no structured document


@dataclass(slots=True)
class Inspection:
    message: EmailMessage
    notes: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    def to_notes(self) -> dict[str, Any]:
        return {**self.notes, "findings": [f.to_json() for f in self.findings]}


MAX_DMP_FINDINGS = 50


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def dmp_document_checks(metadata: Any, documents: dict[str, bytes], dataset: Dataset) -> list[Finding]:
    """THE SEAM to the DMP simulator's document checks: the XDM's SubmitObjectsRequest and its CDA documents
    (DocumentEntry id → bytes) judged as the DMP judges a submission (CDA header, XDS metadata and value sets,
    their agreement). They are kept apart, in the message's ``dmp_findings`` notes, as ``dmp.<rule>``: evidence,
    not yet verdicts, because the seeded and reference documents are minimal CDA (no CI-SIS volet); judging them
    in ``mss.xdm_archive`` is one line once those documents are full DMP-conformant CDA."""
    try:
        submission = parse_submission(metadata)
    except MetadataError as exc:
        return [Finding(f"dmp.{exc.code}", "MSS-XDM-02", exc.location, exc.message)]
    return [Finding(f"dmp.{f.rule}", f.requirement or "MSS-XDM-02", f.location, f.message, f.severity)
            for f in check_submission(submission, documents, dataset)]


def inspect_message(raw: bytes, recipients: list[str], *, dataset: Dataset, patient_recipients: list[str],
                    originals: dict[str, Original]) -> Inspection:
    msg = parse(raw)
    notes: dict[str, Any] = {"message_id": str(msg.get("Message-ID", "")).strip(), "from": str(msg.get("From", "")),
                             "to": recipients, "subject": str(msg.get("Subject", "")), "size": len(raw),
                             "receipt_asked": msg.get(DNT) is not None}
    inspection = Inspection(msg, notes)
    if msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "disposition-notification":
        notes["kind"] = "mdn"
        _judge_mdn(inspection, originals)
        return inspection
    notes["kind"] = "mail"
    found = inspection.findings
    if not str(msg.get(H_NIL, "")).strip():
        found.append(Finding("headers.nil", "MSS-HDR-01", H_NIL, f"{H_NIL} (the product reference) is missing"))
    if patient_recipients and str(msg.get(H_MES, "")).strip().upper() != MES_FIN:
        found.append(Finding("headers.mes_fin", "MSS-HDR-02", H_MES,
                             f"mail to the patient address {patient_recipients[0]} without {H_MES}: {MES_FIN} "
                             f"(got {msg.get(H_MES)!r})"))
    attachment = _xdm_attachment(msg)
    notes["structured"] = attachment is not None
    if attachment is not None:
        _judge_structured(inspection, attachment, dataset)
    return inspection


def _xdm_attachment(msg: EmailMessage) -> bytes | None:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == XDM_ATTACHMENT:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return None


def _judge_structured(inspection: Inspection, data: bytes, dataset: Dataset) -> None:
    msg, notes, found = inspection.message, inspection.notes, inspection.findings
    subject = str(msg.get("Subject", ""))
    if not subject.startswith(XDM_SUBJECT_PREFIX + "+"):
        found.append(Finding("subject.xdm", "MSS-STR-01", "Subject",
                             f"a message with {XDM_ATTACHMENT} must have a subject starting "
                             f"'{XDM_SUBJECT_PREFIX}+<libellé>' (got {subject[:80]!r})"))
    try:
        content = inspect_xdm(data)
    except HostileArchive as exc:
        notes["archive_refused"] = str(exc)
        found.append(Finding("xdm.hostile", "MSS-XDM-01", XDM_ATTACHMENT, f"archive refused unread: {exc}"))
        return
    found.extend(content.findings)
    codes, patients = _agreement(content, found)
    notes["documents"] = sorted(content.documents())
    notes["cda_codes"] = sorted(codes)
    notes["patients"] = sorted(patients)
    notes["patient_known"] = bool(patients) and all(_known_patient(dataset, ins) for ins in patients)
    declared = {c.strip() for c in str(msg.get(H_CODECDA, "")).replace(";", ",").split(",") if c.strip()}
    if codes and not declared >= codes:
        found.append(Finding("headers.codecda", "MSS-HDR-03", H_CODECDA,
                             f"{H_CODECDA} is {msg.get(H_CODECDA)!r}; the archive's CDA codes are "
                             f"{', '.join(sorted(codes))}"))
    if str(msg.get(H_INS, "")).strip() not in ("O", "N"):
        found.append(Finding("headers.ins", "MSS-HDR-03", H_INS,
                             f"{H_INS} must be O or N with a structured document (got {msg.get(H_INS)!r})"))
    if content.metadata is not None:
        dmp = dmp_document_checks(content.metadata, content.documents(), dataset)
        notes["dmp_findings"] = [f.to_json() for f in dmp[:MAX_DMP_FINDINGS]]


def _agreement(content: XdmContent, found: list[Finding]) -> tuple[set[str], set[str]]:
    """Metadata ↔ CDA: the patient of each DocumentEntry is the CDA's; the CDA codes and patients (INS)."""
    codes, patients = set(), set()
    for entry_id, document in content.documents().items():
        summary = cda_summary(document)
        where = f"DocumentEntry {entry_id}"
        if summary is None:
            found.append(Finding("cda.readable", "MSS-XDM-02", where, "the document is not a readable CDA"))
            continue
        if summary.code:
            codes.add(summary.code)
        if summary.ins:
            patients.add(summary.ins)
        entry = next(e for e in content.entries if e.id == entry_id)
        metadata_ins = (entry.patient_id or "").split("^")[0]
        if summary.ins != metadata_ins:
            found.append(Finding("xdm.patient_agreement", "MSS-XDM-02", where,
                                 f"metadata patientId {metadata_ins!r} is not the CDA's INS {summary.ins!r}"))
    return codes, patients


def _known_patient(dataset: Dataset, ins: str) -> bool:
    return any(p.ins.nir + p.ins.key == ins for p in dataset.patients)


def _judge_mdn(inspection: Inspection, originals: dict[str, Original]) -> None:
    msg, notes, found = inspection.message, inspection.notes, inspection.findings
    report = next((p for p in msg.walk() if p.get_content_type() == "message/disposition-notification"), None)
    if report is None:
        found.append(Finding("mdn.form", "MSS-MDN-01", "multipart/report",
                             "no message/disposition-notification part"))
        return
    fields = _report_fields(report)
    original_id = fields.get("original-message-id", "")
    disposition = fields.get("disposition", "")
    notes |= {"original_message_id": original_id, "disposition": disposition}
    for required in ("final-recipient", "disposition", "original-message-id"):
        if required not in fields:
            found.append(Finding("mdn.form", "MSS-MDN-01", "message/disposition-notification",
                                 f"the report has no {required} field"))
    original = originals.get(original_id)
    notes["answers_known_message"] = original is not None
    if original is not None and not original.receipt_asked:
        found.append(Finding("mdn.unsolicited", "MSS-MDN-01", "Original-Message-ID",
                             f"a read receipt for {original_id}, which asked for none ({DNT} absent)"))
    if original is not None and original.patient_known is False:
        if not disposition.startswith(MDN_ERROR_PREFIX + ERROR_UNKNOWN_PATIENT + "^"):
            found.append(Finding("mdn.error_902", "MSS-MDN-02", "Disposition",
                                 f"the document's patient is unknown: the receipt must say '{MDN_ERROR_PREFIX}"
                                 f"{ERROR_UNKNOWN_PATIENT}^…' (got {disposition!r})"))
        if not str(msg.get("Subject", "")).startswith(KO_SUBJECT_PREFIX):
            found.append(Finding("mdn.error_902", "MSS-MDN-02", "Subject",
                                 f"an error receipt's subject starts with '{KO_SUBJECT_PREFIX}' "
                                 f"(got {str(msg.get('Subject', ''))[:80]!r})"))
    if original is not None and original.patient_known and disposition != MDN_PROCESSED:
        found.append(Finding("mdn.disposition", "MSS-MDN-01", "Disposition",
                             f"the document was integrable: expected {MDN_PROCESSED!r} (got {disposition!r})"))


def _report_fields(report: Any) -> dict[str, str]:
    """The fields of a message/disposition-notification body (RFC 8098 §3.1), lower-case names."""
    payload = report.get_payload()
    if isinstance(payload, list):  # the email package parses it as header blocks
        text = "".join(str(block) for block in payload)
    else:
        text = report.get_payload(decode=True).decode("utf-8", "replace") if report.get_payload(decode=True) \
            else str(payload)
    fields: dict[str, str] = {}
    unfolded = text.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ")
    for line in unfolded.split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    return fields
