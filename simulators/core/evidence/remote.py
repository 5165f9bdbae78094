"""Evidence that crosses a process boundary: a simulator's store read through its admin API, into the run's.

A simulator in a container (or on another machine) journals into its own evidence store. The run's store, and
the signed bundle made from it, must still hold everything observed, so the harness imports it:

* the simulator pages through its store (:func:`export_page`, served as ``GET /_admin/records``): its own
  records in ``seq`` order, each as stored (payload as its canonical text, digest, chain value) with the chain
  value it links to, and the bodies they refer to;
* the harness checks every record before taking it (:func:`page_problems`): the digest recomputes from the
  content, the chain link holds, consecutive records link to each other, every body matches its digest;
* each record is appended to the run's store (:func:`import_record`) under its own kind, run, case and ref,
  so the runner and the reports read it like a local one, with its provenance under ``imported_from``:
  where it came from and its remote ``seq``, ``recorded_at``, ``digest``, ``chain`` and ``previous_chain``.

Provenance stays checkable offline, from the run's store or a bundle's ``records.jsonl``
(:func:`verify_imported`): without ``imported_from`` a payload is again the remote's exact canonical text, so
its remote digest recomputes, and the remote chain links can be followed from the ``remote.attach`` record
that says where the import started. The run's own chain and the bundle's signature protect the imported
records like any other.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from esante.simulators.core.evidence.store import EvidenceStore, canonical_json, chain_next, record_digest, sha256_hex

PROVENANCE = "imported_from"
ATTACH = "remote.attach"
MAX_PAGE_RECORDS = 500
MAX_PAGE_BLOB_BYTES = 16 * 1024 * 1024  # a page stops adding records past this many bytes of bodies
_RECORD_FIELDS = ("seq", "kind", "run_id", "case_id", "ref", "recorded_at", "payload", "digest", "chain",
                  "previous_chain", "skipped")


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """One record of a simulator's store, exactly as stored there, and the chain value it links to.

    ``skipped`` holds the digests of the records just before it that belong to other simulators sharing the
    store (empty for a store of its own): enough to follow the chain across them without their content.
    """

    seq: int
    kind: str
    run_id: str | None
    case_id: str | None
    ref: str | None
    recorded_at: str
    payload: str  # the stored canonical JSON text: what the digest is computed over
    digest: str
    chain: str
    previous_chain: str
    skipped: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> RemoteRecord:
        """Parse one exported record; anything else than the exact fields and types is refused."""
        if not isinstance(data, dict) or set(data) != set(_RECORD_FIELDS) or type(data["seq"]) is not int:
            raise ValueError("not an exported evidence record")
        texts = ("kind", "recorded_at", "payload", "digest", "chain", "previous_chain")
        if not all(isinstance(data[k], str) for k in texts) or \
                not all(data[k] is None or isinstance(data[k], str) for k in ("run_id", "case_id", "ref")) or \
                not isinstance(data["skipped"], list) or not all(isinstance(d, str) for d in data["skipped"]):
            raise ValueError(f"exported evidence record {data['seq']}: a field has the wrong type")
        return cls(**{**data, "skipped": tuple(data["skipped"])})

    def content_problems(self) -> list[str]:
        """Does the content match the digest, and the digest the chain link?"""
        found = []
        if record_digest(self.kind, self.run_id, self.case_id, self.ref, self.recorded_at,
                         self.payload) != self.digest:
            found.append(f"remote record {self.seq}: content does not match its digest")
        if chain_next(self.previous_chain, self.digest) != self.chain:
            found.append(f"remote record {self.seq}: chain value does not follow from the previous one")
        return found

    def payload_object(self) -> dict[str, Any]:
        payload = json.loads(self.payload)
        if not isinstance(payload, dict) or canonical_json(payload) != self.payload:
            raise ValueError(f"remote record {self.seq}: payload is not a canonical JSON object")
        return payload


def blob_keys(payload: dict[str, Any]) -> dict[str, str]:
    """``{key: digest}`` of the bodies a payload refers to (``<key>_sha256`` with its ``<key>_size`` twin)."""
    return {key[:-7]: value for key, value in payload.items()
            if key.endswith("_sha256") and f"{key[:-7]}_size" in payload and isinstance(value, str)}


# -- the simulator's side ------------------------------------------------------------------------------------

def export_page(store: EvidenceStore, simulator: str, since: int, limit: int = MAX_PAGE_RECORDS) -> dict[str, Any]:
    """The simulator's records after ``since`` (at most ``limit`` scanned), with the bodies they refer to.

    A store may be shared by several simulators: only this one's records are sent, with the digests of the
    others' in between (``skipped`` before a record, ``tail`` after the last one), and ``next_since`` says where
    the next page starts. The page stops early once its bodies pass :data:`MAX_PAGE_BLOB_BYTES`.
    """
    limit = max(0, min(limit, MAX_PAGE_RECORDS))
    previous, next_since = store.chain_at(since), since
    records: list[dict[str, Any]] = []
    blobs: dict[str, str] = {}
    skipped: list[str] = []
    size = 0
    for row in store.raw_records(since=since, limit=limit):
        if records and size > MAX_PAGE_BLOB_BYTES:
            break
        payload = json.loads(row["payload"])
        if isinstance(payload, dict) and payload.get("simulator") == simulator:
            records.append({**row, "previous_chain": previous, "skipped": skipped})
            skipped = []
            size += _add_blobs(store, payload, blobs)
        else:
            skipped.append(row["digest"])
        previous, next_since = row["chain"], row["seq"]
    head = store.last_seq()
    return {"simulator": simulator, "head": head, "head_chain": store.chain_at(head), "next_since": next_since,
            "records": records, "tail": skipped, "blobs": blobs}


def _add_blobs(store: EvidenceStore, payload: dict[str, Any], blobs: dict[str, str]) -> int:
    size = 0
    for digest in blob_keys(payload).values():
        data = store.blob(digest)
        if data is not None and digest not in blobs:
            blobs[digest] = base64.b64encode(data).decode()
            size += len(data)
    return size


# -- the harness's side --------------------------------------------------------------------------------------

@dataclass(slots=True)
class Cursor:
    """Where an import stands in a remote store: the last record checked (seq and chain value), and the
    digests of other simulators' records read since (``pending``)."""

    seq: int
    chain: str
    pending: list[str] = field(default_factory=list)

    def skip(self, digests: list[str]) -> None:
        self.pending += digests


