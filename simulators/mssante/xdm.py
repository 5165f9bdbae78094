"""Reading an ``IHE_XDM.ZIP`` archive without harm, and judging its layout and metadata.

Hostile archives are refused before anything is extracted: too many members, absurd declared sizes or
compression ratios (zip bombs), names escaping the archive (``..``, absolute, drive letters, backslashes).
Members are read through a bounded reader, so a lying size header cannot make us read more than the limit.
Nothing is ever written to disk.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field

from lxml import etree

from esante.simulators.core.findings import Finding
from esante.simulators.kits.xml import XmlRejected, parse_xml
from esante.simulators.mssante.protocol import (
    MAX_ARCHIVE_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_TOTAL_BYTES,
    NAME_8_3,
    NS_CDA,
    NS_LCM,
    NS_RIM,
    XDS_PATIENT_ID,
    Xdm,
)

REQ = "MSS-XDM-01"


def _finding(rule: str, location: str, message: str) -> Finding:
    """What is wrong with the archive (requirement MSS-XDM-01), and where."""
    return Finding(rule, message, str(location), REQ)


class HostileArchive(ValueError):
    """The archive is refused unread; the reason says why in one sentence."""


@dataclass(slots=True)
class DocumentEntry:
    id: str
    uri: str | None
    hash: str | None
    size: str | None
    patient_id: str | None


@dataclass(slots=True)
class XdmContent:
    members: dict[str, bytes]
    metadata: etree._Element | None = None
    entries: list[DocumentEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def documents(self) -> dict[str, bytes]:
        """DocumentEntry id → the document's bytes, for the entries whose file is in the archive."""
        return {e.id: self.members[Xdm.SUBSET + e.uri] for e in self.entries
                if e.uri and Xdm.SUBSET + e.uri in self.members}


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not (name.startswith("/") or "\\" in name or ":" in name or ".." in parts or "\x00" in name)


