"""Writing the evidence bundle of a run: the reports, every record and blob of the evidence store, readable
copies of each case's exchanges and the operator's attachments, and a manifest signed with Ed25519.

The format, and its verification, are :mod:`esante.simulators.core.evidence.bundle`'s. The evidence file is read
through one read-only snapshot (:func:`~esante.simulators.core.evidence.store.snapshot`), so the exported records
and blobs are consistent even if something is still appending.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from esante.reports.model import ExchangeSummary, RunResult, interruption
from esante.simulators.core.evidence import EvidenceStore, sha256_hex, snapshot, utc_now
from esante.simulators.core.evidence.bundle import (
    BLOBS,
    FORMAT,
    MANIFEST,
    RECORDS,
    SIGNATURE,
    SIGNER,
    check_member_name,
    safe_component,
)
from esante.simulators.core.evidence.signing import public_key_pem
from esante.simulators.core.evidence.store import GENESIS, Snapshot


class _ZipWriter:
    """Adds files to the archive, remembering each one's SHA-256 for the manifest."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.files: dict[str, str] = {}

    def unique(self, name: str) -> str:
        folder, slash, base = name.rpartition("/")
        stem, dot, suffix = base.partition(".")
        candidate, n = name, 1
        while candidate in self.files:
            n += 1
            candidate = f"{folder}{slash}{stem}-{n}{dot}{suffix}"
        return candidate

    def add(self, name: str, data: bytes) -> str:
        name = self.unique(name)
        self.archive.writestr(name, data)
        self.files[name] = sha256_hex(data)
        return name

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[_HashingWriter]:
        with self.archive.open(name, "w", force_zip64=True) as raw:
            writer = _HashingWriter(raw)
            yield writer
        self.files[name] = writer.hash.hexdigest()


class _HashingWriter:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.raw.write(data)
        self.hash.update(data)


Attachment = tuple[int, str | None, dict[str, Any]]


def _export_records(view: Snapshot, out: _ZipWriter) -> tuple[str, list[Attachment]]:
    """Write records.jsonl; return the last chain value and (seq, case, payload) of records with attachments."""
    head, attachments = GENESIS, []
    with out.stream(RECORDS) as writer:
        for raw in view.raw_records():
            writer.write((json.dumps(raw, ensure_ascii=False) + "\n").encode())
            head = raw["chain"]
            if '"attachment_sha256"' in raw["payload"]:
                payload = json.loads(raw["payload"])
                if isinstance(payload.get("attachment_sha256"), str):
                    attachments.append((raw["seq"], raw["case_id"], payload))
    return head, attachments


def _export_blobs(view: Snapshot, out: _ZipWriter) -> None:
    for digest, data in view.blobs():
        out.add(f"{BLOBS}{digest}", data)


def exchange_member(case_id: str, number: int, exchange: ExchangeSummary, part: str) -> str:
    """The bundle member holding a readable copy of an exchange's ``request`` or ``response`` body; the HTML
    report (at the bundle's root) links to it."""
    stem = f"{number:02d}-{safe_component(exchange.simulator, 'sim')}-{safe_component(exchange.id)}"
    return f"exchanges/{safe_component(case_id, 'case')}/{stem}.{part}.bin"


def _export_exchanges(view: Snapshot, result: RunResult, out: _ZipWriter) -> None:
    for case in result.cases:
        for n, exchange in enumerate(case.exchanges, 1):
            for part, digest in (("request", exchange.request_sha256), ("response", exchange.response_sha256)):
                data = view.blob(digest)
                if data is not None:
                    out.add(exchange_member(case.id, n, exchange, part), data)


def _export_attachments(view: Snapshot, found: list[Attachment], out: _ZipWriter) -> None:
    for seq, case_id, payload in found:
        data = view.blob(payload["attachment_sha256"])
        if data is not None:
            name = safe_component(str(payload.get("attachment_name") or ""), "attachment")
            out.add(f"attachments/{safe_component(case_id, 'run')}/{seq:06d}-{name}", data)


def _manifest(result: RunResult, head: str, files: dict[str, str]) -> bytes:
    manifest = {
        "format": FORMAT, "run_id": result.run_id,
        "campaign": {"id": result.campaign.id, "version": result.campaign.version, "title": result.campaign.title,
                     "file": result.campaign.file, "sha256": result.campaign.sha256},
        "candidate": result.candidate.model_dump(mode="json"),
        "harness_version": result.harness_version, "created_at": utc_now(), "evidence_chain_head": head,
        **({"interrupted": interruption(result)} if result.interrupted else {}),
        "files": dict(sorted(files.items())),
    }
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def write_bundle(result: RunResult, store: EvidenceStore, out_path: Path, key: Ed25519PrivateKey,
                 extra_files: dict[str, Path]) -> Path:
    """Write the signed bundle of ``result`` and every record and blob of ``store`` to ``out_path``.

    Only ``store.path`` is used: the SQLite file is read directly, read-only.
    ``extra_files`` maps a name in the bundle (``report.json``…) to the file to include under it.
    The archive is written next to ``out_path`` and moved into place once complete.
    """
    out_path = Path(out_path)
    partial = out_path.with_name(f".{out_path.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            out = _ZipWriter(archive)
            for name, path in extra_files.items():
                check_member_name(name)
                out.add(name, Path(path).read_bytes())
            with snapshot(store.path) as view:
                head, attachments = _export_records(view, out)
                _export_blobs(view, out)
                _export_exchanges(view, result, out)
                _export_attachments(view, attachments, out)
            manifest = _manifest(result, head, out.files)
            archive.writestr(MANIFEST, manifest)
            archive.writestr(SIGNATURE, base64.b64encode(key.sign(manifest)))
            archive.writestr(SIGNER, public_key_pem(key))
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    return out_path