def link_problems(records: list[RemoteRecord], cursor: Cursor) -> list[str]:
    """Check records in order from ``cursor``: each one intact, and linked to the one before it in the store
    (through the digests of other simulators' records in between). ``cursor`` moves past the records."""
    found: list[str] = []
    for record in records:
        found += record.content_problems()
        gap = [*cursor.pending, *record.skipped]
        expected = cursor.chain
        for digest in gap:
            expected = chain_next(expected, digest)
        if record.seq != cursor.seq + len(gap) + 1:
            found.append(f"remote record {record.seq}: expected record {cursor.seq + len(gap) + 1} "
                         "(records removed or reordered)")
        elif record.previous_chain != expected:
            found.append(f"remote record {record.seq}: does not link to record {record.seq - 1} "
                         "(a record was removed, replaced or reordered)")
        cursor.seq, cursor.chain, cursor.pending = record.seq, record.chain, []
    return found


def page_problems(page: Any, simulator: str, cursor: Cursor) -> tuple[list[RemoteRecord], dict[str, bytes], list[str]]:
    """Parse and check one exported page against ``cursor``: (records, bodies by digest, problems)."""
    if not isinstance(page, dict) or page.get("simulator") != simulator or \
            not isinstance(page.get("records"), list) or not isinstance(page.get("blobs"), dict):
        return [], {}, [f"not an evidence page of {simulator}"]
    try:
        records = [RemoteRecord.from_json(r) for r in page["records"]]
        blobs = {d: base64.b64decode(b, validate=True) for d, b in page["blobs"].items()}
    except (ValueError, TypeError, binascii.Error) as exc:
        return [], {}, [f"malformed evidence page: {exc}"]
    found = link_problems(records, cursor)
    tail = page.get("tail", [])
    if not isinstance(tail, list) or not all(isinstance(d, str) for d in tail):
        return [], {}, ["malformed evidence page: tail"]
    cursor.skip(tail)
    found += [f"remote body {d}: content does not match its digest" for d, data in blobs.items()
              if sha256_hex(data) != d]
    for record in records:
        found += _payload_problems(record, simulator, blobs)
    return records, blobs, found


