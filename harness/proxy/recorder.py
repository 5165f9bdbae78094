"""Record mode (``esante proxy --record DIR``): each upstream answer kept with its request, one file per exchange,
in the format ``esante sim replay DIR`` answers from (:mod:`esante.simulators.replay.recordings`), its matching
keys computed by the folder's rules and its secrets flagged (masked with ``--mask-secrets``)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from esante.simulators.core.evidence import Record, utc_now
from esante.simulators.replay.protocol import RECORDING_SUFFIX
from esante.simulators.replay.recordings import (
    Headers,
    RecordedRequest,
    RecordedResponse,
    Recording,
    load_rules,
    match_keys,
    recording_name,
    rule_for,
)
from esante.simulators.replay.secrets import flag_secrets

_NUMBERED = re.compile(r"^(\d+)-")


class Recorder:
    """Writes recordings into ``folder/<service>/``, numbered in recording order across services."""

    def __init__(self, folder: Path, *, mask: bool) -> None:
        self.folder, self.mask = folder, mask
        self.rules = load_rules(folder)
        folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in folder.glob(f"*/*{RECORDING_SUFFIX}") if (m := _NUMBERED.match(p.name))]
        self._next = max(numbers, default=0) + 1
        self._lock = threading.Lock()

    def keep(self, request: Record, request_body: bytes, status: int, headers: Headers, body: bytes) -> Path:
        """Record one answered exchange (``request``: its journaled request record)."""
        p = request.payload
        service = p.get("service") or "unknown"
        content_type = next((v for k, v in p["headers"] if k.lower() == "content-type"), "")
        recording = Recording(
            service=service, case=request.case_id, recorded_at=utc_now(), upstream=p.get("upstream"),
            match=match_keys(rule_for(self.rules, service), p["method"], p["path"], p["query"], content_type,
                             request_body),
            request=RecordedRequest.carrying([tuple(h) for h in p["headers"]], request_body, method=p["method"],
                                             path=p["path"], query=p["query"]),
            response=RecordedResponse.carrying(headers, body, status=status))
        recording = flag_secrets(recording, mask=self.mask)
        with self._lock:
            number, self._next = self._next, self._next + 1
        path = self.folder / service / recording_name(number, recording)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(recording.dump(), encoding="utf-8")
        return path
