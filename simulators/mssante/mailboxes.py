"""The MSSanté trust space from the shared data set: who owns which mailbox, and which domains are trusted."""

from __future__ import annotations

from dataclasses import dataclass

from esante.simulators.dataset import Dataset
from esante.simulators.mssante.protocol import PATIENT_DOMAIN, patient_address


@dataclass(frozen=True, slots=True)
class MailboxEntry:
    address: str
    type: str  # PER | ORG | CAB | APP | PAT (a patient's Mon espace santé mailbox)
    holders: frozenset[str]  # national ids of the professionals who may open it
    certificate_cn: str | None = None
    patient_id: str | None = None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class TrustSpace:
    """The mailboxes of the data set and the domains they make trusted."""

    def __init__(self, dataset: Dataset) -> None:
        entries: list[MailboxEntry] = []
        for pro in dataset.professionals:
            if pro.mssante:
                entries.append(MailboxEntry(pro.mssante.lower(), "PER", frozenset({pro.national_id})))
        for box in dataset.mailboxes:
            holders = frozenset(dataset.professional(m).national_id for m in box.members)
            entries.append(MailboxEntry(box.address.lower(), box.type, holders, box.certificate_cn))
        for patient in dataset.patients:
            entries.append(MailboxEntry(patient_address(patient.ins.nir, patient.ins.key), "PAT", frozenset(),
                                        patient_id=patient.id))
        self.mailboxes = {e.address: e for e in entries}
        self.domains = frozenset(domain_of(e.address) for e in entries) | {PATIENT_DOMAIN}

    def trusted(self, address: str) -> bool:
        return domain_of(address) in self.domains

    def mailbox(self, address: str) -> MailboxEntry | None:
        return self.mailboxes.get(address.lower())

    def is_patient(self, address: str) -> bool:
        return domain_of(address) == PATIENT_DOMAIN

    def opens(self, address: str, *, national_id: str | None = None, certificate_cn: str | None = None) -> bool:
        """May this professional (token) or this software (certificate) open this mailbox?"""
        entry = self.mailbox(address)
        if entry is None:
            return False
        if entry.type == "APP":
            return certificate_cn is not None and certificate_cn == entry.certificate_cn
        return national_id is not None and national_id in entry.holders
