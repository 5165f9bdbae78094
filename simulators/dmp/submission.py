"""The one-pass document checks of a DMP feed (TD2.1, ITI-41 Provide and Register Document Set-b).

Each document is parsed once (hardened parser, bounded size); its header is read in one walk; the parsed
tree then serves the CI-SIS header rules, the metadata agreement and the signature digests (c14n).
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from esante.simulators.core.pki import TestCA
from esante.simulators.dataset.models import Dataset
from esante.simulators.dmp.agreement import check_agreement
from esante.simulators.dmp.cda import HL7, parse_cda, read_header
from esante.simulators.dmp.cda_rules import check_header
from esante.simulators.dmp.ebrim import Submission
from esante.simulators.dmp.findings import CDA_HEADER, Finding, errors
from esante.simulators.dmp.metadata_rules import check_metadata
from esante.simulators.dmp.signature import check_signature, is_signature_entry
from esante.simulators.kits.xml import XmlRejected

__all__ = ["Finding", "check_submission", "errors"]


def _unreadable(entry_id: str, message: str) -> Finding:
    return Finding(CDA_HEADER, "XDSRepositoryError", "CISIS-CDA-XML", f"CDA {entry_id} /", message)


def check_submission(submission: Submission, documents: Mapping[str, bytes], dataset: Dataset,
                     ca: TestCA | None = None) -> list[Finding]:
    """Every finding of one submission; ``documents`` maps DocumentEntry ids to the bytes received. With
    ``ca`` the signature document's XML signature and certificate chain are verified too."""
    findings = check_metadata(submission, documents)
    roots: dict[str, etree._Element] = {}
    for entry in submission.documents:
        data = documents.get(entry.id)
        if data is None or is_signature_entry(entry):
            continue
        try:
            root = parse_cda(data)
        except XmlRejected as exc:
            findings.append(_unreadable(entry.id, f"the document is not XML we accept: {exc.reason}"))
            continue
        if root.tag != f"{{{HL7}}}ClinicalDocument":
            findings.append(_unreadable(entry.id, f"the root element is {root.tag}, not a CDA R2 ClinicalDocument"))
            continue
        roots[entry.id] = root
        header = read_header(root)
        findings.extend(check_header(header, entry.id))
        findings.extend(check_agreement(entry, header, dataset))
    findings.extend(check_signature(submission, documents, roots, None if ca is None else ca.cert))
    return findings
