"""What the one-pass document checks of a DMP feed report: one :class:`Finding` per broken requirement.

``rule`` groups findings for the campaign checks (one check per rule); ``code`` is the XDS registry error
code the simulator answers with. The DMP's own error catalogue is not public, so codes follow IHE ITI TF-3
Table 4.2.4.1-2 by what failed:

* ``XDSRegistryMetadataError``: a DocumentEntry / SubmissionSet value is missing or wrong;
* ``XDSRepositoryMetadataError``: hash or size disagrees with the bytes the repository received;
* ``XDSMissingDocument`` / ``XDSMissingDocumentMetadata``: metadata without bytes, or bytes without metadata;
* ``XDSPatientIdDoesNotMatch``: the patient of the metadata is not the CDA's INS (or differs in the set);
* ``XDSUnknownPatientId``: the INS is not a patient the DMP knows;
* ``XDSRepositoryError``: the CDA document itself breaks the CI-SIS rules (the repository refuses it) or
  the signature document is absent or does not match the documents.
"""

from __future__ import annotations

from dataclasses import dataclass

CDA_HEADER = "cda_header"
XDS_METADATA = "xds_metadata"
AGREEMENT = "agreement"
SIGNATURE = "signature"
RULES = (CDA_HEADER, XDS_METADATA, AGREEMENT, SIGNATURE)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    code: str
    requirement: str
    location: str
    message: str
    severity: str = "error"


def errors(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.severity == "error"]
