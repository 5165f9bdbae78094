"""Benchmarks of esante-conformance (not timed tests): ``python benchmarks/bench.py`` takes every figure of
issue 22 in one run; ``python benchmarks/bench.py NAME...`` only those groups. Each group is merged into
``benchmarks/results.json`` under its own key, with the machine; ``targets`` then lists each target, its last
figure and whether it is met (``benchmarks/README.md`` has the same table).

* ``insi`` — INSi traits lookups per second and p99 through the simulator (validation, matching, the journal:
  each exchange durable before its answer), WireMock serving the simulator's own answer canned (started here
  from ``benchmarks/wiremock``'s npm package when java and the jar are there; ``skipped`` says why not), and a
  bare FastAPI endpoint answering it as a constant, one after the other under the same load (wrk when
  installed); the ratios to WireMock (aim >= 1.0) and to the bare endpoint;
* ``psc_token`` — refresh grants per second at the PSC token endpoint (two RS256 signatures and the journal
  per call) ÷ a bare endpoint answering a same-size token response (aim >= 0.5);
* ``dmp`` — ITI-41 feeds per second with a 100 kB CDA and every check (aim >= 300), ITI-18 searches per second
  for a patient's 20 documents as the registry grows to 100,000 documents (aim >= 500, flat), and the memory
  of 100,000 documents (``bench_dmp.py``);
* ``mssante`` — structured 1 MB messages per second SMTP → store → IMAP with every check (aim >= 50), hostile
  messages, the store's memory (``bench_mssante.py``);
* ``campaigns`` — each shipped campaign against the reference candidate, end to end as ``esante run`` (aim:
  < 5 s each, start-up included), with the seconds its scenario waits by design;
* ``ready`` — from ``esante sim NAME`` to its first healthy answer, each simulator (aim < 1 s);
* ``mes`` — Mon espace santé measure bundles accepted per second, validation alone, the dossier check;
* ``psc_memory`` (only when named: 4 minutes) — PSC's resident memory under sustained refresh grants past the
  bound of its tables: it must level off;
* ``containers`` (only when named: needs a container engine) — image size, compose up to healthy, the INSi
  campaign in containers ÷ local.

Servers run in their own processes, one at a time; loopback only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM_UP_SECONDS = 3.0
LOAD_SECONDS = 10.0
CLIENT_THREADS = 4  # PSC memory: refresh loops
BARE_APP = """
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from esante.simulators.core.server import _EsanteProtocol
app = FastAPI()
BODY = open(sys.argv[2], 'rb').read()
@app.post('/lps')
async def lps(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type='application/soap+xml; charset=utf-8')
uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), http=_EsanteProtocol, log_level='warning',
            access_log=False, lifespan='off')
