"""Evidence: what a run observed, kept so that nothing is lost and nothing can be altered unseen.

* :mod:`.store`: the append-only, hash-chained SQLite store every simulator journals into;
* :mod:`.remote`: exporting a store's records page by page, and importing them elsewhere, checked;
* :mod:`.bundle`: the signed bundle's format and its offline verification;
* :mod:`.signing`: the Ed25519 keys bundles are signed with.
"""

from esante.simulators.core.evidence.store import (
    GENESIS,
    ChainProblem,
    Entry,
    EvidenceStore,
    Record,
    canonical_json,
    sha256_hex,
    snapshot,
    utc_now,
    verify_records,
)

__all__ = ["GENESIS", "ChainProblem", "Entry", "EvidenceStore", "Record", "canonical_json", "sha256_hex", "snapshot",
           "utc_now", "verify_records"]
