"""Judging a message submitted over SMTP: headers, subject, XDM archive, CDA agreement, read receipts.

:func:`inspect_message` returns what the session's notes keep of a message (ids, addresses, what it is) with
its findings (:class:`~esante.simulators.mssante.notes.MessageNotes`); the test kit's checks read them from the
evidence.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from esante.simulators.core.findings import Finding
from esante.simulators.dataset import Dataset
from esante.simulators.kits.ihe_xds.ebrim import MetadataError, parse_submission
from esante.simulators.kits.ihe_xds.submission import check_submission
from esante.simulators.mssante.incoming import build, inbox_data
from esante.simulators.mssante.notes import MessageNotes
from esante.simulators.mssante.protocol import MES_FIN, Header, Mdn, Xdm
from esante.simulators.mssante.xdm import HostileArchive, XdmContent, cda_summary, inspect_xdm


@dataclass(frozen=True, slots=True)
class Original:
    """What the simulator remembers of a message it delivered, to judge the receipts that answer it."""

    receipt_asked: bool
    patient_known: bool | None  # None: no structured document


MAX_DMP_FINDINGS = 50


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def dmp_document_checks(metadata: Any, documents: dict[str, bytes], dataset: Dataset) -> list[Finding]:
    """The XDM's SubmitObjectsRequest and its CDA documents (DocumentEntry id → bytes) judged by the IHE XDS kit,
    as the DMP judges a submission (CDA header, XDS metadata and the CI-SIS value sets, their agreement). They are
    kept apart, in the message's ``dmp_findings`` notes, as ``dmp.<rule>``: evidence, not yet verdicts, because
    the seeded and reference documents are minimal CDA (no CI-SIS volet); judging them in ``mss.xdm_archive`` is
    one line once those documents are full DMP-conformant CDA."""
    try:
        submission = parse_submission(metadata)
    except MetadataError as exc:
        return [Finding(f"dmp.{exc.code}", exc.message, exc.location, "MSS-XDM-02")]
    return [Finding(f"dmp.{f.rule}", f.message, f.location, f.requirement or "MSS-XDM-02", severity=f.severity)
            for f in check_submission(submission, documents, dataset)]


def inspect_message(raw: bytes, recipients: list[str], *, dataset: Dataset, patient_recipients: list[str],
                    originals: dict[str, Original]) -> MessageNotes:
    msg = parse(raw)
    report = msg.get_content_type() == "multipart/report" and \
        msg.get_param("report-type") == "disposition-notification"
    notes = MessageNotes(kind="mdn" if report else "mail", message_id=str(msg.get("Message-ID", "")).strip(),
                         sender=str(msg.get("From", "")), to=recipients, subject=str(msg.get("Subject", "")),
                         size=len(raw), receipt_asked=msg.get(Header.RECEIPT_TO) is not None)
    if report:
        _judge_mdn(msg, notes, originals)
        return notes
    found = notes.findings
    if not str(msg.get(Header.NIL, "")).strip():
        found.append(Finding("headers.nil", f"{Header.NIL} (the product reference) is missing", Header.NIL,
                             "MSS-HDR-01"))
    if patient_recipients and str(msg.get(Header.MES, "")).strip().upper() != MES_FIN:
        found.append(Finding("headers.mes_fin", f"mail to the patient address {patient_recipients[0]} without "
                                                f"{Header.MES}: {MES_FIN} (got {msg.get(Header.MES)!r})",
                             Header.MES, "MSS-HDR-02"))
    attachment = _xdm_attachment(msg)
    notes.structured = attachment is not None
    if attachment is not None:
        _judge_structured(msg, notes, attachment, dataset)
    return notes


def _xdm_attachment(msg: EmailMessage) -> bytes | None:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == Xdm.ATTACHMENT:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return None


def _judge_structured(msg: EmailMessage, notes: MessageNotes, data: bytes, dataset: Dataset) -> None:
    found = notes.findings
    subject = str(msg.get("Subject", ""))
    if not subject.startswith(Xdm.SUBJECT_PREFIX + "+"):
        found.append(Finding("subject.xdm", f"a message with {Xdm.ATTACHMENT} must have a subject starting "
                                            f"'{Xdm.SUBJECT_PREFIX}+<libellé>' (got {subject[:80]!r})",
                             "Subject", "MSS-STR-01"))
    try:
        content = inspect_xdm(data)
    except HostileArchive as exc:
        notes.archive_refused = str(exc)
        found.append(Finding("xdm.hostile", f"archive refused unread: {exc}", Xdm.ATTACHMENT, "MSS-XDM-01"))
        return
    found.extend(content.findings)
    codes, patients = _agreement(content, found)
    notes.documents, notes.cda_codes, notes.patients = sorted(content.documents()), sorted(codes), sorted(patients)
    notes.patient_known = bool(patients) and all(_known_patient(dataset, ins) for ins in patients)
    found.extend(_structured_headers(msg, codes))
    if content.metadata is not None:
        dmp = dmp_document_checks(content.metadata, content.documents(), dataset)
        notes.dmp_findings = dmp[:MAX_DMP_FINDINGS]


def _structured_headers(msg: EmailMessage, codes: set[str]) -> list[Finding]:
    """X-MSS-CODECDA names every CDA code of the archive; X-MSS-INS says O or N."""
    found = []
    declared = {c.strip() for c in str(msg.get(Header.CODECDA, "")).replace(";", ",").split(",") if c.strip()}
    if codes and not declared >= codes:
        found.append(Finding("headers.codecda", f"{Header.CODECDA} is {msg.get(Header.CODECDA)!r}; the archive's "
                                                f"CDA codes are {', '.join(sorted(codes))}",
                             Header.CODECDA, "MSS-HDR-03"))
    if str(msg.get(Header.INS, "")).strip() not in ("O", "N"):
        found.append(Finding("headers.ins", f"{Header.INS} must be O or N with a structured document "
                                            f"(got {msg.get(Header.INS)!r})", Header.INS, "MSS-HDR-03"))
    return found


def _agreement(content: XdmContent, found: list[Finding]) -> tuple[set[str], set[str]]:
    """Metadata ↔ CDA: the patient of each DocumentEntry is the CDA's; the CDA codes and patients (INS)."""
    codes, patients = set(), set()
    for entry_id, document in content.documents().items():
        summary = cda_summary(document)
        where = f"DocumentEntry {entry_id}"
        if summary is None:
            found.append(Finding("cda.readable", "the document is not a readable CDA", where, "MSS-XDM-02"))
            continue
        if summary.code:
            codes.add(summary.code)
        if summary.ins:
            patients.add(summary.ins)
        entry = next(e for e in content.entries if e.id == entry_id)
        metadata_ins = (entry.patient_id or "").split("^")[0]
        if summary.ins != metadata_ins:
            found.append(Finding("xdm.patient_agreement", f"metadata patientId {metadata_ins!r} is not the CDA's "
                                                          f"INS {summary.ins!r}", where, "MSS-XDM-02"))
    return codes, patients