"""


def _free_port() -> int:
    from esante.simulators.core.server import free_port

    return free_port()


def _wait_healthy(port: int, path: str, timeout: float = 15.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET" if path.startswith("/_admin") else "POST", path, body=b"" if "lps" in path else None)
            conn.getresponse().read()
            conn.close()
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"server on port {port} did not become ready")


def _request_body() -> bytes:
    """The official INSi example request (tests/vectors), asking for a test patient of the data set."""
    from lxml import etree

    from esante.simulators.insi.protocol import NS_CTXLPS, NS_RECSANS

    root = etree.fromstring((ROOT / "tests/vectors/insi_official_request.xml").read_bytes())
    root.find(f".//{{{NS_CTXLPS}}}IDAM").text = "ESANTE-REF-0001"
    for name, value in (("NomNaissance", "MOREAU"), ("Prenom", "CLAIRE"), ("Sexe", "F"),
                        ("DateNaissance", "1985-04-12")):
        root.find(f".//{{{NS_RECSANS}}}{name}").text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


INSI_HEADERS = {"Content-Type": "application/soap+xml; charset=utf-8"}


def bench_insi(tmp: Path) -> dict[str, object]:
    """INSi lookups through the simulator (validation, matching, journal), WireMock serving the simulator's own
    answer canned, and a bare endpoint answering it as a constant: one after the other in this run, same load."""
    body = _request_body()
    esante = str(Path(sys.executable).with_name("esante"))
    sim_port, bare_port, wiremock_port = _free_port(), _free_port(), _free_port()
    sim = _spawn([esante, "sim", "insi", "--port", str(sim_port), "--evidence", str(tmp / "bench.sqlite")])
    answer_file = tmp / "answer.xml"
    try:
        _wait_healthy(sim_port, "/_admin/health")
        conn = http.client.HTTPConnection("127.0.0.1", sim_port)
        conn.request("POST", "/lps", body=body, headers=INSI_HEADERS)
        answer = conn.getresponse().read()
        answer_file.write_bytes(answer)
        figures = {"simulator": _warm_then_load(sim_port, "/lps", body, INSI_HEADERS)}
        records = _journaled(tmp / "bench.sqlite")
    finally:
        sim.terminate()
        sim.wait()
    bare = _spawn([sys.executable, "-c", BARE_APP, str(bare_port), str(answer_file)])
    try:
        _wait_healthy(bare_port, "/lps")
        figures["bare_fastapi"] = _warm_then_load(bare_port, "/lps", body, INSI_HEADERS)
    finally:
        bare.terminate()
        bare.wait()
    if problem := loadgen.wiremock_problem():
        figures["wiremock"] = {"skipped": problem}
    else:
        wiremock = loadgen.start_wiremock(wiremock_port, "/lps", answer, INSI_HEADERS["Content-Type"])
        try:
            figures["wiremock"] = {**_warm_then_load(wiremock_port, "/lps", body, INSI_HEADERS),
                                   "version": loadgen.wiremock_version()}
        finally:
            wiremock.terminate()
            wiremock.wait()
    rate = figures["simulator"]["req_per_s"]
    return {**figures, "journaled_exchanges": records,
            "ratio_to_wiremock": round(rate / figures["wiremock"]["req_per_s"], 3)
            if "req_per_s" in figures["wiremock"] else None,
            "ratio_to_bare": round(rate / figures["bare_fastapi"]["req_per_s"], 3)}


def _warm_then_load(port: int, path: str, body: bytes, headers: dict[str, str]) -> dict[str, float | str]:
    loadgen.load(port, path, body, headers, WARM_UP_SECONDS)
    return loadgen.load(port, path, body, headers, LOAD_SECONDS)


def _journaled(evidence: Path) -> int:
    """How many exchanges the simulator's evidence store holds: every lookup served must be there."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(evidence)) as db:
        return db.execute("SELECT count(*) FROM records WHERE kind = 'exchange.response'").fetchone()[0]


#: The shipped campaigns, and the simulators of the same names.
CAMPAIGNS = ("insi", "psc", "dmp", "mssante", "mes")


def bench_campaigns(tmp: Path) -> dict[str, object]:
    """Each shipped campaign against the reference candidate, end to end as a user runs it (``esante run``:
    interpreter start, imports, local simulators, cases, reports, signed bundle); its wall time, verdicts, and
    the time its scenario waits by design."""
    esante = str(Path(sys.executable).with_name("esante"))
    figures = {}
    for campaign in CAMPAIGNS:
        out = tmp / f"campaign-{campaign}"
        started = time.perf_counter()
        subprocess.run([esante, "run", campaign, "--out", str(out), "--signing-key", str(tmp / "signing.pem")],
                       cwd=tmp, check=True, capture_output=True)
        wall = time.perf_counter() - started
        report = json.loads((out / "report.json").read_text())
        figures[campaign] = {"wall_s": round(wall, 2), "designed_waits_s": _designed_waits(campaign),
                             "verdicts": sorted({case["verdict"] for case in report["cases"]})}
    return figures


