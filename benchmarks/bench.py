"""Benchmarks of esante-conformance (not timed tests): run ``python benchmarks/bench.py``.

Figures, written to ``benchmarks/results.json`` with the machine they were taken on:

* ``insi_lookups_per_s`` — INSi traits lookups per second through the simulator with XML validation and
  the journal on, against a bare FastAPI endpoint answering a constant in the same run, on the same
  server stack; the figure is their ratio (aim: >= 0.5);
* ``campaign_wall_s`` — the whole INSi campaign against the reference candidate (aim: < 5 s);
* ``simulator_ready_s`` — from ``esante sim insi`` to the first healthy answer (aim: < 2 s);
* ``psc_token_refresh_per_s`` — refresh grants per second and p99 latency at the PSC token endpoint (two
  RS256 signatures and the journal per call), against a bare FastAPI endpoint answering a same-size token
  response in the same run, on the same server stack (no aim: a figure to watch);
* ``psc_memory`` — the PSC simulator's resident memory under sustained refresh grants (two tokens left behind by
  each), sampled as they pile up past the bound of its tables (``kits/oauth/server.py``, ``MAX_ENTRIES``): it
  must level off (run alone with ``python benchmarks/bench.py psc_memory``);
* ``dmp`` — ITI-41 feeds per second with a 100 kB CDA and every check, ITI-18 searches per second as the
  registry grows to 100,000 documents, and the memory of 100,000 documents (``bench_dmp.py``; run alone with
  ``python benchmarks/bench.py dmp``);
* ``mes`` — Mon espace santé: measure bundles (MesBundleFluxAlimentation) accepted per second through the
  simulator with full validation (fhir.resources structure, profile, LOINC, UCUM, range) and the journal,
  the same validation alone in-process, and the admissibility check of a dossier answering the full
  criteria catalogue (150 criteria);
* ``mssante`` — structured messages (1 MB XDM, every check) per second through SMTP, the store and IMAP, and
  the store's memory per 10,000 messages (``bench_mssante.py``; run alone with ``python benchmarks/bench.py
  mssante``);
* ``containers`` — the image's size, the compose services from start to all healthy, and the INSi campaign
  with its simulators in containers against local mode, as a ratio taken in one run (skipped, with the
  reason, where no container engine answers).

Servers run in their own processes; the load comes from threads of this process, on loopback only.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOAD_SECONDS = 4.0
CLIENT_THREADS = 4
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


def _load(port: int, body: bytes) -> float:
    """INSi lookups per second with CLIENT_THREADS keep-alive connections for LOAD_SECONDS."""
    rate, _ = _load_timed(port, "/lps", body, {"Content-Type": "application/soap+xml; charset=utf-8"})
    return rate


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


def bench_lookups(tmp: Path) -> dict[str, float]:
    body = _request_body()
    esante = str(Path(sys.executable).with_name("esante"))
    sim_port, bare_port = _free_port(), _free_port()
    sim = _spawn([esante, "sim", "insi", "--port", str(sim_port), "--evidence", str(tmp / "bench.sqlite")])
    answer = tmp / "answer.xml"
    try:
        _wait_healthy(sim_port, "/_admin/health")
        conn = http.client.HTTPConnection("127.0.0.1", sim_port)
        conn.request("POST", "/lps", body=body, headers={"Content-Type": "application/soap+xml"})
        answer.write_bytes(conn.getresponse().read())
        bare = _spawn([sys.executable, "-c", BARE_APP, str(bare_port), str(answer)])
        try:
            _wait_healthy(bare_port, "/lps")
            _load(sim_port, body), _load(bare_port, body)  # warm-up both
            simulator = _load(sim_port, body)
            baseline = _load(bare_port, body)
        finally:
            bare.terminate()
            bare.wait()
    finally:
        sim.terminate()
        sim.wait()
    return {"simulator": round(simulator, 1), "bare_fastapi": round(baseline, 1),
            "ratio": round(simulator / baseline, 3)}


def bench_campaign(tmp: Path, repeats: int = 3) -> dict[str, float]:
    from esante.harness.session import RunRequest, play

    times, verdicts = [], set()
    for i in range(repeats):
        started = time.perf_counter()
        output = play(RunRequest(campaign="insi", out_dir=tmp / f"run{i}", pki_dir=tmp / "pki",
                                 signing_key=tmp / "signing.pem"))
        times.append(time.perf_counter() - started)
        verdicts |= {c.verdict.value for c in output.result.cases}
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
            "verdicts": sorted(verdicts)}


def bench_ready(tmp: Path, repeats: int = 5) -> dict[str, float]:
    esante = str(Path(sys.executable).with_name("esante"))
    times = []
    for i in range(repeats):
        port = _free_port()
        started = time.perf_counter()
        process = _spawn([esante, "sim", "insi", "--port", str(port), "--evidence", str(tmp / f"ready{i}.sqlite")])
        try:
            _wait_healthy(port, "/_admin/health")
            times.append(time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait()
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}


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


def _load_timed(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, list[float]]:
    """Requests per second on ``path`` with CLIENT_THREADS keep-alive connections for LOAD_SECONDS, and each
    request's latency (seconds)."""
    latencies: list[list[float]] = [[] for _ in range(CLIENT_THREADS)]
    stop = time.perf_counter() + LOAD_SECONDS

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (started := time.perf_counter()) < stop:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")
            latencies[i].append(time.perf_counter() - started)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [x for per_thread in latencies for x in per_thread]
    return len(every) / LOAD_SECONDS, every


