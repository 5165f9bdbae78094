"""Who signs in a DMP test outside a campaign (the VIHF and feed tests, the DMP benchmark): a professional of
the data set with their CPS and their structure's certificate, both issued by the lab's test CA, and a
patient, in the shapes the reference candidate's builders take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esante.simulators.core.pki import IssuedCert, TestCA
from esante.simulators.dataset import Dataset


@dataclass(frozen=True)
class Parties:
    professional: dict[str, Any]  # as build_vihf takes it (national id, roles, structure id and sector)
    structure: dict[str, Any]     # as build_feed takes it (finess, name, sector_code)
    patient: dict[str, Any]       # as build_feed takes it (INS, names, sex, birth)
    cps: IssuedCert
    structure_certificate: IssuedCert

    @property
    def ins(self) -> str:
        """The patient's 15-character INS."""
        return self.patient["ins"]["nir"] + self.patient["ins"]["key"]

    @property
    def cps_signer(self) -> tuple[bytes, bytes, str]:
        """The CPS as signed_vihf takes a signer: (certificate PEM, key PEM, subject)."""
        return self.cps.cert_pem, self.cps.key_pem, self.cps.subject

    @property
    def structure_signer(self) -> tuple[bytes, bytes, str]:
        """The structure's certificate as signed_vihf takes a signer."""
        certificate = self.structure_certificate
        return certificate.cert_pem, certificate.key_pem, certificate.subject


def lab_parties(ca: TestCA, dataset: Dataset, professional_id: str = "PS001", patient_id: str = "P001") -> Parties:
    """The data set's professional ``professional_id`` at their first structure, and patient ``patient_id``."""
    professional = dataset.professional(professional_id)
    structure = dataset.structure(professional.structure_ids[0])
    patient = dataset.patient(patient_id)
    return Parties(
        professional={"national_id": professional.national_id, "family_name": professional.family_name,
                      "given_name": professional.given_name, "profession_code": professional.profession_code,
                      "profession_display": professional.profession_label,
                      "savoir_faire_code": professional.specialty_code, "structure_id": f"1{structure.finess}",
                      "sector": structure.sector_code},
        structure={"finess": structure.finess, "name": structure.name, "sector_code": structure.sector_code},
        patient={"ins": {"nir": patient.ins.nir, "key": patient.ins.key, "oid": patient.ins.oid},
                 "birth_name": patient.birth_name, "used_name": patient.used_name,
                 "first_names": list(patient.first_names), "sex": patient.sex, "birth_date": patient.birth_date,
                 "birth_place": patient.birth_place},
        cps=ca.issue_professional(professional.rpps, professional.family_name, professional.given_name,
                                  professional.profession_label),
        structure_certificate=ca.issue_structure(structure.finess, structure.name))