def _designed_waits(campaign: str) -> float:
    """Seconds the campaign spends waiting on purpose: ``wait`` steps and latency faults (each delays one
    answer; a candidate that times out earlier waits less, so this is an upper bound)."""
    import yaml

    waits = 0.0

    def walk(node: object) -> None:
        nonlocal waits
        if isinstance(node, dict):
            if isinstance(node.get("wait"), int | float):
                waits += node["wait"]
            if node.get("kind") == "latency":
                waits += node.get("latency_ms", 0) / 1000
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "scenarios" / campaign / "campaign.yaml").read_text(encoding="utf-8")))
    return round(waits, 2)


def bench_ready(tmp: Path, repeats: int = 3) -> dict[str, object]:
    """From ``esante sim NAME`` to its first healthy answer, for each simulator (median of ``repeats``)."""
    esante = str(Path(sys.executable).with_name("esante"))
    figures = {}
    for name in CAMPAIGNS:
        times = []
        for i in range(repeats):
            port = _free_port()
            started = time.perf_counter()
            process = _spawn([esante, "sim", name, "--port", str(port), "--evidence",
                              str(tmp / f"ready-{name}{i}.sqlite")])
            try:
                _wait_healthy(port, "/_admin/health", timeout=30)
                times.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait()
        figures[name] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
    return figures


# -- PSC: token endpoint ----------------------------------------------------------------------------------

PSC_CLIENT = ("esante-reference-rp", "reference-rp-secret-not-for-production")
PSC_BARE_APP = """
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from esante.simulators.core.server import _EsanteProtocol
from esante.simulators.psc.protocol import TOKEN_PATH
app = FastAPI()
BODY = open(sys.argv[2], 'rb').read()
@app.post(TOKEN_PATH)
async def token(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type='application/json', headers={'Cache-Control': 'no-store'})
uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), http=_EsanteProtocol, log_level='warning',
            access_log=False, lifespan='off')
"""


def _psc_refresh_token(port: int) -> str:
    """Sign a professional in through the real code flow (the lab's helper plays the browser): a refresh token."""
    from esante.harness.lab.psc import psc_token

    return psc_token(f"http://127.0.0.1:{port}", None, "PS001", client_id=PSC_CLIENT[0]).refresh_token or ""


def bench_psc_token(tmp: Path) -> dict[str, float]:
    """Refresh grants per second at the PSC token endpoint (each signs an access and an ID token, RS256 2048,
    and is journaled), against a bare FastAPI endpoint answering a token response of the same size."""
    import base64
    from urllib.parse import urlencode

    from esante.simulators.psc.protocol import TOKEN_PATH

    esante = str(Path(sys.executable).with_name("esante"))
    sim_port, bare_port = _free_port(), _free_port()
    sim = _spawn([esante, "sim", "psc", "--port", str(sim_port), "--evidence", str(tmp / "psc.sqlite")])
    try:
        _wait_healthy(sim_port, "/_admin/health")
        body = urlencode({"grant_type": "refresh_token", "refresh_token": _psc_refresh_token(sim_port)}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(":".join(PSC_CLIENT).encode()).decode()}
        conn = http.client.HTTPConnection("127.0.0.1", sim_port)
        conn.request("POST", TOKEN_PATH, body=body, headers=headers)
        answer = tmp / "token.json"
        answer.write_bytes(conn.getresponse().read())
        bare = _spawn([sys.executable, "-c", PSC_BARE_APP, str(bare_port), str(answer)])
        try:
            _wait_healthy(bare_port, TOKEN_PATH)
            simulator = _warm_then_load(sim_port, TOKEN_PATH, body, headers)
            baseline = _warm_then_load(bare_port, TOKEN_PATH, body, headers)
        finally:
            bare.terminate()
            bare.wait()
    finally:
        sim.terminate()
        sim.wait()
    return {"simulator": simulator, "bare_fastapi": baseline,
            "ratio": round(simulator["req_per_s"] / baseline["req_per_s"], 3)}


MEMORY_LOAD_SECONDS = 240.0  # long enough to pass the tables' bound (two tokens per grant, ~100 grants/s)
MEMORY_SAMPLE_EVERY = 20.0


