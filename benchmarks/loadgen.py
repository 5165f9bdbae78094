"""Load and reference servers for ``benchmarks/bench.py``: wrk (or Python threads where wrk is not installed)
driving one POST endpoint, and WireMock serving a canned answer.

wrk is what the issue measured with (16 connections, the same request, after a warm-up); it is a Debian package
(``apt-get install wrk``). Without it the load comes from keep-alive connections on threads of this process,
which saturate at a lower rate: the figures then say ``"load": "python"`` and are not comparable to wrk's.

WireMock is the standalone jar of the npm package ``wiremock`` (``npm install`` in ``benchmarks/wiremock``),
run by ``java`` (17 on the development machines); it is started here, given one stub mapping, and stopped.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONNECTIONS = 16
WRK_THREADS = 2
PY_THREADS = 4
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def load(port: int, path: str, body: bytes, headers: dict[str, str], seconds: float) -> dict[str, float | str]:
    """Requests per second and p99 latency (ms) on ``POST path`` for ``seconds``, with wrk when installed."""
    if wrk_available():
        return _wrk(port, path, body, headers, seconds)
    rate, latencies = python_load(port, path, body, headers, seconds)
    return {"req_per_s": round(rate, 1), "p99_ms": p99_ms(latencies), "load": f"python, {PY_THREADS} connections"}


def _wrk(port: int, path: str, body: bytes, headers: dict[str, str], seconds: float) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as directory:
        body_file = Path(directory) / "body"
        body_file.write_bytes(body)
        script = Path(directory) / "post.lua"
        lines = ['wrk.method = "POST"', f'local f = io.open("{body_file}", "rb")', "wrk.body = f:read('*a')",
                 "f:close()", *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
                 # a non-2xx answer is counted by wrk but would not be a lookup: make the run fail loudly
                 "response = function(status) if status ~= 200 then error('status ' .. status) end end"]
        script.write_text("\n".join(lines) + "\n")
        out = subprocess.run(["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s",
                              "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if rate is None or p99 is None or errors is not None:
        raise RuntimeError(f"wrk on {path}: {out}")
    return {"req_per_s": round(float(rate[1]), 1), "p99_ms": round(float(p99[1]) * _UNIT[p99[2]], 2),
            "load": f"wrk, {CONNECTIONS} connections"}


def python_load(port: int, path: str, body: bytes, headers: dict[str, str],
                seconds: float) -> tuple[float, list[float]]:
    """Requests per second with PY_THREADS keep-alive connections for ``seconds``, and each one's latency."""
    latencies: list[list[float]] = [[] for _ in range(PY_THREADS)]
    stop = time.perf_counter() + seconds

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

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(PY_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [x for per_thread in latencies for x in per_thread]
    return len(every) / seconds, every


def p99_ms(latencies: list[float]) -> float:
    return round(statistics.quantiles(latencies, n=100)[98] * 1000, 2)


# -- WireMock ---------------------------------------------------------------------------------------------

def wiremock_problem() -> str | None:
    """Why WireMock cannot be started here, or None."""
    if shutil.which("java") is None:
        return "no java on PATH"
    if _wiremock_jar() is None:
        return "no WireMock jar: run `npm install` in benchmarks/wiremock"
    return None


def _wiremock_jar() -> Path | None:
    return next(iter(sorted((HERE / "wiremock/node_modules/wiremock/build").glob("wiremock-standalone-*.jar"))), None)


def wiremock_version() -> str:
    jar = _wiremock_jar()
    return jar.stem.removeprefix("wiremock-standalone-") if jar else ""


def start_wiremock(port: int, path: str, answer: bytes, content_type: str) -> subprocess.Popen[bytes]:
    """WireMock on ``port`` answering every ``POST path`` with ``answer`` (its defaults otherwise: request journal
    on, as the simulator's journal is)."""
    process = subprocess.Popen(["java", "-jar", str(_wiremock_jar()), "--port", str(port), "--bind-address",
                                "127.0.0.1", "--disable-banner"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stub = json.dumps({"request": {"method": "POST", "url": path},
                       "response": {"status": 200, "body": answer.decode(), "headers": {"Content-Type": content_type}}})
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/__admin/mappings", body=stub, headers={"Content-Type": "application/json"})
            if conn.getresponse().status == 201:
                return process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("WireMock did not start")
        time.sleep(0.2)
