"""The rules the document checks of a submission report under, one
:class:`~esante.simulators.core.findings.Finding` per broken requirement.

``rule`` groups findings for the test kits' checks (one check per rule); ``code`` is the XDS registry error
code a registry answers with. The DMP's own error catalogue is not public, so codes follow IHE ITI TF-3
Table 4.2.4.1-2 by what failed:

* ``XDSRegistryMetadataError``: a DocumentEntry / SubmissionSet value is missing or wrong;
* ``XDSRepositoryMetadataError``: hash or size disagrees with the bytes the repository received;
* ``XDSMissingDocument`` / ``XDSMissingDocumentMetadata``: metadata without bytes, or bytes without metadata;
* ``XDSPatientIdDoesNotMatch``: the patient of the metadata is not the CDA's INS (or differs in the set);
* ``XDSUnknownPatientId``: the INS is not a patient of the data set;
* ``XDSRepositoryError``: the CDA document itself breaks the CI-SIS rules (the repository refuses it) or
  the signature document is absent or does not match the documents.

Requirement ids are those of the CI-SIS (``CISIS-HDR-*``) and of its profile of XDS for the DMP
(``DMP-XDS-*``, ``DMP-AGR-*``, ``DMP-SIG-*``), the first national service to enforce them.
"""

from __future__ import annotations

from esante.simulators.core.findings import Finding, Severity

CDA_HEADER = "cda_header"
XDS_METADATA = "xds_metadata"
AGREEMENT = "agreement"
SIGNATURE = "signature"
RULES = (CDA_HEADER, XDS_METADATA, AGREEMENT, SIGNATURE)


def finding(rule: str, code: str, requirement: str, location: str, message: str,
            severity: Severity = "error") -> Finding:
    """A finding of one of :data:`RULES`, with the XDS error code it is answered with."""
    return Finding(rule=rule, message=message, location=location, requirement=requirement, code=code,
                   severity=severity)