def _rss_mb(pid: int) -> float:
    """The resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def _refresh_forever(port: int, refresh_token: str, stop: float, counts: list[int], i: int) -> None:
    """Refresh grants back to back until ``stop``, each with the refresh token of the previous answer (as a
    client does): every grant leaves a new access and refresh token in the federator's memory."""
    import base64
    from urllib.parse import urlencode

    from esante.simulators.psc.protocol import TOKEN_PATH

    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "Authorization": "Basic " + base64.b64encode(":".join(PSC_CLIENT).encode()).decode()}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.perf_counter() < stop:
        conn.request("POST", TOKEN_PATH, headers=headers,
                     body=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}).encode())
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"unexpected status {response.status}: {answer}")
        refresh_token = answer["refresh_token"]
        counts[i] += 1
    conn.close()


def bench_psc_memory(tmp: Path) -> dict[str, object]:
    """PSC's memory under sustained refresh grants (each one leaves two tokens behind): the simulator's resident
    memory sampled as the tokens pile up past the bound of its tables, which must make it level off."""
    from esante.simulators.kits.oauth.server import MAX_ENTRIES

    esante = str(Path(sys.executable).with_name("esante"))
    port = _free_port()
    sim = _spawn([esante, "sim", "psc", "--port", str(port), "--evidence", str(tmp / "psc-memory.sqlite")])
    samples: list[dict[str, float]] = []
    try:
        _wait_healthy(port, "/_admin/health")
        tokens = [_psc_refresh_token(port) for _ in range(CLIENT_THREADS)]
        counts = [0] * CLIENT_THREADS
        started = time.perf_counter()
        stop = started + MEMORY_LOAD_SECONDS
        threads = [threading.Thread(target=_refresh_forever, args=(port, tokens[i], stop, counts, i))
                   for i in range(CLIENT_THREADS)]
        for t in threads:
            t.start()
        while (now := time.perf_counter()) < stop:
            samples.append({"s": round(now - started, 1), "grants": sum(counts), "rss_mb": _rss_mb(sim.pid)})
            time.sleep(MEMORY_SAMPLE_EVERY)
        for t in threads:
            t.join()
        samples.append({"s": round(time.perf_counter() - started, 1), "grants": sum(counts),
                        "rss_mb": _rss_mb(sim.pid)})
    finally:
        sim.terminate()
        sim.wait()
    bound = next((x for x in samples if 2 * x["grants"] > MAX_ENTRIES), samples[-1])
    return {"tokens_issued": 2 * samples[-1]["grants"], "max_entries_per_table": MAX_ENTRIES,
            "rss_mb_start": samples[0]["rss_mb"], "rss_mb_at_bound": bound["rss_mb"],
            "rss_mb_end": samples[-1]["rss_mb"],
            "growth_after_bound_mb_per_10k_grants": round(
                (samples[-1]["rss_mb"] - bound["rss_mb"]) * 10_000 / max(1, samples[-1]["grants"] - bound["grants"]),
                2), "samples": samples}


def _campaign_seconds(tmp: Path, label: str, simulators: str) -> float:
    from esante.harness.session import RunRequest, play

    started = time.perf_counter()
    play(RunRequest("insi", out_dir=tmp / label, pki_dir=tmp / "pki", signing_key=tmp / "key.pem",
                    simulators=simulators))
    return time.perf_counter() - started


