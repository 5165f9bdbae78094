"""The DMP's IHE XDS.b transactions: TD2.1 feed (ITI-41), TD3.1 search (ITI-18), TD3.2 retrieve (ITI-43) and
TD3.3a–d metadata updates (ITI-57).

Answers are ebRS ``RegistryResponse`` / ``AdhocQueryResponse`` / ``RetrieveDocumentSetResponse`` as in the
official examples, valid against ebRS 3.0 and IHE XDS.b (an ``AdhocQueryResponse`` always carries its
``RegistryObjectList``, empty on a refusal); a refusal is a ``Failure`` with a ``RegistryErrorList`` whose
``errorCode`` is ITI TF-3 Table 4.2.4.1-2's for the transaction, and, for a feed, one ``RegistryError`` per
finding of the one-pass document checks.

A document fed is registered as the official TD3.1 answer shows the DMP's entries: the repository's ``hash``
(SHA-1) and ``size`` of the bytes it received, its ``repositoryUniqueId``, the registry's entryUUID, ``lid`` and
``VersionInfo``.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import replace

from lxml import etree

from esante.simulators.core.findings import Finding
from esante.simulators.dataset import Dataset
from esante.simulators.dmp.documents.registry import DocumentRegistry, StoredDocument, has_code, patient_ins
from esante.simulators.dmp.documents.value_sets import dmp_value_sets
from esante.simulators.dmp.patient.records import DmpRecord, now
from esante.simulators.dmp.protocol import INVISIBLE_PATIENT, MASQUE_PS, REPOSITORY_UNIQUE_ID
from esante.simulators.dmp.transport.call import Call, DmpError, DmpFault, Reply
from esante.simulators.kits.ihe_xds.ebrim import (
    LCM,
    RIM,
    RPLC,
    UPDATE_STATUS,
    Association,
    DocumentEntry,
    Submission,
    document_entry_element,
    parse_submission,
)
from esante.simulators.kits.ihe_xds.ebrs import (
    GET_DOCUMENTS,
    QUERY,
    RESPONSE_FAILURE,
    RESPONSE_PARTIAL,
    RESPONSE_SUCCESS,
    RS,
    STATUS_APPROVED,
    STATUS_ARCHIVED,
    STATUS_DELETED,
    XDSB,
    ErrorEntry,
    registry_response,
)
from esante.simulators.kits.ihe_xds.query import Matcher, parse_query
from esante.simulators.kits.ihe_xds.signature import is_signature_entry
from esante.simulators.kits.ihe_xds.submission import check_submission
from esante.simulators.kits.mtom import MtomRejected, xop_include

#: NewStatus of an UpdateAvailabilityStatus → the TD it is (TD3.3c delete, TD3.3d archive or unarchive).
STATUS_TD = {STATUS_DELETED: "TD3.3c", STATUS_ARCHIVED: "TD3.3d", STATUS_APPROVED: "TD3.3d"}


def _query_response(errors: list[ErrorEntry] | None = None) -> tuple[etree._Element, etree._Element]:
    """An ``AdhocQueryResponse`` and its ``RegistryObjectList`` (required by query.xsd, empty on a refusal)."""
    response = registry_response(errors or [], tag="AdhocQueryResponse", ns=QUERY)
    return response, etree.SubElement(response, f"{{{RIM}}}RegistryObjectList", nsmap={"rim": RIM})


def error_reply(call: Call, error: DmpError) -> Reply:
    entry: ErrorEntry = (error.code, error.message, error.location, "error")
    if call.td == "TD3.1":
        return Reply(_query_response([entry])[0])
    if call.td == "TD3.2":
        response = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetResponse", nsmap={None: XDSB, "rs": RS})
        response.append(registry_response([entry]))
        return Reply(response)
    return Reply(registry_response([entry]))


def _entry_patient(entries: Iterable[DocumentEntry], ins: str) -> None:
    for entry in entries:
        found = patient_ins(entry.patient_id)
        if found != ins:
            raise DmpError("XDSPatientIdDoesNotMatch", f"DocumentEntry {entry.id} is for patient {entry.patient_id!r}, "
                                                       f"the VIHF for INS {ins}", location=entry.id)


# -- TD2.1: ITI-41 Provide and Register Document Set-b ---------------------------------------------------
def _documents(call: Call, submission: Submission) -> dict[str, bytes]:
    """Each ``xdsb:Document``'s bytes by the id of its DocumentEntry: an MTOM part, or inline base64.

    Ids are matched without regard to case: the official TD2.1 example, which the DMP accepts, names its
    Document ``documentME2`` for the ExtrinsicObject ``DocumentME2``. A DocumentEntry without its Document is
    ``XDSMissingDocument``; a Document no DocumentEntry describes, or a MIME part no Document includes,
    ``XDSMissingDocumentMetadata`` (ITI TF-3 Table 4.2.4.1-2); an ``xop:Include`` naming no part a Sender fault.
    """
    out: dict[str, bytes] = {}
    for element in call.body.iterfind(f"{{{XDSB}}}Document"):
        try:
            data = call.related.include(element) if call.related is not None else None
        except MtomRejected as exc:
            raise DmpFault("malformed", exc.reason) from None
        if data is None:
            try:
                data = base64.b64decode("".join(element.itertext()), validate=True)
            except ValueError:
                raise DmpError("XDSRepositoryError", f"Document {element.get('id')}: neither an xop:Include nor "
                                                     "base64", location=element.get("id", "")) from None
        out[element.get("id", "").lower()] = data
    for entry in submission.documents:
        if entry.id.lower() not in out:
            raise DmpError("XDSMissingDocument", f"DocumentEntry {entry.id} has no Document", location=entry.id)
    described = {e.id.lower() for e in submission.documents}
    loose = sorted(set(out) - described) + (call.related.unreferenced() if call.related is not None else [])
    if loose:
        raise DmpError("XDSMissingDocumentMetadata", f"{loose[0]} is described by no DocumentEntry",
                       location=loose[0])
    return {e.id: out[e.id.lower()] for e in submission.documents}


def _symbolic_ids(submission: Submission) -> dict[str, str]:
    """Symbolic ids (``Document01``) get the registry's own urn:uuid, as ITI-42 requires."""
    ids = [e.id for e in submission.documents] + [a.id for a in submission.associations]
    if submission.submission_set is not None:
        ids.append(submission.submission_set.id)
    return {i: (i if i.startswith("urn:uuid:") else f"urn:uuid:{uuid.uuid4()}") for i in ids}


