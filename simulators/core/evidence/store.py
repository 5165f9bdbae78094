"""The evidence store: an append-only, content-hashed, hash-chained record of everything observed.

Every simulator journals into it and the harness adds its own records (driver calls, operator answers,
verdicts). One SQLite file holds two tables:

* ``blobs``: raw bytes addressed by their SHA-256 (request and response bodies, attachments);
* ``records``: one row per event, its JSON payload in canonical form, the payload's SHA-256 (``digest``)
  and the running chain value ``chain = SHA-256(previous chain || digest)``.

Each append (one record, or several with :meth:`EvidenceStore.append_many`: a TCP session's request and answer)
is one committed transaction, so a process killed with SIGKILL loses nothing that was appended before the kill.
SQLite triggers refuse UPDATE and DELETE: the store is append-only even for a careless caller. Several processes
may append to the same file (``BEGIN IMMEDIATE`` serialises the chain).

While it is open the store writes ahead (WAL: appends are cheap and readers never block them), so the newest
records live in a ``-wal`` file beside the database. :meth:`EvidenceStore.close` folds them back: it checkpoints
and, when no other process has the file open, leaves it in rollback-journal mode, so a finished run's
``evidence.sqlite`` is one self-contained file that can be copied or archived alone. Closing twice is harmless;
the next opener turns WAL on again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    run_id TEXT,
    case_id TEXT,
    ref TEXT,
    recorded_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    digest TEXT NOT NULL,
    chain TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_case ON records (run_id, case_id);
CREATE INDEX IF NOT EXISTS records_ref ON records (ref);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'evidence records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'evidence records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS blobs_no_update BEFORE UPDATE ON blobs
    BEGIN SELECT RAISE(ABORT, 'evidence blobs are append-only'); END;
CREATE TRIGGER IF NOT EXISTS blobs_no_delete BEFORE DELETE ON blobs
    BEGIN SELECT RAISE(ABORT, 'evidence blobs are append-only'); END;
"""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """The one serialisation that digests are computed over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_digest(kind: str, run_id: str | None, case_id: str | None, ref: str | None,
                  recorded_at: str, payload: str) -> str:
    """Digest of one record: every column but ``seq`` and ``chain`` goes into it.

    The columns are framed as one canonical JSON line followed by the payload text (already canonical JSON),
    so the payload is not encoded a second time.
    """
    head = canonical_json([kind, run_id, case_id, ref, recorded_at])
    return sha256_hex(f"{head}\n{payload}".encode())


def chain_next(previous: str, digest: str) -> str:
    return sha256_hex((previous + digest).encode())


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    kind: str
    run_id: str | None
    case_id: str | None
    ref: str | None
    recorded_at: str
    payload: dict[str, Any]
    digest: str
    chain: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "run_id": self.run_id, "case_id": self.case_id,
                "ref": self.ref, "recorded_at": self.recorded_at, "payload": self.payload,
                "digest": self.digest, "chain": self.chain}


@dataclass(frozen=True, slots=True)
class Entry:
    """A record to append: ``blobs`` maps a payload key to raw bytes (stored apart, named by digest in the
    payload)."""

    kind: str
    payload: Mapping[str, Any]
    run_id: str | None = None
    case_id: str | None = None
    ref: str | None = None
    blobs: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    kind: str
    run_id: str | None
    case_id: str | None
    ref: str | None
    recorded_at: str
    body: dict[str, Any]
    payload: str
    digest: str


def _prepare(entry: Entry) -> tuple[_Prepared, list[tuple[str, int, bytes]]]:
    """A record's canonical text and digest, and its blob rows: computed before the write lock is taken."""
    body = dict(entry.payload)
    blob_rows = []
    for key, data in (entry.blobs or {}).items():
        digest = sha256_hex(data)
        body[f"{key}_sha256"] = digest
        body[f"{key}_size"] = len(data)
        blob_rows.append((digest, len(data), data))
    text = canonical_json(body)
    recorded_at = utc_now()
    digest = record_digest(entry.kind, entry.run_id, entry.case_id, entry.ref, recorded_at, text)
    return _Prepared(entry.kind, entry.run_id, entry.case_id, entry.ref, recorded_at, body, text, digest), blob_rows


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    what: str