def bench_containers(tmp: Path, repeats: int = 3) -> dict[str, object]:
    """Image size; compose services up to all healthy; INSi campaign in containers ÷ local, in one run.

    Without a compose tool the services are started from docker/compose.yaml through the Docker API, in
    parallel, each waited for with its own health check command: what ``docker compose up --wait`` does.
    Campaign times are end to end (``esante run``): in containers they include starting and stopping them.
    """
    from concurrent.futures import ThreadPoolExecutor

    from esante.harness.containers import (
        build_image,
        compose_services,
        engine_problem,
        image_name,
        image_size,
        start_service,
    )

    problem = engine_problem()
    if problem:
        return {"skipped": problem}
    image = image_name()
    build_image(image)
    env = {"ESANTE_ADMIN_TOKEN": "bench", "ESANTE_IMAGE": image}
    services = compose_services(ROOT / "docker" / "compose.yaml", env)
    up = []
    for _ in range(repeats):
        started = time.perf_counter()
        with ThreadPoolExecutor(len(services)) as pool:
            containers = list(pool.map(start_service, services.values()))
        up.append(time.perf_counter() - started)
        for container in containers:
            container.stop()
    local = [_campaign_seconds(tmp, f"local-{n}", "local") for n in range(repeats)]
    contained = [_campaign_seconds(tmp, f"containers-{n}", "containers") for n in range(repeats)]
    base = os.environ.get("BASE_IMAGE", "python:3.11-slim")
    return {"image": image, "image_size_mb": round(image_size(image) / 1e6, 1),
            "base_image": base, "base_image_size_mb": round(image_size(base) / 1e6, 1),
            "compose_up_to_healthy_s": {"median_s": round(statistics.median(up), 3), "services": sorted(services),
                                        "runs_s": [round(t, 3) for t in up]},
            "campaign_local_s": round(statistics.median(local), 3),
            "campaign_containers_s": round(statistics.median(contained), 3),
            "campaign_containers_over_local": round(statistics.median(contained) / statistics.median(local), 2)}


# -- Mon espace santé: measures and the referencing window ------------------------------------------------
def bench_mes(tmp: Path, repeats: int = 20) -> dict[str, object]:
    """Measure bundles accepted per second (HTTP, validation, journal) and in-process validation alone; the
    admissibility check of the reference dossier (150 criteria)."""
    from esante.harness.lab.mes import bundle, mes_pairing, observation
    from esante.simulators.mes.catalogue import check_dossier
    from esante.simulators.mes.measures import validate_bundle

    esante = str(Path(sys.executable).with_name("esante"))
    port = _free_port()
    sim = _spawn([esante, "sim", "mes", "--port", str(port), "--evidence", str(tmp / "mes.sqlite"),
                  "--option", "rate_limit=1000000"])
    try:
        _wait_healthy(port, "/_admin/health")
        tokens = mes_pairing(f"http://127.0.0.1:{port}", None, "P001", scope="patient/Observation.write")
        patient_ref = f"Patient/{(tokens.model_extra or {})['patient']}"
        sample = bundle(observation("blood_pressure", patient_ref), conditional=False)
        body = json.dumps(sample).encode()
        headers = {"Content-Type": "application/fhir+json", "Authorization": f"Bearer {tokens.access_token}"}
        accepted = _warm_then_load(port, "/fhir", body, headers)
    finally:
        sim.terminate()
        sim.wait()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < 2.0:
        validate_bundle(sample, patient_ref)
        count += 1
    validation_per_s = count / (time.perf_counter() - started)
    dossier = (ROOT / "harness/reference/mes/dossier.yaml").read_text(encoding="utf-8")
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        assert check_dossier(dossier).admissible
        timings.append(time.perf_counter() - started)
    return {"bundles_accepted": accepted, "validation_only_per_s": round(validation_per_s, 1),
            "dossier_check_ms": {"median": round(statistics.median(timings) * 1000, 2),
                                 "max": round(max(timings) * 1000, 2), "criteria": 150}}


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dmp  # noqa: E402  (beside this script)
import bench_mssante  # noqa: E402
import loadgen  # noqa: E402

#: Every group of figures, in the order of a full run; each can be taken alone (``bench.py dmp``...).
GROUPS: dict[str, Callable[[Path], dict[str, object]]] = {
    "insi": bench_insi,
    "psc_token": bench_psc_token,
    "dmp": lambda tmp: bench_dmp.run(tmp, _spawn, _free_port, _wait_healthy),
    "mssante": bench_mssante.run,
    "campaigns": bench_campaigns,
    "ready": bench_ready,
    "mes": bench_mes,
    "psc_memory": bench_psc_memory,
    "containers": bench_containers,
}
#: Taken only when named: four minutes of load, or a container engine.
NOT_IN_FULL_RUN = ("psc_memory", "containers")
#: Keys of earlier versions of this script, dropped when results.json is written.
OBSOLETE = ("insi_lookups_per_s", "campaign_wall_s", "simulator_ready_s", "psc_token_refresh_per_s", "aims")