def feed(call: Call, record: DmpRecord, registry: DocumentRegistry, dataset: Dataset) -> Reply:
    """TD2.1: check the whole submission in one pass; store it only when no finding is an error."""
    request = call.body.find(f"{{{LCM}}}SubmitObjectsRequest")
    if request is None:
        raise DmpError("XDSRegistryMetadataError", "ProvideAndRegisterDocumentSetRequest without SubmitObjectsRequest")
    submission = parse_submission(request)
    documents = _documents(call, submission)
    # The document checks come first: a malformed or disagreeing patient id is reported precisely by them.
    findings = check_submission(submission, documents, dataset, value_sets=dmp_value_sets())
    call.notes.findings = findings
    if any(f.severity == "error" for f in findings):
        return Reply(registry_response(_as_errors(findings)))
    _entry_patient(submission.documents, record.ins)
    for entry in submission.documents:
        _not_registered(entry, documents[entry.id], registry)
    replaced = _replacements(submission.associations, registry, record)
    mapping = _symbolic_ids(submission)
    for entry in submission.documents:
        new_id, data = mapping[entry.id], documents[entry.id]
        stored = registry.add(replace(entry, id=new_id, lid=mapping.get(entry.lid or "", new_id),
                                      hash=hashlib.sha1(data).hexdigest(), size=str(len(data)),
                                      repository_unique_id=REPOSITORY_UNIQUE_ID, version_name="1"),
                              data, call.vihf.national_id)
        for old in replaced.get(entry.id, ()):
            registry.deprecate(old)
            stored.entry = replace(stored.entry, lid=old.entry.lid or old.entry.id)
    record.last_add = now()
    call.notes.stored = [e.unique_id or "" for e in submission.documents]
    call.notes.replaced = [d.entry.unique_id or "" for docs in replaced.values() for d in docs]
    return Reply(registry_response(_as_errors(findings)))


