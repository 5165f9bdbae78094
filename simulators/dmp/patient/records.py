"""The DMPs the simulator holds: one per patient INS, open or closed, with the patient's authorisations.

Seeded from the shared data set (``dmp_records.yaml``); every transaction that changes a DMP (authorisation,
administrative data, closing, web account) changes it here, and the next transaction sees the change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from esante.simulators.dataset import Dataset
from esante.simulators.dataset.models import Patient, Professional


def now() -> datetime:
    return datetime.now(UTC)


def hl7_time(moment: datetime) -> str:
    """HL7v3 TS, to the second, UTC (``20210601125305``)."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


@dataclass(slots=True)
class Authorisation:
    """A professional's access to a patient's DMP, as the patient (or the professional, TD0.3) set it."""

    national_id: str
    mode: str  # ACTIVE or BLOQUE (the patient blocked this professional)
    start: datetime = field(default_factory=now)
    last_action: datetime = field(default_factory=now)


@dataclass(slots=True)
class DmpRecord:
    """One patient's DMP."""

    patient: Patient
    internal_id: str
    status: str = "open"  # open | closed
    treating_doctor: str | None = None  # national id
    authorisations: dict[str, Authorisation] = field(default_factory=dict)
    opposition_bris_de_glace: bool = False
    opposition_urgence: bool = False
    web_login: str | None = None
    otp_channels: list[tuple[str, str]] = field(default_factory=list)
    telecoms: list[tuple[str | None, str]] = field(default_factory=list)  # (use, value)
    address: dict[str, str] = field(default_factory=dict)
    closing_reason: str | None = None
    last_access: datetime = field(default_factory=now)
    last_update: datetime = field(default_factory=now)
    last_add: datetime | None = None

    @property
    def ins(self) -> str:
        return self.patient.ins.nir + self.patient.ins.key

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def authorisation_of(self, national_id: str) -> str:
        """VALIDE, INTERDITE (blocked by the patient) or NON_EXISTANTE; the treating doctor is always VALIDE."""
        if national_id == self.treating_doctor:
            return "VALIDE"
        found = self.authorisations.get(national_id)
        if found is None:
            return "NON_EXISTANTE"
        return "VALIDE" if found.mode == "ACTIVE" else "INTERDITE"

    def new_web_access(self) -> tuple[str, str]:
        """A fresh login and one-time password for the patient's web access (TD1.5a / TD1.5d)."""
        self.web_login = self.web_login or f"{self.patient.birth_name[:3].lower()}{secrets.randbelow(10**5):05d}"
        return self.web_login, secrets.token_urlsafe(6)


class Records:
    """Every DMP of the simulator, by INS (NIR + key) and by the DMP's internal number."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.by_ins: dict[str, DmpRecord] = {}
        national = {p.id: p.national_id for p in dataset.professionals}
        for seed in dataset.dmp_records:
            patient = dataset.patient(seed.patient_id)
            record = DmpRecord(patient, seed.internal_id, seed.status,
                               national[seed.treating_doctor] if seed.treating_doctor else None,
                               opposition_bris_de_glace=seed.opposition_bris_de_glace,
                               opposition_urgence=seed.opposition_urgence)
            for pid in seed.authorised:
                record.authorisations[national[pid]] = Authorisation(national[pid], "ACTIVE")
            for pid in seed.blocked:
                record.authorisations[national[pid]] = Authorisation(national[pid], "BLOQUE")
            if seed.web_account:
                record.new_web_access()
            self.by_ins[record.ins] = record

    def get(self, ins: str) -> DmpRecord | None:
        return self.by_ins.get(ins)

    def patient(self, ins: str) -> Patient | None:
        """A patient of the data set by active INS, whether or not they have a DMP."""
        return next((p for p in self.dataset.patients if p.ins.nir + p.ins.key == ins), None)

    def create(self, patient: Patient) -> DmpRecord:
        record = DmpRecord(patient, "".join(str(secrets.randbelow(10)) for _ in range(22)))
        self.by_ins[record.ins] = record
        return record

    def authorised_for(self, national_id: str) -> list[DmpRecord]:
        """The DMPs this professional may access (TD0.4): authorised or treating doctor, not blocked."""
        return [r for r in self.by_ins.values() if r.authorisation_of(national_id) == "VALIDE"]

    def professional(self, national_id: str) -> Professional | None:
        try:
            return self.dataset.professional_by_national_id(national_id)
        except KeyError:
            return None
