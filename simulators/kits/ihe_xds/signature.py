"""The signature document of an XDS submission (IHE DSG, XAdES), as the DMP requires one: rule ``signature``.

Every submission carries one XML signature document (classCode urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1,
formatCode http://www.w3.org/2000/09/xmldsig#) linked by a ``signs`` association to the SubmissionSet or
the documents. Its ``Object/Manifest`` lists one ``Reference`` per signed document, ``URI`` =
``urn:oid:<XDS uniqueId>`` (IHE DSG), with the digest of the document (after its c14n transform if any).

Each reference naming a document of the submission must carry that document's digest (error). A document
no reference names gets a warning: the DMP's own TD2.1 example references its CDA by the CDA id (not the
XDS uniqueId) with a stale digest, and the DMP accepts it, so the DMP does not enforce coverage.

The signature itself (SignatureValue, SignedInfo references, its certificate against given CAs at the caller's
clock) is verified by :mod:`esante.simulators.kits.xmldsig` when the caller gives CAs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from esante.simulators.core.findings import Finding, Severity
from esante.simulators.kits.ihe_xds.ebrim import SIGNS, DocumentEntry, Submission
from esante.simulators.kits.ihe_xds.rules import SIGNATURE, finding
from esante.simulators.kits.xml import XmlRejected, parse_xml
from esante.simulators.kits.xmldsig import DS, SignatureRejected, reference_digest, verify

_D = f"{{{DS}}}"
SIGNATURE_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
SIGNATURE_FORMAT_CODE = "http://www.w3.org/2000/09/xmldsig#"
MAX_SIGNATURE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestReference:
    uri: str
    transforms: tuple[str, ...]
    digest_method: str
    digest_value: str


def is_signature_entry(entry: DocumentEntry) -> bool:
    return (entry.class_code is not None and entry.class_code.code == SIGNATURE_CLASS_CODE) or (
        entry.format_code is not None and entry.format_code.code == SIGNATURE_FORMAT_CODE)


def _finding(requirement: str, location: str, message: str, code: str = "XDSRepositoryError",
             severity: Severity = "error") -> Finding:
    return finding(SIGNATURE, code, requirement, location, message, severity)


def manifest_references(signature: etree._Element) -> list[ManifestReference]:
    references = []
    for manifest in signature.iterchildren(f"{_D}Object"):
        for reference in manifest.iterfind(f"{_D}Manifest/{_D}Reference"):
            method = reference.find(f"{_D}DigestMethod")
            references.append(ManifestReference(
                reference.get("URI", ""),
                tuple(t.get("Algorithm", "") for t in reference.iterfind(f"{_D}Transforms/{_D}Transform")),
                "" if method is None else method.get("Algorithm", ""),
                (reference.findtext(f"{_D}DigestValue") or "").strip()))
    return references


def _signature_root(entry: DocumentEntry, data: bytes | None) -> etree._Element | Finding:
    where = f"Document {entry.id}"
    if data is None:
        return _finding("DMP-SIG-DOCUMENT", where, "the signature document's bytes are missing")
    try:
        root = parse_xml(data, max_bytes=MAX_SIGNATURE_BYTES)
    except XmlRejected as exc:
        return _finding("DMP-SIG-DOCUMENT", where, f"the signature document is not XML we accept: {exc.reason}")
    if root.tag != f"{_D}Signature" or not manifest_references(root):
        return _finding("DMP-SIG-DOCUMENT", where, "the signature document must be a ds:Signature whose "
                        "ds:Object/ds:Manifest references the signed documents")
    return root


def _references(entry: DocumentEntry, root: etree._Element, submission: Submission,
                documents: Mapping[str, bytes], roots: Mapping[str, etree._Element]) -> Iterator[Finding]:
    by_uri = {f"urn:oid:{doc.unique_id}": doc for doc in submission.documents
              if doc.unique_id and doc.id != entry.id}
    referenced = set()
    for number, reference in enumerate(manifest_references(root), 1):
        target = by_uri.get(reference.uri)
        if target is None or target.id not in documents:
            continue  # a document of another submission: not ours to verify
        referenced.add(target.id)
        actual = reference_digest(documents[target.id], roots.get(target.id), reference.transforms,
                                  reference.digest_method)
        where = f"Document {entry.id} /Signature/Object/Manifest/Reference[{number}]"
        if actual is None:
            yield _finding("DMP-SIG-DIGEST", where, f"unsupported DigestMethod {reference.digest_method!r}")
        elif actual != reference.digest_value:
            yield _finding("DMP-SIG-DIGEST", where,
                           f"DigestValue {reference.digest_value} of {reference.uri} is not the digest of the "
                           f"submitted document {target.id} ({actual})")
    for doc in submission.documents:
        if doc.id not in referenced and not is_signature_entry(doc):
            yield _finding("DMP-SIG-COVERAGE", f"Document {entry.id} /Signature/Object/Manifest",
                           f"no Reference with URI urn:oid:{doc.unique_id} covers DocumentEntry {doc.id}",
                           severity="warning")


def _value(root: etree._Element, cas: Sequence[x509.Certificate], now: datetime | None) -> str | None:
    """Why the signature itself does not hold or is not from one of ``cas`` at ``now``, None when it is."""
    if now is None:
        raise ValueError("verifying a signature needs the caller's clock (now)")
    try:
        verify(root, cas, now=now)
    except SignatureRejected as exc:
        return exc.reason
    return None


def check_signature(submission: Submission, documents: Mapping[str, bytes], roots: Mapping[str, etree._Element],
                    *, cas: Sequence[x509.Certificate] = (), now: datetime | None = None) -> list[Finding]:
    """Findings of rule ``signature``; ``roots`` holds the already parsed CDA documents by entry id. With
    ``cas``, the signature itself is verified at ``now`` and its certificate must come from one of them."""
    entries = [entry for entry in submission.documents if is_signature_entry(entry)]
    if not entries:
        return [_finding("DMP-SIG-PRESENT", "RegistryObjectList",
                         "the submission carries no signature document (classCode "
                         f"{SIGNATURE_CLASS_CODE}, formatCode {SIGNATURE_FORMAT_CODE})", "XDSRegistryMetadataError")]
    findings = []
    targets = {submission.submission_set.id} if submission.submission_set else set()
    targets |= {doc.id for doc in submission.documents}
    for entry in entries:
        if not any(a.type == SIGNS and a.source == entry.id and a.target in targets
                   for a in submission.associations):
            findings.append(_finding("DMP-SIG-ASSOCIATION", f"ExtrinsicObject {entry.id} Association signs",
                                     "no signs association goes from the signature to the SubmissionSet or a "
                                     "document", "XDSRegistryMetadataError"))
        root = _signature_root(entry, documents.get(entry.id))
        if isinstance(root, Finding):
            findings.append(root)
            continue
        findings.extend(_references(entry, root, submission, documents, roots))
        reason = _value(root, cas, now) if cas else None
        if reason:
            findings.append(_finding("DMP-SIG-VALUE", f"Document {entry.id} /Signature", reason))
    return findings