def _p99_ms(latencies: list[float]) -> float:
    return round(statistics.quantiles(latencies, n=100)[98] * 1000, 2)


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
            _load_timed(sim_port, TOKEN_PATH, body, headers), _load_timed(bare_port, TOKEN_PATH, body, headers)
            simulator, sim_latencies = _load_timed(sim_port, TOKEN_PATH, body, headers)
            baseline, bare_latencies = _load_timed(bare_port, TOKEN_PATH, body, headers)
        finally:
            bare.terminate()
            bare.wait()
    finally:
        sim.terminate()
        sim.wait()
    return {"simulator": round(simulator, 1), "bare_fastapi": round(baseline, 1),
            "ratio": round(simulator / baseline, 3), "simulator_p99_ms": _p99_ms(sim_latencies),
            "bare_fastapi_p99_ms": _p99_ms(bare_latencies), "client_threads": CLIENT_THREADS}


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
        _load_timed(port, "/fhir", body, headers)  # warm-up
        accepted, latencies = _load_timed(port, "/fhir", body, headers)
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
    return {"bundles_accepted_per_s": round(accepted, 1), "bundle_p99_ms": _p99_ms(latencies),
            "validation_only_per_s": round(validation_per_s, 1), "client_threads": CLIENT_THREADS,
            "dossier_check_ms": {"median": round(statistics.median(timings) * 1000, 2),
                                 "max": round(max(timings) * 1000, 2), "criteria": 150}}


def figures_only(name: str) -> None:
    """``python benchmarks/bench.py NAME``: only one group of figures, merged into results.json."""
    out = ROOT / "benchmarks" / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory() as directory:
        results[name] = {"taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
                         **GROUPS[name](Path(directory))}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results[name], indent=2))


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dmp  # noqa: E402  (beside this script)
import bench_mssante  # noqa: E402

#: The groups of figures that can be taken alone (``bench.py dmp``...).
GROUPS: dict[str, Callable[[Path], dict[str, object]]] = {
    "containers": bench_containers,
    "dmp": lambda tmp: bench_dmp.run(tmp, _spawn, _free_port, _wait_healthy),
    "mes": bench_mes,
    "mssante": bench_mssante.run,
    "psc_memory": bench_psc_memory,
}


def main() -> None:
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] not in GROUPS):
        raise SystemExit(f"usage: bench.py [{'|'.join(GROUPS)}] (no argument: every figure, into results.json)")
    if len(sys.argv) == 2:
        figures_only(sys.argv[1])
        return
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        results = {
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "insi_lookups_per_s": bench_lookups(tmp),
            "campaign_wall_s": bench_campaign(tmp),
            "simulator_ready_s": bench_ready(tmp),
            "psc_token_refresh_per_s": bench_psc_token(tmp),
            **{name: group(tmp) for name, group in GROUPS.items()},
            "aims": {"insi_lookups_ratio": ">= 0.5", "campaign_wall_s": "< 5", "simulator_ready_s": "< 2"},
        }
    out = ROOT / "benchmarks" / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