def _not_registered(entry: DocumentEntry, data: bytes, registry: DocumentRegistry) -> None:
    """A uniqueId already in the registry: another document under it is XDSNonIdenticalHash or
    XDSNonIdenticalSize (ITI TF-3 Table 4.2.4.1-2); the same one again is XDSDuplicateUniqueIdInRegistry, the
    DMP keeping each document once."""
    known = registry.by_unique(entry.unique_id or "")
    if known is None:
        return
    if len(known.content) != len(data):
        code = "XDSNonIdenticalSize"
    elif known.content != data:
        code = "XDSNonIdenticalHash"
    else:
        code = "XDSDuplicateUniqueIdInRegistry"
    raise DmpError(code, f"uniqueId {entry.unique_id} is already in the DMP", location=entry.id)


def _as_errors(findings: list[Finding]) -> list[ErrorEntry]:
    return [(f.code or "", f"{f.requirement}: {f.message}", f.location, f.severity) for f in findings]


def _replacements(associations: Iterable[Association], registry: DocumentRegistry,
                  record: DmpRecord) -> dict[str, list[StoredDocument]]:
    """RPLC associations: the new entry (source) replaces an approved document of the same DMP (target)."""
    out: dict[str, list[StoredDocument]] = {}
    for assoc in associations:
        if assoc.type != RPLC:
            continue
        old = registry.get(assoc.target)
        if old is None or patient_ins(old.entry.patient_id) != record.ins or old.entry.status != STATUS_APPROVED:
            raise DmpError("XDSRegistryError", f"RPLC target {assoc.target} is not an approved document of this "
                                               "DMP", location=assoc.id)
        out.setdefault(assoc.source, []).append(old)
    return out


# -- TD3.1: ITI-18 Registry Stored Query -----------------------------------------------------------------
def search(call: Call, record: DmpRecord, registry: DocumentRegistry, dataset: Dataset) -> Reply:
    query = call.parsed or parse_query(call.body)
    actor = call.vihf.national_id
    if query.query_id == GET_DOCUMENTS:
        found = _get_documents(query.params, registry)
    else:
        patient = query.required("$XDSDocumentEntryPatientId")
        wanted = patient_ins(patient)
        if wanted is None:
            raise DmpError("XDSRegistryError", f"$XDSDocumentEntryPatientId {patient!r} is not a CX",
                           location="$XDSDocumentEntryPatientId")
        if wanted != record.ins:
            raise DmpError("XDSPatientIdDoesNotMatch", f"query for INS {wanted}, VIHF for INS {record.ins}")
        matcher = Matcher(query)
        found = [d for d in registry.of_patient(record.ins) if matcher(d.entry)]
    visible = [d for d in found if d.entry.status != STATUS_DELETED and d.visible_to(actor)
               and patient_ins(d.entry.patient_id) == record.ins]
    call.notes.query = "GetDocuments" if query.query_id == GET_DOCUMENTS else "FindDocuments"
    call.notes.results = [d.entry.unique_id or "" for d in visible if not is_signature_entry(d.entry)]
    call.notes.signature_results = [d.entry.unique_id or "" for d in visible if is_signature_entry(d.entry)]
    response, objects = _query_response()
    response.set("startIndex", "0")
    response.set("totalResultCount", str(len(visible)))
    for stored in visible:
        if query.return_type == "ObjectRef":
            etree.SubElement(objects, f"{{{RIM}}}ObjectRef", id=stored.entry.id)
        else:
            objects.append(document_entry_element(stored.entry))
    record.last_access = now()
    return Reply(response)


