"""The signature document of a DMP feed (IHE DSG, XAdES): rule ``signature``.

Every submission carries one XML signature document (classCode urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1,
formatCode http://www.w3.org/2000/09/xmldsig#) linked by a ``signs`` association to the SubmissionSet or
the documents. Its ``Object/Manifest`` lists one ``Reference`` per signed document, ``URI`` =
``urn:oid:<XDS uniqueId>`` (IHE DSG), with the digest of the document (after its c14n transform if any).

Each reference naming a document of the submission must carry that document's digest (error). A document
no reference names gets a warning: the DMP's own TD2.1 example references its CDA by the CDA id (not the
XDS uniqueId) with a stale digest, and the DMP accepts it, so the DMP does not enforce coverage.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from esante.simulators.dmp.ebrim import SIGNS, DocumentEntry, Submission
from esante.simulators.dmp.findings import SIGNATURE, Finding
from esante.simulators.dmp.xmldsig import C14N, DIGESTS, DS, canonical, verify_signature
from esante.simulators.kits.xml import XmlRejected, parse_xml

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
             severity: str = "error") -> Finding:
    return Finding(SIGNATURE, code, requirement, location, message, severity)


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


def document_digest(data: bytes, root: etree._Element | None, reference: ManifestReference) -> str | None:
    """Base64 digest of a document as ``reference`` describes it, None for an unsupported algorithm."""
    algorithm = DIGESTS.get(reference.digest_method)
    if algorithm is None:
        return None
    c14n = next((t for t in reference.transforms if t in C14N), None)
    if c14n is not None and root is not None:
        data = canonical(root, c14n)
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


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
        actual = document_digest(documents[target.id], roots.get(target.id), reference)
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


def check_signature(submission: Submission, documents: Mapping[str, bytes], roots: Mapping[str, etree._Element],
                    ca_cert: x509.Certificate | None = None) -> list[Finding]:
    """Findings of rule ``signature``; ``roots`` holds the already parsed CDA documents by entry id. With
    ``ca_cert``, the signature itself is verified and its certificate must come from that CA."""
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
        reason = None if ca_cert is None else verify_signature(root, ca_cert)
        if reason:
            findings.append(_finding("DMP-SIG-VALUE", f"Document {entry.id} /Signature", reason))
    return findings
