"""The evidence bundle's format, and its verification: one zip that lets a reviewer check, offline, that a run's
reports and evidence are exactly what the harness produced (written by :mod:`esante.reports.bundle`).

Contents:

* ``report.json``, ``junit.xml``, ``report.html``: the reports;
* ``evidence/records.jsonl``: every record of the evidence store in ``seq`` order, each line the raw row with
  ``payload`` kept as the stored canonical text, so every digest and every link of the hash chain can be
  recomputed (:func:`verify_records`);
* ``evidence/blobs/<sha256>``: every stored body and attachment, named by its digest;
* ``exchanges/<case>/<nn>-<simulator>-<exchange>.request.bin|.response.bin``: readable copies of the bodies
  of each case's exchanges, and ``attachments/…``: the operator's attachments under their (sanitised) names;
* ``manifest.json``: the run's identity, the chain head, whether the run was ``interrupted`` (said by
  :func:`verify_bundle` as a note), and the SHA-256 of every other file;
  ``manifest.sig``: the Ed25519 signature of the exact manifest bytes (base64); ``signer.pub.pem``.

The format sits with the evidence store, below every simulator, because services read bundles too (the Mon
espace santé referencing window verifies the bundles a dossier cites).

:func:`verify_bundle` treats the zip as hostile: it never extracts anything to disk, refuses unsafe member
names, symbolic links, encrypted members, too many members, and sizes or compression ratios that smell of a
zip bomb before reading a byte, reads every member through a size cap, and names every alteration it finds.
Without a pinned key a bundle can only be shown self-consistent (anyone can re-sign a forged one): pass the
producer's public key as ``trusted_key`` to know who signed it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from esante.simulators.core.evidence.signing import fingerprint, load_public_key, raw_public_bytes
from esante.simulators.core.evidence.store import COLUMNS, GENESIS, verify_records

FORMAT = "esante-evidence-bundle/1"
MANIFEST, SIGNATURE, SIGNER = "manifest.json", "manifest.sig", "signer.pub.pem"
UNLISTED = frozenset({MANIFEST, SIGNATURE, SIGNER})
RECORDS = "evidence/records.jsonl"
BLOBS = "evidence/blobs/"

MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_MEMBER_BYTES = 1024**3
MAX_RATIO = 200          # uncompressed / compressed, enforced on members over RATIO_FLOOR bytes
RATIO_FLOOR = 1024**2
MAX_MANIFEST_BYTES = 64 * 1024**2
CHUNK = 1024**2

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_component(name: str | None, fallback: str = "file") -> str:
    """One path component made of ``[A-Za-z0-9._-]`` only, never hidden or ``..``, at most 80 characters."""
    cleaned = _UNSAFE_CHARS.sub("_", name or "").strip("._")[:80]
    return cleaned or fallback


def check_member_name(name: str) -> None:
    """Refuse a name the writer must not add (unsafe, or one of the signature's own files)."""
    problem = unsafe_name(name)
    if problem or name in UNLISTED:
        raise ValueError(f"cannot add {name!r} to a bundle: {problem or 'reserved name'}")


# -- verifying -------------------------------------------------------------------------------------------

@dataclass
class BundleVerification:
    """What :func:`verify_bundle` found.

    ``ok`` is true when nothing was found altered. ``problems`` lists every finding, each naming what it is
    about; ``notes`` is the subset that does not make the bundle fail (e.g. "signer not pinned").
    """

    ok: bool
    problems: list[str] = field(default_factory=list)
    signer_fingerprint: str | None = None
    run_id: str | None = None
    files_checked: int = 0
    notes: list[str] = field(default_factory=list)


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to honour (traversal, absolute, odd characters), or None."""
    if not name or "\\" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
        return "empty name, backslash or control character"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        return "path traversal"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


def _screen_member(info: zipfile.ZipInfo) -> list[str]:
    name, found = info.filename, []
    why = unsafe_name(name)
    if why:
        found.append(f"refused: unsafe member name {name!r} ({why})")
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        found.append(f"refused: member {name!r} is a symbolic link")
    if info.flag_bits & 0x1:
        found.append(f"refused: member {name!r} is encrypted")
    if info.file_size > MAX_MEMBER_BYTES:
        found.append(f"refused: member {name!r} declares {info.file_size} bytes (limit {MAX_MEMBER_BYTES}; zip bomb?)")
    elif info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        ratio = info.file_size // max(info.compress_size, 1)
        found.append(f"refused: member {name!r} expands {ratio}:1 (limit {MAX_RATIO}:1; zip bomb?)")
    return found


def _screen(infos: list[zipfile.ZipInfo]) -> list[str]:
    """Reasons to refuse the archive as a whole, found from its directory alone (nothing is decompressed)."""
    if len(infos) > MAX_MEMBERS:
        return [f"refused: {len(infos)} members (limit {MAX_MEMBERS})"]
    found = [problem for info in infos for problem in _screen_member(info)]
    repeated = [name for name, n in Counter(info.filename for info in infos).items() if n > 1]
    found += [f"refused: member {name!r} appears more than once" for name in sorted(repeated)]
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        found.append(f"refused: the archive declares {total} bytes uncompressed (limit {MAX_TOTAL_BYTES}; zip bomb?)")
    return found


class _Reader:
    """Reads members through a size cap, keeping the total of bytes actually decompressed bounded too."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.members = {info.filename: info for info in archive.infolist()}
        self.budget = MAX_TOTAL_BYTES
        self._digests: dict[str, str | None] = {}

    def _chunks(self, name: str, cap: int) -> Iterator[bytes]:
        info = self.members[name]
        limit = min(info.file_size, cap, self.budget)
        if info.file_size > limit:
            raise _Unreadable(f"{name} is too large to check ({info.file_size} bytes)")
        read = 0
        with self.archive.open(info) as handle:
            while chunk := handle.read(min(CHUNK, limit - read + 1)):
                read += len(chunk)
                if read > limit:
                    raise _Unreadable(f"{name} holds more than its declared size")
                yield chunk
        self.budget -= read

    def read(self, name: str, cap: int = MAX_MEMBER_BYTES) -> bytes:
        try:
            return b"".join(self._chunks(name, cap))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
            raise _Unreadable(f"{name} cannot be read ({exc})") from None

    def digest(self, name: str) -> str | None:
        """SHA-256 of a member, or None if it cannot be read (corrupt, over the caps)."""
        if name not in self._digests:
            digest = hashlib.sha256()
            try:
                for chunk in self._chunks(name, MAX_MEMBER_BYTES):
                    digest.update(chunk)
                self._digests[name] = digest.hexdigest()
            except (_Unreadable, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
                self._digests[name] = None
        return self._digests[name]


class _Unreadable(Exception):
    pass


class _Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def add(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def note(self, note: str) -> None:
        self.notes.append(note)


def _load_manifest(reader: _Reader, found: _Findings) -> tuple[bytes, dict[str, Any]] | None:
    if MANIFEST not in reader.members:
        found.add("missing: manifest.json (not an evidence bundle, or its manifest was removed)")
        return None
    try:
        data = reader.read(MANIFEST, MAX_MANIFEST_BYTES)
        manifest = json.loads(data)
    except _Unreadable as exc:
        found.add(f"manifest.json: {exc}")
        return None
    except (ValueError, UnicodeDecodeError):
        found.add("manifest.json: not valid JSON")
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found.add(f"manifest.json: not a {FORMAT} manifest")
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        found.add("manifest.json: 'files' is not a map of path to sha256")
        manifest["files"] = {}
    return data, manifest


def _check_signature(reader: _Reader, manifest_bytes: bytes, trusted_key: bytes | None, found: _Findings,
                     outcome: BundleVerification) -> None:
    for name in (SIGNATURE, SIGNER):
        if name not in reader.members:
            found.add(f"missing: {name} (the manifest cannot be authenticated)")
            return
    try:
        signer = load_public_key(reader.read(SIGNER, 64 * 1024))
        signature = base64.b64decode(reader.read(SIGNATURE, 64 * 1024).strip(), validate=True)
    except (_Unreadable, ValueError, binascii.Error, TypeError):
        found.add("signature: signer.pub.pem or manifest.sig is not a valid Ed25519 key or base64 signature")
        return
    outcome.signer_fingerprint = fingerprint(reader.read(SIGNER, 64 * 1024))
    try:
        signer.verify(signature, manifest_bytes)
    except InvalidSignature:
        found.add("signature: manifest.sig does not verify for manifest.json with signer.pub.pem "
                  "(manifest altered or signature replaced)")
    _check_pinned(raw_public_bytes(signer), outcome.signer_fingerprint, trusted_key, found)


def _check_pinned(signer: bytes, signer_fp: str, trusted_key: bytes | None, found: _Findings) -> None:
    if trusted_key is None:
        found.note(f"signer not pinned: signed by {signer_fp}; pass the trusted public key to know who signed")
        return
    try:
        trusted = load_public_key(trusted_key)
    except (ValueError, TypeError):
        found.add("signature: the trusted key is not an Ed25519 public key")
        return
    if raw_public_bytes(trusted) != signer:
        found.add(f"signature: signed by {signer_fp}, not by the trusted key "
                  f"{fingerprint(raw_public_bytes(trusted))}")


def _check_files(reader: _Reader, listed: dict[str, str], found: _Findings, outcome: BundleVerification) -> None:
    for name, expected in sorted(listed.items()):
        if name not in reader.members:
            found.add(f"missing: {name}")
            continue
        actual = reader.digest(name)
        outcome.files_checked += 1
        if actual is None:
            found.add(f"altered: {name} (corrupt or unreadable zip member)")
        elif actual != expected.lower():
            found.add(f"altered: {name} (sha256 mismatch)")
    for name in sorted(set(reader.members) - set(listed) - UNLISTED):
        found.add(f"unexpected file not in manifest: {name}")


def _parse_records(data: bytes, found: _Findings) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            row = None
        if not _is_record(row):
            found.add(f"{RECORDS} line {n}: not a valid evidence record")
            continue
        if rows and row["seq"] <= rows[-1]["seq"]:
            found.add(f"evidence record {row['seq']}: out of order (after record {rows[-1]['seq']})")
        rows.append(row)
    return rows


def _is_record(row: Any) -> bool:
    if not isinstance(row, dict) or set(row) != set(COLUMNS) or type(row["seq"]) is not int:
        return False
    required = ("kind", "recorded_at", "payload", "digest", "chain")
    return all(isinstance(row[c], str) for c in required) and \
        all(row[c] is None or isinstance(row[c], str) for c in ("run_id", "case_id", "ref"))


def _blob_refs(row: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, digest) of the blobs a record refers to: ``<x>_sha256`` keys that have an ``<x>_size`` twin."""
    try:
        payload = json.loads(row["payload"])
    except ValueError:
        return
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key.endswith("_sha256") and f"{key[:-7]}_size" in payload and isinstance(value, str):
                yield key, value


def _check_evidence(reader: _Reader, manifest: dict[str, Any], found: _Findings) -> list[dict[str, Any]]:
    if RECORDS not in reader.members:
        found.add(f"missing: {RECORDS}")
        return []
    try:
        rows = _parse_records(reader.read(RECORDS), found)
    except _Unreadable as exc:
        found.add(f"altered: {exc}")
        return []
    for problem in verify_records(rows):
        found.add(f"evidence record {problem.seq}: {problem.what}")
    head = rows[-1]["chain"] if rows else GENESIS
    if head != manifest.get("evidence_chain_head"):
        found.add(f"evidence chain head {head} does not match the manifest's {manifest.get('evidence_chain_head')} "
                  "(records removed or added at the end)")
    for row in rows:
        for key, digest in _blob_refs(row):
            if f"{BLOBS}{digest}" not in reader.members:
                found.add(f"evidence record {row['seq']}: blob {digest} ({key}) missing from the bundle")
    return rows


def _check_blobs(reader: _Reader, found: _Findings) -> None:
    for name in sorted(n for n in reader.members if n.startswith(BLOBS)):
        digest = name[len(BLOBS):]
        if not _HEX64.fullmatch(digest):
            found.add(f"evidence blob {name}: name is not a sha256 digest")
        elif reader.digest(name) != digest:
            found.add(f"evidence blob {digest}: content does not match its sha256 name")


def _check_report(reader: _Reader, manifest: dict[str, Any], rows: list[dict[str, Any]], found: _Findings) -> None:
    """The JSON report must be about this run and its chain head must be in the exported evidence."""
    if "report.json" not in reader.members:
        return
    try:
        report = json.loads(reader.read("report.json", MAX_MANIFEST_BYTES))
    except (_Unreadable, ValueError, UnicodeDecodeError):
        found.add("report.json: not valid JSON")
        return
    if not isinstance(report, dict):
        found.add("report.json: not a run report")
        return
    if report.get("run_id") != manifest.get("run_id"):
        found.add(f"report.json: run_id {report.get('run_id')!r} differs from the manifest's "
                  f"{manifest.get('run_id')!r}")
    head = report.get("evidence_chain_head")
    if rows and head not in {row["chain"] for row in rows}:
        found.add(f"report.json: evidence_chain_head {head} is not a chain value of {RECORDS}")


def verify_bundle(path: Path, trusted_key: bytes | None = None) -> BundleVerification:
    """Check a bundle end to end without extracting it; every problem names what was altered.

    ``trusted_key`` is the expected signer's public key (PEM, DER or 32 raw bytes).
    """
    outcome, found = BundleVerification(ok=False), _Findings()
    try:
        archive = zipfile.ZipFile(Path(path))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return BundleVerification(ok=False, problems=[f"{Path(path).name}: not a readable zip archive ({exc})"])
    with archive:
        refusals = _screen(archive.infolist())
        if refusals:
            return BundleVerification(ok=False, problems=refusals)
        _verify_members(_Reader(archive), trusted_key, found, outcome)
    outcome.ok = not found.problems
    outcome.problems = found.problems + found.notes
    outcome.notes = found.notes
    return outcome


def _verify_members(reader: _Reader, trusted_key: bytes | None, found: _Findings,
                    outcome: BundleVerification) -> None:
    loaded = _load_manifest(reader, found)
    if loaded is None:
        return
    manifest_bytes, manifest = loaded
    outcome.run_id = manifest.get("run_id") if isinstance(manifest.get("run_id"), str) else None
    if manifest.get("interrupted"):
        found.note(str(manifest["interrupted"]))
    _check_signature(reader, manifest_bytes, trusted_key, found, outcome)
    _check_files(reader, manifest["files"], found, outcome)
    rows = _check_evidence(reader, manifest, found)
    _check_blobs(reader, found)
    _check_report(reader, manifest, rows, found)