def _payload_problems(record: RemoteRecord, simulator: str, blobs: dict[str, bytes]) -> list[str]:
    try:
        payload = record.payload_object()
    except ValueError as exc:
        return [str(exc)]
    found = []
    if payload.get("simulator") != simulator:
        found.append(f"remote record {record.seq}: filed by {payload.get('simulator')!r}, not {simulator!r}")
    if PROVENANCE in payload:
        found.append(f"remote record {record.seq}: already carries {PROVENANCE!r}")
    found += [f"remote record {record.seq}: body {d} ({k}) missing from the page"
              for k, d in blob_keys(payload).items() if d not in blobs]
    return found


def attach(store: EvidenceStore, source: str, simulator: str, head: int, chain: str) -> Cursor:
    """Record where the import from ``source`` starts (its store's last seq and chain value)."""
    store.append(ATTACH, {"source": source, "simulator": simulator, "seq": head, "chain": chain})
    return Cursor(seq=head, chain=chain)


def import_record(store: EvidenceStore, record: RemoteRecord, blobs: dict[str, bytes], source: str) -> None:
    """Append a checked remote record to the run's store, its bodies with it, its provenance in the payload."""
    payload = record.payload_object()
    provenance = {"source": source, "seq": record.seq, "recorded_at": record.recorded_at, "digest": record.digest,
                  "chain": record.chain, "previous_chain": record.previous_chain, "skipped": list(record.skipped)}
    store.append(record.kind, {**payload, PROVENANCE: provenance}, run_id=record.run_id, case_id=record.case_id,
                 ref=record.ref, blobs={key: blobs[digest] for key, digest in blob_keys(payload).items()})


def verify_imported(rows: list[dict[str, Any]]) -> list[str]:
    """Check the provenance of every imported record among raw rows (a store's, or a bundle's records.jsonl).

    Each imported record must recompute to its remote digest and chain value, and the records imported from
    one source must link up from that source's ``remote.attach`` record.
    """
    found: list[str] = []
    cursors: dict[tuple[str, str], Cursor] = {}
    for row in rows:
        payload = json.loads(row["payload"])
        if not isinstance(payload, dict):
            continue
        if row["kind"] == ATTACH:
            key = (payload["source"], payload["simulator"])
            cursors[key] = Cursor(payload["seq"], payload["chain"])
            continue
        origin = payload.pop(PROVENANCE, None)
        if origin is None:
            continue
        try:
            record = RemoteRecord(seq=origin["seq"], kind=row["kind"], run_id=row["run_id"],
                                  case_id=row["case_id"], ref=row["ref"], recorded_at=origin["recorded_at"],
                                  payload=canonical_json(payload), digest=origin["digest"], chain=origin["chain"],
                                  previous_chain=origin["previous_chain"], skipped=tuple(origin["skipped"]))
        except (KeyError, TypeError):
            found.append(f"record {row['seq']}: malformed {PROVENANCE}")
            continue
        cursor = cursors.get((origin.get("source"), payload.get("simulator")))
        if cursor is None:
            found.append(f"record {row['seq']}: imported from {origin.get('source')} with no {ATTACH} record before it")
            cursor = Cursor(record.seq - 1 - len(record.skipped), record.previous_chain)
            cursors[(origin.get("source"), payload.get("simulator"))] = cursor
        found += [f"record {row['seq']} ({p})" for p in link_problems([record], cursor)]
    return found