def targets(results: dict[str, Any]) -> list[dict[str, object]]:
    """Each target of issue 22 with its last figure and whether it is met (None: not measured)."""
    def get(*keys: str) -> Any:
        node: Any = results
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def row(target: str, aim: str, figure: Any, met: Callable[[Any], bool]) -> dict[str, object]:
        return {"target": target, "aim": aim, "figure": figure, "met": None if figure is None else met(figure)}

    iti18 = get("dmp", "iti18", "per_s") or {}
    rows = [
        row("INSi lookups/s ÷ WireMock serving the same answer canned", ">= 1.0", get("insi", "ratio_to_wiremock"),
            lambda x: x >= 1.0),
        row("PSC refresh grants/s ÷ bare endpoint", ">= 0.5", get("psc_token", "ratio"), lambda x: x >= 0.5),
        row("DMP ITI-18 for 20 documents, per s (slowest registry size)", ">= 500",
            min(iti18.values()) if iti18 else None, lambda x: x >= 500),
        row("DMP ITI-18 flat: rate at 100k ÷ rate at 1k documents", ">= 0.67",
            get("dmp", "iti18", "ratio_100k_over_1k"), lambda x: x >= 0.67),
        row("DMP ITI-41 feeds/s, 100 kB CDA, every check", ">= 300", get("dmp", "iti41", "feeds_per_s"),
            lambda x: x >= 300),
        row("MSSanté structured 1 MB messages/s SMTP → store → IMAP", ">= 50", get("mssante", "smtp_to_imap_per_s"),
            lambda x: x >= 50),
    ]
    for name, figure in (get("campaigns") or {}).items():
        if isinstance(figure, dict) and "wall_s" in figure:
            rows.append(row(f"campaign {name} wall, start-up included", "< 5 s", figure["wall_s"], lambda x: x < 5))
    for name, figure in (get("ready") or {}).items():
        if isinstance(figure, dict) and "median_s" in figure:
            rows.append(row(f"esante sim {name} ready", "< 1 s", figure["median_s"], lambda x: x < 1))
    rows.append(row("PSC memory under sustained grants, MB per 10k grants past the tables' bound", "~0 (flat)",
                    get("psc_memory", "growth_after_bound_mb_per_10k_grants"), lambda x: x < 1))
    return rows


def main() -> None:
    names = sys.argv[1:] or [name for name in GROUPS if name not in NOT_IN_FULL_RUN]
    if unknown := [name for name in names if name not in GROUPS]:
        raise SystemExit(f"unknown {unknown}; usage: bench.py [{'|'.join(GROUPS)}]... (none: a full run)")
    out = ROOT / "benchmarks" / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for key in OBSOLETE:
        results.pop(key, None)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "wrk": loadgen.wrk_available()}
    if not sys.argv[1:]:
        results["taken_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            print(f"-- {name}", flush=True)
            # the load average says how busy the machine was (other work shares its cores): figures are comparable
            # only within one group, taken under the same conditions
            results[name] = {"taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
                             "load_average_1min": round(os.getloadavg()[0], 2), **GROUPS[name](Path(directory))}
            print(json.dumps(results[name], indent=2), flush=True)
            results["targets"] = targets(results)
            out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")  # each group as it comes
    print(markdown(results["targets"]))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The targets as the table of ``benchmarks/README.md``."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    return "\n".join(["| target | aim | last figure | |", "|---|---|---|---|",
                      *(f"| {r['target']} | {r['aim']} | {r['figure']} | {verdict[r['met']]} |" for r in rows)])


if __name__ == "__main__":
    main()