def read_archive(data: bytes) -> dict[str, bytes]:
    """The archive's files (name → bytes), or :class:`HostileArchive`."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise HostileArchive(f"archive of {len(data)} bytes exceeds {MAX_ARCHIVE_BYTES}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        raise HostileArchive(f"not a readable zip archive: {exc}") from None
    if len(infos) > MAX_MEMBERS:
        raise HostileArchive(f"{len(infos)} members, more than {MAX_MEMBERS}")
    declared = 0
    for info in infos:
        if not _safe_name(info.filename):
            raise HostileArchive(f"member name {info.filename!r} escapes the archive")
        if info.file_size > MAX_MEMBER_BYTES:
            raise HostileArchive(f"member {info.filename} declares {info.file_size} bytes")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise HostileArchive(f"member {info.filename} compresses {info.file_size // info.compress_size}:1 "
                                 "(zip bomb)")
        declared += info.file_size
    if declared > MAX_TOTAL_BYTES:
        raise HostileArchive(f"members declare {declared} bytes in all, more than {MAX_TOTAL_BYTES}")
    members: dict[str, bytes] = {}
    for info in infos:
        if info.is_dir():
            continue
        try:
            with archive.open(info) as stream:
                content = stream.read(info.file_size + 1)  # a lying header cannot make us read more
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
            raise HostileArchive(f"member {info.filename} cannot be read: {exc}") from None
        if len(content) > info.file_size:
            raise HostileArchive(f"member {info.filename} is longer than its header says")
        if info.filename in members:
            raise HostileArchive(f"member {info.filename} appears twice")
        members[info.filename] = content
    return members


def _slot(element: etree._Element, name: str) -> str | None:
    values = element.xpath("rim:Slot[@name=$n]/rim:ValueList/rim:Value/text()", n=name, namespaces={"rim": NS_RIM})
    return str(values[0]).strip() if values else None


def _entries(metadata: etree._Element) -> list[DocumentEntry]:
    entries = []
    for eo in metadata.iter(f"{{{NS_RIM}}}ExtrinsicObject"):
        patient = eo.xpath("rim:ExternalIdentifier[@identificationScheme=$s]/@value", s=XDS_PATIENT_ID,
                           namespaces={"rim": NS_RIM})
        entries.append(DocumentEntry(eo.get("id", ""), _slot(eo, "URI"), _slot(eo, "hash"), _slot(eo, "size"),
                                     str(patient[0]) if patient else None))
    return entries


def inspect_xdm(data: bytes) -> XdmContent:
    """Read and judge an XDM archive; raises :class:`HostileArchive` for one that must not be opened."""
    content = XdmContent(read_archive(data))
    found = content.findings
    names = set(content.members)
    for required in (Xdm.README, Xdm.INDEX, Xdm.METADATA):
        if required not in names:
            found.append(_finding("xdm.layout", required, f"the archive has no {required}"))
    for name in sorted(names):
        bad = [part for part in name.split("/") if not NAME_8_3.match(part)]
        if bad:
            found.append(_finding("xdm.names", name, f"{bad[0]!r} is not an 8.3 upper-case name"))
    if Xdm.METADATA not in names:
        return content
    try:
        metadata = parse_xml(content.members[Xdm.METADATA])
    except XmlRejected as exc:
        found.append(_finding("xdm.metadata", Xdm.METADATA, f"unreadable: {exc.reason}"))
        return content
    if metadata.tag != f"{{{NS_LCM}}}SubmitObjectsRequest":
        found.append(_finding("xdm.metadata", Xdm.METADATA,
                              f"root element is {metadata.tag}, not lcm:SubmitObjectsRequest"))
        return content
    content.metadata = metadata
    content.entries = _entries(metadata)
    if not content.entries:
        found.append(_finding("xdm.metadata", Xdm.METADATA, "no DocumentEntry (rim:ExtrinsicObject)"))
    for entry in content.entries:
        found.extend(_entry_findings(entry, content.members))
    return content


def _entry_findings(entry: DocumentEntry, members: dict[str, bytes]) -> list[Finding]:
    where = f"{Xdm.METADATA} ExtrinsicObject {entry.id}"
    if not entry.uri:
        return [_finding("xdm.metadata", where, "no URI slot naming the document's file")]
    document = members.get(Xdm.SUBSET + entry.uri)
    if document is None:
        return [_finding("xdm.layout", where, f"URI {entry.uri} names no file of {Xdm.SUBSET}")]
    found = []
    if entry.hash is None or entry.hash.lower() != hashlib.sha1(document).hexdigest():
        found.append(_finding("xdm.hash", where, f"hash slot {entry.hash!r} is not the SHA-1 of {entry.uri} "
                                                   f"({hashlib.sha1(document).hexdigest()})"))
    if entry.size != str(len(document)):
        found.append(_finding("xdm.size", where, f"size slot {entry.size!r} is not the size of {entry.uri} "
                                                   f"({len(document)})"))
    if not entry.patient_id:
        found.append(_finding("xdm.metadata", where, "no XDSDocumentEntry.patientId"))
    return found


@dataclass(frozen=True, slots=True)
class CdaSummary:
    code: str | None
    ins: str | None  # NIR+key as the CDA's recordTarget gives it (INS OID)
    ins_root: str | None


def cda_summary(document: bytes) -> CdaSummary | None:
    """The CDA's document code and patient INS, or None when it is not readable CDA."""
    try:
        root = parse_xml(document)
    except XmlRejected:
        return None
    if root.tag != f"{{{NS_CDA}}}ClinicalDocument":
        return None
    ns = {"h": NS_CDA}
    code = root.xpath("h:code/@code", namespaces=ns)
    ids = root.xpath("h:recordTarget/h:patientRole/h:id[starts-with(@root, '1.2.250.1.213.1.4.')]", namespaces=ns)
    return CdaSummary(str(code[0]) if code else None, ids[0].get("extension") if ids else None,
                      ids[0].get("root") if ids else None)
