"""Rendering a finished run's reports again (``esante report``): from its ``report.json``, with its evidence store
filling what an older report did not carry (the headers, query, faults and notes of its exchanges, before
report schema 1.1), and its evidence bundle named on the PDF's cover.

Nothing is played again and nothing in the bundle changes: the bundle keeps the reports it was signed with.

A run killed before it could write anything (SIGKILL: no ``report.json``) is rebuilt instead
(:func:`rebuild_folder`): its results come from the evidence store alone (:mod:`esante.reports.rebuild`), and every
report and a new signed bundle are written, saying the run is incomplete.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from esante.reports import BUNDLE_NAME, PDF_NAME, ReportPaths, write_reports
from esante.reports.html import write_html
from esante.reports.json_report import write_json
from esante.reports.model import ExchangeSummary, RunResult
from esante.reports.pdf import write_pdf
from esante.reports.rebuild import NoRunRecorded, rebuild
from esante.simulators.core.evidence import EvidenceStore, snapshot

REPORT_JSON, REPORT_HTML, EVIDENCE = "report.json", "report.html", "evidence.sqlite"
FORMATS = ("pdf", "html", "json")


class RunFolderError(ValueError):
    """The folder holds no readable run report."""


@dataclass(frozen=True, slots=True)
class FinishedRun:
    folder: Path
    result: RunResult
    enriched: int  # exchanges whose headers, query and notes came from the evidence store

    @property
    def bundle(self) -> Path | None:
        path = self.folder / BUNDLE_NAME
        return path if path.is_file() else None


def load_run(folder: Path) -> FinishedRun:
    """The run in ``folder``: its ``report.json``, completed from ``evidence.sqlite`` when that is there."""
    folder = Path(folder)
    try:
        data = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
        result = RunResult.model_validate(data)
    except FileNotFoundError:
        raise RunFolderError(f"{folder}: no {REPORT_JSON} (is it a run folder?)") from None
    except (ValueError, ValidationError) as exc:
        raise RunFolderError(f"{folder / REPORT_JSON}: not a run report ({str(exc).splitlines()[0]})") from None
    result.schema_version = RunResult.model_fields["schema_version"].default  # the shape it is rendered in now
    store = folder / EVIDENCE
    try:
        enriched = enrich(result, store) if store.is_file() else 0
    except sqlite3.Error:  # an unreadable store (a read-only copy without its WAL files): render what the report has
        enriched = 0
    return FinishedRun(folder, result, enriched)


def enrich(result: RunResult, store: Path) -> int:
    """Fill, from the evidence store, the headers, query, faults and notes of exchanges the report lacks them
    for (reports written before schema 1.1); return how many exchanges were completed."""
    wanted: dict[int, ExchangeSummary] = {}
    for case in result.cases:
        for exchange in case.exchanges:
            if not exchange.request_headers and not exchange.request_record_digest:
                wanted[exchange.request_seq] = exchange
                if exchange.response_seq:
                    wanted[exchange.response_seq] = exchange
    if not wanted:
        return 0
    with snapshot(store) as view:
        for raw in view.raw_records():
            exchange = wanted.get(raw["seq"])
            if exchange is not None and raw["kind"] in ("exchange.request", "exchange.response"):
                _complete(exchange, raw["kind"], json.loads(raw["payload"]), raw["digest"])
    return len({id(e) for e in wanted.values()})


def _complete(exchange: ExchangeSummary, kind: str, payload: dict[str, Any], digest: str) -> None:
    if kind == "exchange.request":
        exchange.scheme, exchange.query = payload.get("scheme", ""), payload.get("query", "")
        exchange.request_headers = [(str(k), str(v)) for k, v in payload.get("headers", [])]
        exchange.request_truncated = bool(payload.get("truncated", False))
        exchange.request_record_digest = digest
        return
    notes = dict(payload.get("notes") or {})
    notes.pop("operation", None)
    exchange.injected_faults = list(notes.pop("injected_faults", None) or [])
    exchange.notes = notes
    exchange.response_headers = [(str(k), str(v)) for k, v in payload.get("headers", [])]
    exchange.response_record_digest = digest


def rerender(folder: Path, formats: tuple[str, ...] = ("pdf",), out_dir: Path | None = None) -> dict[str, Path]:
    """Write the reports named in ``formats`` (pdf, html, json) of the run in ``folder`` into ``out_dir``
    (default: the run folder itself)."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(sorted(unknown))}")
    run = load_run(folder)
    out = Path(out_dir) if out_dir is not None else run.folder
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "json" in formats:
        written["json"] = write_json(run.result, out / REPORT_JSON)
    if "html" in formats:
        written["html"] = write_html(run.result, out / REPORT_HTML)
    if "pdf" in formats:
        written["pdf"] = write_pdf(run.result, out / PDF_NAME, bundle=run.bundle)
    return written


def needs_rebuild(folder: Path) -> bool:
    """A run folder whose run was killed before it wrote its reports: an evidence store, no ``report.json``."""
    return not (Path(folder) / REPORT_JSON).is_file() and (Path(folder) / EVIDENCE).is_file()


def rebuild_folder(folder: Path, out_dir: Path | None = None,
                   signing_key: Path | None = None) -> tuple[RunResult, ReportPaths]:
    """Rebuild, from ``folder``'s evidence store alone, the results of the last run it holds, and write all its
    reports and a signed bundle into ``out_dir`` (default: the run folder); the store is left self-contained."""
    try:
        with EvidenceStore(Path(folder) / EVIDENCE) as store:
            result = rebuild(store)
            return result, write_reports(result, store, Path(out_dir or folder), signing_key=signing_key)
    except NoRunRecorded as exc:
        raise RunFolderError(str(exc)) from None
    except sqlite3.Error as exc:
        raise RunFolderError(f"{Path(folder) / EVIDENCE}: not a readable evidence store ({exc})") from None
