"""What comes out of one run: the JSON report (with its published schema), JUnit XML for CI, a
self-contained HTML report for people, the signed evidence bundle a reviewer verifies offline, and the PDF
report a reviewer files.

All of them are rendered from the one :class:`~esante.reports.model.RunResult`, so they cannot disagree.
The PDF comes last, outside the bundle: its cover names the bundle's digest (:mod:`esante.reports.pdf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esante.simulators.core.evidence.bundle import BundleVerification, verify_bundle
from esante.simulators.core.evidence.signing import default_key_path, load_or_create_key

if TYPE_CHECKING:
    from esante.reports.model import RunResult
    from esante.simulators.core.evidence import EvidenceStore

__all__ = ["BUNDLE_NAME", "PDF_NAME", "BundleVerification", "ReportPaths", "verify_bundle", "write_reports"]

BUNDLE_NAME = "evidence-bundle.zip"
PDF_NAME = "report.pdf"


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    junit: Path
    html: Path
    bundle: Path
    pdf: Path


def write_reports(result: RunResult, store: EvidenceStore, out_dir: Path,
                  signing_key: Path | None = None) -> ReportPaths:
    """Write ``report.json``, ``junit.xml``, ``report.html``, ``evidence-bundle.zip`` and ``report.pdf`` into
    ``out_dir``.

    The bundle holds the first three. It is signed with the Ed25519 key at ``signing_key`` (default:
    ``$ESANTE_SIGNING_KEY`` or ``~/.esante/keys/ed25519.pem``), created if absent. The PDF is written after it,
    and names its digest on the cover.
    """
    # Not at import time: `python -m esante.reports.json_report` works cleanly, and every command that imports
    # the report model (`esante sim` among them) does not pay for the renderers (fpdf alone ~0.3 s).
    from esante.reports.bundle import write_bundle
    from esante.reports.html import write_html
    from esante.reports.json_report import write_json
    from esante.reports.junit import write_junit
    from esante.reports.pdf import write_pdf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(signing_key or default_key_path())
    paths = ReportPaths(json=write_json(result, out_dir / "report.json"),
                        junit=write_junit(result, out_dir / "junit.xml"),
                        html=write_html(result, out_dir / "report.html"),
                        bundle=out_dir / BUNDLE_NAME, pdf=out_dir / PDF_NAME)
    write_bundle(result, store, paths.bundle, key,
                 {"report.json": paths.json, "junit.xml": paths.junit, "report.html": paths.html})
    write_pdf(result, paths.pdf, bundle=paths.bundle)
    return paths