def _get_documents(params: dict[str, list[str]], registry: DocumentRegistry) -> list[StoredDocument]:
    uuids, unique_ids = params.get("$XDSDocumentEntryEntryUUID", []), params.get("$XDSDocumentEntryUniqueId", [])
    if uuids and unique_ids:
        raise DmpError("XDSStoredQueryParamNumber", "GetDocuments takes $XDSDocumentEntryEntryUUID or "
                                                    "$XDSDocumentEntryUniqueId, not both")
    if not uuids and not unique_ids:
        raise DmpError("XDSStoredQueryMissingParam", "GetDocuments needs $XDSDocumentEntryEntryUUID or "
                                                     "$XDSDocumentEntryUniqueId")
    found = [registry.get(u) for u in uuids] + [registry.by_unique(u) for u in unique_ids]
    return [d for d in found if d is not None]


# -- TD3.2: ITI-43 Retrieve Document Set -----------------------------------------------------------------
def retrieve(call: Call, record: DmpRecord, registry: DocumentRegistry, dataset: Dataset) -> Reply:
    requests = call.body.findall(f"{{{XDSB}}}DocumentRequest")
    if not requests:
        raise DmpError("XDSRepositoryError", "RetrieveDocumentSetRequest without DocumentRequest")
    errors: list[ErrorEntry] = []
    answered: list[tuple[StoredDocument, str]] = []
    for request in requests:
        repository = (request.findtext(f"{{{XDSB}}}RepositoryUniqueId") or "").strip()
        unique_id = (request.findtext(f"{{{XDSB}}}DocumentUniqueId") or "").strip()
        stored = registry.by_unique(unique_id)
        if repository != REPOSITORY_UNIQUE_ID:
            errors.append(("XDSUnknownRepositoryId", f"repository {repository!r} is not the DMP's "
                                                     f"({REPOSITORY_UNIQUE_ID})", unique_id, "error"))
        elif (stored is None or stored.entry.status == STATUS_DELETED or not stored.visible_to(call.vihf.national_id)
              or patient_ins(stored.entry.patient_id) != record.ins):
            errors.append(("XDSDocumentUniqueIdError", f"no document {unique_id} in this DMP", unique_id, "error"))
        else:
            answered.append((stored, f"{uuid.uuid4()}@urn:ihe:iti:xds-b:2007"))
    status = RESPONSE_SUCCESS if not errors else (RESPONSE_PARTIAL if answered else RESPONSE_FAILURE)
    response = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetResponse", nsmap={None: XDSB, "rs": RS})
    response.append(registry_response(errors, status=status))
    for stored, cid in answered:
        item = etree.SubElement(response, f"{{{XDSB}}}DocumentResponse")
        etree.SubElement(item, f"{{{XDSB}}}RepositoryUniqueId").text = REPOSITORY_UNIQUE_ID
        etree.SubElement(item, f"{{{XDSB}}}DocumentUniqueId").text = stored.entry.unique_id
        etree.SubElement(item, f"{{{XDSB}}}mimeType").text = stored.entry.mime_type or "text/xml"
        xop_include(etree.SubElement(item, f"{{{XDSB}}}Document"), cid)
    call.notes.retrieved = [s.entry.unique_id or "" for s, _ in answered]
    call.notes.sha1 = {s.entry.unique_id or "": hashlib.sha1(s.content).hexdigest() for s, _ in answered}
    record.last_access = now()
    return Reply(response, [(cid, s.entry.mime_type or "text/xml", s.content) for s, cid in answered])


# -- TD3.3: ITI-57 Update Document Set -------------------------------------------------------------------
def update_submission(call: Call) -> Submission:
    if call.parsed is None:
        if etree.QName(call.body).localname != "SubmitObjectsRequest":
            raise DmpError("XDSMetadataUpdateError", "UpdateDocumentSet body is not a SubmitObjectsRequest")
        call.parsed = parse_submission(call.body)
    return call.parsed