class EvidenceStore:
    """Append-only evidence in one SQLite file. Thread-safe; several processes may share the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN ourselves, so each append is exactly one transaction.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only an OS crash could lose the last commits).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._closed = False

    # -- writing -------------------------------------------------------------------------------------
    def append(self, kind: str, payload: Mapping[str, Any], *, run_id: str | None = None,
               case_id: str | None = None, ref: str | None = None,
               blobs: Mapping[str, bytes] | None = None) -> Record:
        """Append one record (and the blobs it refers to) in a single committed transaction.

        ``blobs`` maps a payload key to raw bytes: each is stored content-addressed and its digest is
        written into the payload under that key (``"request_body"`` → ``"request_body_sha256"``).
        """
        return self.append_many([Entry(kind, payload, run_id, case_id, ref, blobs)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        """Append several records, in order, in one committed transaction: all of them durable, or none.

        The journal files an exchange's request and answer this way: one commit per exchange instead of two
        (a commit, not the hashing, is most of what an append costs).
        """
        prepared = [_prepare(entry) for entry in entries]
        records: list[Record] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                blob_rows = [row for _, rows in prepared for row in rows]
                if blob_rows:
                    db.executemany("INSERT OR IGNORE INTO blobs (digest, size, data) VALUES (?, ?, ?)",
                                   blob_rows)
                row = db.execute("SELECT chain FROM records ORDER BY seq DESC LIMIT 1").fetchone()
                chain = row[0] if row else GENESIS
                for record, _ in prepared:
                    chain = chain_next(chain, record.digest)
                    cur = db.execute(
                        "INSERT INTO records (kind, run_id, case_id, ref, recorded_at, payload, digest, chain)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (record.kind, record.run_id, record.case_id, record.ref, record.recorded_at,
                         record.payload, record.digest, chain))
                    records.append(Record(cur.lastrowid or 0, record.kind, record.run_id, record.case_id,
                                          record.ref, record.recorded_at, record.body, record.digest, chain))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return records

    # -- reading -------------------------------------------------------------------------------------
    def records(self, *, kind: str | None = None, run_id: str | None = None, case_id: str | None = None,
                since: int = 0, ref: str | None = None, limit: int | None = None) -> list[Record]:
        clauses, args = ["seq > ?"], [since]
        for column, value in (("kind", kind), ("run_id", run_id), ("case_id", case_id), ("ref", ref)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT * FROM records WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_row_to_record(r) for r in rows]

    def blob(self, digest: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def iter_blobs(self) -> Iterator[tuple[str, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT digest, data FROM blobs ORDER BY digest").fetchall()
        for digest, data in rows:
            yield digest, bytes(data)

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM records").fetchone()
        return int(row[0] or 0)

    def raw_records(self, *, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Records as stored (``payload`` as its canonical text): what digests are computed over.

        ``since`` and ``limit`` read a page (records after seq ``since``), as the admin API's export does.
        """
        sql = "SELECT * FROM records WHERE seq > ? ORDER BY seq" + (f" LIMIT {int(limit)}" if limit is not None else "")
        with self._lock:
            rows = self._db.execute(sql, (since,)).fetchall()
        return [_row_to_raw(r) for r in rows]

    def chain_at(self, seq: int) -> str:
        """The chain value after record ``seq`` (the genesis value for 0): where a page after ``seq`` links to."""
        with self._lock:
            row = self._db.execute("SELECT chain FROM records WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                                   (seq,)).fetchone()
        return row[0] if row else GENESIS

    def verify(self) -> list[ChainProblem]:
        """Recompute every digest and chain link and every blob digest; empty list means intact."""
        with self._lock:
            blobs = self._db.execute("SELECT digest, data FROM blobs").fetchall()
        problems = verify_records(self.raw_records())
        problems += [ChainProblem(0, f"blob {d} does not match its digest")
                     for d, data in blobs if sha256_hex(bytes(data)) != d]
        return problems

    def close(self) -> None:
        """Checkpoint the write-ahead log into the database file and close (see the module docstring)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):  # another process still appending: it checkpoints later
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.close()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_records(rows: list[dict[str, Any]]) -> list[ChainProblem]:
    """Check a sequence of raw records (``payload`` as stored text) for digest and chain integrity.

    Shared by the live store and by ``esante verify`` on a bundle's exported records.
    """
    problems: list[ChainProblem] = []
    previous = GENESIS
    for row in rows:
        digest = record_digest(row["kind"], row["run_id"], row["case_id"], row["ref"],
                               row["recorded_at"], row["payload"])
        if digest != row["digest"]:
            problems.append(ChainProblem(row["seq"], "record content does not match its digest"))
        if chain_next(previous, row["digest"]) != row["chain"]:
            problems.append(ChainProblem(row["seq"],
                                         "hash chain broken (record removed, reordered or altered)"))
        previous = row["chain"]
    return problems


#: The columns of a record, in the order digests, exports and bundles use.
COLUMNS = ("seq", "kind", "run_id", "case_id", "ref", "recorded_at", "payload", "digest", "chain")
_COLUMNS = COLUMNS


class Snapshot:
    """A read-only, consistent view of an evidence file (one read transaction), for exporting it whole while
    something may still be appending: what :func:`snapshot` yields."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def raw_records(self) -> Iterator[dict[str, Any]]:
        """Every record as stored (``payload`` as its canonical text), in ``seq`` order."""
        for row in self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM records ORDER BY seq"):
            yield _row_to_raw(row)

    def blob(self, digest: str | None) -> bytes | None:
        if not digest:
            return None
        row = self._db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        for digest, data in self._db.execute("SELECT digest, data FROM blobs ORDER BY digest"):
            yield digest, bytes(data)


@contextlib.contextmanager
def snapshot(path: str | Path) -> Iterator[Snapshot]:
    """Open the evidence file at ``path`` read-only in one read transaction (a consistent snapshot)."""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("SELECT COUNT(*) FROM records").fetchone()  # the snapshot starts at the first read
        yield Snapshot(db)
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("COMMIT")
        db.close()


def _row_to_raw(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_COLUMNS, row, strict=True))


def _row_to_record(row: tuple[Any, ...]) -> Record:
    raw = _row_to_raw(row)
    raw["payload"] = json.loads(raw["payload"])
    return Record(**raw)
