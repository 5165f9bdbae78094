"""The reviewers' lab under load: N sandbox runs of the INSi campaign submitted at once to a lab with W workers,
against one run alone. A figure, not a timed test.

    python benchmarks/bench_server.py                  # 20 runs, 2 workers (about 3 minutes on 2 cores)
    python benchmarks/bench_server.py --runs 4 --out result.json

Each run is the whole INSi campaign against the reference candidate, in its own process (its own simulators),
as the lab plays every run; "per run" is a run's own time from started to finished, "total" from the first
submission to the last run filed. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from esante.harness.server.app import build_lab, create_app
from esante.harness.server.db import Database, database_url
from esante.harness.server.models import Role
from esante.harness.server.ops import CandidateFields, create_candidate, create_organisation, create_user
from esante.harness.server.security import new_api_token
from esante.simulators.core.server import ServerHandle

ADMIN, EDITOR, PASSWORD = "admin@bench.test", "editor@bench.test", "bench-password"


def _seconds(run: dict[str, Any]) -> float:
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


def _prepare(lab: Any) -> tuple[str, int]:
    with lab.db.session() as s:
        admin = create_user(s, None, ADMIN, "Admin", PASSWORD, Role.ADMIN)
        organisation = create_organisation(s, admin, "Bench")
        editor = create_user(s, admin, EDITOR, "Editor", PASSWORD, Role.EDITOR, organisation.id)
        candidate = create_candidate(s, editor, CandidateFields("reference", "1.0.0", mode="reference"))
        return new_api_token(s, editor, "bench"), candidate.id


def _play(client: httpx.Client, candidate: int, count: int) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    ids = []
    for _ in range(count):
        session = client.post("/api/v1/sessions", json={"kind": "sandbox", "candidate_id": candidate,
                                                        "campaign": "insi"}).json()
        ids.append(client.post(f"/api/v1/sessions/{session['id']}/runs", json={}).json()["id"])
    runs: dict[int, dict[str, Any]] = {}
    while len(runs) < count:
        time.sleep(0.5)
        for run_id in set(ids) - set(runs):
            run = client.get(f"/api/v1/runs/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                runs[run_id] = run
    return time.perf_counter() - started, list(runs.values())


def bench(runs: int, workers: int) -> dict[str, Any]:
    warm_up = 0.0
    with tempfile.TemporaryDirectory(prefix="esante-bench-lab-") as folder:
        data = Path(folder)
        lab = build_lab(data, Database(database_url("", data)), workers=workers)
        token, candidate = _prepare(lab)
        lab.start()
        try:
            with ServerHandle(create_app(lab)) as server, \
                    httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
                warm_up, _ = _play(c, candidate, 1)  # the first run also starts the process runs are forked from
                alone_total, [alone] = _play(c, candidate, 1)
                total, played = _play(c, candidate, runs)
        finally:
            lab.stop()
    per_run = [_seconds(r) for r in played]
    return {
        "runs": runs, "workers": workers, "finished": sum(r["status"] == "finished" for r in played),
        "first_run_s": round(warm_up, 2),
        "one_run_alone_s": round(alone_total, 2), "one_run_alone_own_s": round(_seconds(alone), 2),
        "total_s": round(total, 2), "per_run_median_s": round(statistics.median(per_run), 2),
        "per_run_max_s": round(max(per_run), 2), "throughput_runs_per_min": round(60 * runs / total, 2),
        "total_vs_serial_alone": round(total / (runs * alone_total), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = bench(args.runs, args.workers)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