def update_td(submission: Submission, registry: DocumentRegistry) -> tuple[str, str]:
    """Which TD3.3 an update is, and its row of the rights matrix, decided before the rights are checked:
    a status change (c delete, d archive or unarchive) or a new version changing MASQUE_PS (a: mask or
    unmask) or INVISIBLE_PATIENT (b)."""
    for assoc in submission.associations:
        if assoc.type == UPDATE_STATUS:
            new = assoc.slot("NewStatus") or ""
            td = STATUS_TD.get(new, "TD3.3d")
            return td, {"TD3.3c": "supprimer", "TD3.3d": "desarchiver" if new == STATUS_APPROVED else "archiver"}[td]
    for entry in submission.documents:
        previous = registry.latest_of(entry.lid or "", patient_ins(entry.patient_id) or "")
        if previous is None:
            continue
        before, after = previous.entry.confidentiality_codes, entry.confidentiality_codes
        if has_code(after, INVISIBLE_PATIENT) != has_code(before, INVISIBLE_PATIENT):
            return "TD3.3b", "rendre_visible"
        if has_code(before, MASQUE_PS) and not has_code(after, MASQUE_PS):
            return "TD3.3a", "demasquer"
    return "TD3.3a", "masquer"


def search_rights_row(call: Call) -> str:
    """TD3.1's row of the rights matrix: a reference search (ObjectRef, note 5: open to structures) or a
    metadata search."""
    call.parsed = call.parsed or parse_query(call.body)
    return "reference" if call.parsed.return_type == "ObjectRef" else "metadonnees"


def update(call: Call, record: DmpRecord, registry: DocumentRegistry, dataset: Dataset) -> Reply:
    submission = update_submission(call)
    _entry_patient(submission.documents, record.ins)
    changed: list[str] = []
    for assoc in submission.associations:
        if assoc.type == UPDATE_STATUS:
            changed.append(_change_status(assoc, record, registry))
    for entry in submission.documents:
        changed.append(_new_version(entry, record, registry))
    if not changed:
        raise DmpError("XDSMetadataUpdateError", "the update changes nothing (no new version, no status change)")
    call.notes.updated = changed
    return Reply(registry_response())


def _change_status(assoc: Association, record: DmpRecord, registry: DocumentRegistry) -> str:
    stored = registry.get(assoc.target)
    if stored is None or patient_ins(stored.entry.patient_id) != record.ins:
        raise DmpError("XDSMetadataUpdateError", f"no document {assoc.target} in this DMP", location=assoc.id)
    original, new = assoc.slot("OriginalStatus"), assoc.slot("NewStatus")
    if original != stored.entry.status:
        raise DmpError("XDSMetadataUpdateError", f"OriginalStatus {original} is not the document's status "
                                                 f"{stored.entry.status}", location=assoc.id)
    if new not in STATUS_TD:
        raise DmpError("XDSMetadataUpdateError", f"NewStatus {new!r} is not Approved, Archived or Deleted",
                       location=assoc.id)
    if new == STATUS_DELETED:
        registry.delete(stored)
    else:
        registry.set_status(stored, new)
    return f"{stored.entry.unique_id}: {original.rsplit(':', 1)[-1]} -> {new.rsplit(':', 1)[-1]}"


def _new_version(entry: DocumentEntry, record: DmpRecord, registry: DocumentRegistry) -> str:
    if not entry.lid or not entry.previous_version:
        raise DmpError("XDSMetadataUpdateError", f"DocumentEntry {entry.id}: an update needs the lid and the "
                                                 "PreviousVersion slot", location=entry.id)
    current = registry.latest_of(entry.lid, record.ins)
    if current is None:
        raise DmpError("XDSMetadataUpdateError", f"no document with lid {entry.lid} in this DMP", location=entry.id)
    if (current.entry.version_name or "1") != entry.previous_version:
        raise DmpError("XDSMetadataVersionError", f"PreviousVersion {entry.previous_version} is not the current "
                                                  f"version {current.entry.version_name or '1'}", location=entry.id)
    new_id = entry.id if entry.id.startswith("urn:uuid:") else f"urn:uuid:{uuid.uuid4()}"
    stored = registry.new_version(current, replace(entry, id=new_id), current.submitter)
    masked = "masked" if has_code(stored.entry.confidentiality_codes, MASQUE_PS) else "unmasked"
    return f"{stored.entry.unique_id}: version {stored.entry.version_name} ({masked})"