def _known_patient(dataset: Dataset, ins: str) -> bool:
    return any(p.ins.nir + p.ins.key == ins for p in dataset.patients)


def _judge_mdn(msg: EmailMessage, notes: MessageNotes, originals: dict[str, Original]) -> None:
    report = next((p for p in msg.walk() if p.get_content_type() == "message/disposition-notification"), None)
    if report is None:
        notes.findings.append(Finding("mdn.form", "no message/disposition-notification part", "multipart/report",
                                      "MSS-MDN-01"))
        return
    fields = _report_fields(report)
    notes.original_message_id = original_id = fields.get("original-message-id", "")
    notes.disposition = disposition = fields.get("disposition", "")
    for required in ("final-recipient", "disposition", "original-message-id"):
        if required not in fields:
            notes.findings.append(Finding("mdn.form", f"the report has no {required} field",
                                          "message/disposition-notification", "MSS-MDN-01"))
    original = originals.get(original_id)
    notes.answers_known_message = original is not None
    if original is not None:
        notes.findings.extend(_receipt_findings(msg, original_id, original, disposition))


def _receipt_findings(msg: EmailMessage, original_id: str, original: Original, disposition: str) -> list[Finding]:
    """A receipt only when asked for; for an unknown patient the error 902, else processed."""
    found = []
    if not original.receipt_asked:
        found.append(Finding("mdn.unsolicited", f"a read receipt for {original_id}, which asked for none "
                                                f"({Header.RECEIPT_TO} absent)", "Original-Message-ID", "MSS-MDN-01"))
    if original.patient_known is False:
        if not disposition.startswith(Mdn.ERROR_PREFIX + Mdn.UNKNOWN_PATIENT + "^"):
            found.append(Finding("mdn.error_902", f"the document's patient is unknown: the receipt must say "
                                                  f"'{Mdn.ERROR_PREFIX}{Mdn.UNKNOWN_PATIENT}^…' (got {disposition!r})",
                                 "Disposition", "MSS-MDN-02"))
        subject = str(msg.get("Subject", ""))
        if not subject.startswith(Mdn.KO_SUBJECT_PREFIX):
            found.append(Finding("mdn.error_902", f"an error receipt's subject starts with "
                                                  f"'{Mdn.KO_SUBJECT_PREFIX}' (got {subject[:80]!r})",
                                 "Subject", "MSS-MDN-02"))
    if original.patient_known and disposition != Mdn.PROCESSED:
        found.append(Finding("mdn.disposition", f"the document was integrable: expected {Mdn.PROCESSED.value!r} "
                                                f"(got {disposition!r})", "Disposition", "MSS-MDN-01"))
    return found


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


# -- in a worker process (the mail kit's WorkerPool) ---------------------------------------------------------------
_WORKER_DATASET: list[Dataset] = []


def worker_init(dataset: Dataset) -> None:
    """A worker process's start: the data set its inspections judge against, and one inspection of a seeded
    message, so that the first real one does not pay for loading the rules and value sets."""
    _WORKER_DATASET[:] = [dataset]
    try:
        address, raw = build(inbox_data()[0], dataset)
    except KeyError:  # a data set without the seeded professionals
        return
    inspect_message(raw, [address], dataset=dataset, patient_recipients=[], originals={})


def inspect_in_worker(raw: bytes, recipients: list[str], patients: list[str],
                      originals: dict[str, Original]) -> MessageNotes:
    """:func:`inspect_message` with the worker's data set."""
    return inspect_message(raw, recipients, dataset=_WORKER_DATASET[0], patient_recipients=patients,
                           originals=originals)
