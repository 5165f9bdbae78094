"""The one-pass document checks of an XDS submission (an ITI-41 Provide and Register Document Set-b, the
content of an XDM archive), as the DMP judges a feed.

Each document is parsed once (hardened parser, bounded size); its header is read in one walk; the parsed
tree then serves the CI-SIS header rules, the metadata agreement and the signature digests (c14n).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from cryptography import x509
from lxml import etree

from esante.simulators.core.findings import Finding
from esante.simulators.dataset.models import Dataset
from esante.simulators.kits.ihe_xds.agreement import check_agreement
from esante.simulators.kits.ihe_xds.cda import HL7, parse_cda, read_header
from esante.simulators.kits.ihe_xds.cda_rules import check_header
from esante.simulators.kits.ihe_xds.ebrim import Submission
from esante.simulators.kits.ihe_xds.metadata_rules import check_metadata
from esante.simulators.kits.ihe_xds.rules import CDA_HEADER, finding
from esante.simulators.kits.ihe_xds.signature import check_signature, is_signature_entry
from esante.simulators.kits.ihe_xds.value_sets import ValueSets
from esante.simulators.kits.xml import XmlRejected


def _unreadable(entry_id: str, message: str) -> Finding:
    return finding(CDA_HEADER, "XDSRepositoryError", "CISIS-CDA-XML", f"CDA {entry_id} /", message)


def check_submission(submission: Submission, documents: Mapping[str, bytes], dataset: Dataset, *,
                     value_sets: ValueSets | None = None, cas: Sequence[x509.Certificate] = (),
                     now: datetime | None = None) -> list[Finding]:
    """Every finding of one submission; ``documents`` maps DocumentEntry ids to the bytes received.

    ``value_sets`` are the CI-SIS ones unless the service adds its own. With ``cas`` (and the caller's clock
    ``now``) the signature document's XML signature and certificate are verified too."""
    findings = check_metadata(submission, documents, value_sets)
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
    findings.extend(check_signature(submission, documents, roots, cas=cas, now=now))
    return findings
