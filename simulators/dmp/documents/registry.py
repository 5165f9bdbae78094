"""The DMP's document registry and repository: every document fed, with its metadata, versions and status.

Documents are indexed by entryUUID, by uniqueId and by patient INS, so that a FindDocuments query costs what
the patient's own documents cost, whatever the registry's size. Entries are the frozen
:class:`~esante.simulators.kits.ihe_xds.ebrim.DocumentEntry` of the metadata model; a status or confidentiality change
stores a new entry (``dataclasses.replace``), so a query never sees half an update.

Versions (ITI-57 metadata update, used by TD3.3a/b): a new version keeps the ``lid``, gets a new entryUUID,
and the previous one becomes Deprecated. A replaced document (RPLC association, TD2.1) is Deprecated too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from esante.simulators.dmp.patient.records import now
from esante.simulators.dmp.protocol import INVISIBLE_PATIENT, MASQUE_PS
from esante.simulators.kits.ihe_xds.ebrim import Coded, DocumentEntry
from esante.simulators.kits.ihe_xds.ebrs import STATUS_APPROVED, STATUS_DELETED, STATUS_DEPRECATED
from esante.simulators.kits.ihe_xds.hl7v2 import parse_cx


@dataclass(slots=True)
class StoredDocument:
    """A document as the repository keeps it: its current entry, its bytes, who fed it and when."""

    entry: DocumentEntry
    content: bytes
    submitter: str  # national id of the professional whose VIHF fed it
    stored_at: datetime

    @property
    def masked(self) -> bool:
        return any(c.code == MASQUE_PS for c in self.entry.confidentiality_codes)

    @property
    def invisible_to_patient(self) -> bool:
        return any(c.code == INVISIBLE_PATIENT for c in self.entry.confidentiality_codes)

    def visible_to(self, national_id: str) -> bool:
        """A document masked to professionals (MASQUE_PS) stays visible to the professional who fed it."""
        return not self.masked or self.submitter == national_id


def patient_ins(patient_id: str | None) -> str | None:
    """The INS of an XDS patient id CX (``207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH``)."""
    if not patient_id:
        return None
    cx = parse_cx(patient_id)
    return None if cx.problem else cx.id


class DocumentRegistry:
    """Every document of every DMP of the simulator."""

    def __init__(self) -> None:
        self.by_uuid: dict[str, StoredDocument] = {}
        self.by_unique_id: dict[str, str] = {}  # uniqueId -> entryUUID of the latest version
        self.by_patient: dict[str, list[str]] = {}  # INS -> entryUUIDs, oldest first

    def __len__(self) -> int:
        return len(self.by_uuid)

    def add(self, entry: DocumentEntry, content: bytes, submitter: str) -> StoredDocument:
        stored = StoredDocument(replace(entry, status=STATUS_APPROVED), content, submitter, now())
        self.by_uuid[entry.id] = stored
        if entry.unique_id:
            self.by_unique_id[entry.unique_id] = entry.id
        self.by_patient.setdefault(patient_ins(entry.patient_id) or "", []).append(entry.id)
        return stored

    def get(self, entry_uuid: str) -> StoredDocument | None:
        return self.by_uuid.get(entry_uuid)

    def by_unique(self, unique_id: str) -> StoredDocument | None:
        uuid = self.by_unique_id.get(unique_id)
        return self.by_uuid.get(uuid) if uuid else None

    def of_patient(self, ins: str) -> Iterator[StoredDocument]:
        for uuid in self.by_patient.get(ins, ()):
            yield self.by_uuid[uuid]

    def latest_of(self, lid: str, ins: str) -> StoredDocument | None:
        """The current (not Deprecated) version of a logical document."""
        return next((d for d in self.of_patient(ins)
                     if (d.entry.lid or d.entry.id) == lid and d.entry.status != STATUS_DEPRECATED), None)

    def set_status(self, stored: StoredDocument, status: str) -> None:
        stored.entry = replace(stored.entry, status=status)

    def deprecate(self, stored: StoredDocument) -> None:
        self.set_status(stored, STATUS_DEPRECATED)

    def new_version(self, previous: StoredDocument, entry: DocumentEntry, submitter: str) -> StoredDocument:
        """ITI-57: ``entry`` (same lid, new entryUUID) becomes current; the previous version is Deprecated.

        The bytes are the previous version's: a metadata update changes no content.
        """
        self.deprecate(previous)
        version = int(previous.entry.version_name or "1") + 1
        stored = self.add(replace(entry, lid=previous.entry.lid or previous.entry.id, version_name=str(version),
                                  unique_id=entry.unique_id or previous.entry.unique_id),
                          previous.content, previous.submitter)
        stored.submitter = previous.submitter  # masking stays relative to who fed the document
        return stored

    def delete(self, stored: StoredDocument) -> None:
        """Deleted is gone: the status is kept for the audit, the bytes are dropped."""
        self.set_status(stored, STATUS_DELETED)
        stored.content = b""


def has_code(codes: tuple[Coded, ...], code: str) -> bool:
    return any(c.code == code for c in codes)
