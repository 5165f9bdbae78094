"""Soak: each simulator under sustained loopback load, its memory watched (a script, not a timed test).

    python benchmarks/soak.py                    # every simulator, 10 minutes each
    python benchmarks/soak.py psc mes --minutes 2

Each simulator runs alone in its own process (``esante sim NAME``, plain HTTP, its own evidence file and test
PKI). Client threads of this process send, back to back, the traffic of the reference candidate's campaigns (the
same request builders: the official INSi request, PSC's code flow then refresh grants and introspection, DMP
ITI-41 feeds and ITI-18 searches with signed VIHF, Mon espace santé pairing, measure bundles and searches, the
MSSanté directory) mixed with hostile input (one request in five: hostile XML, garbage, oversized bodies, bad
client assertions, junk JSON and queries, numeric dates). Every ``RESET_EVERY`` seconds the harness's admin API
resets the simulator, as a campaign does between cases, so the state one case builds up must be let go.

Reported per simulator, into ``results.json`` under ``soak``: operations served (an operation is one HTTP request,
except a PSC sign-in or a MES pairing, which are whole browser flows), per second, p99 latency, errors by kind
(``crash``: the journal recorded a handler exception; ``5xx``: a 5xx that is not the SOAP services' own fault;
``timeout``; ``connection``; ``refused_valid``: a valid request refused) with hostile inputs' refusals counted
apart, and so are the answers a correct simulator owes a client that no error makes (``expected``): a token or
flow the harness's reset dropped (``reset``: the client's grant is from before the reset), and a rate limit's
429 (``throttled``: the thread then waits the ``Retry-After`` it was given, as a partner app must), and the
resident memory of the simulator's process at start (after warm-up), middle and end, with every
sample. Flat is the aim: expired codes, tokens and sessions purged, journals on disk, not in memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench import PSC_CLIENT, _request_body, _rss_mb, _wait_healthy  # noqa: E402
from esante.simulators.core.server import free_port  # noqa: E402

MINUTES = 10.0
THREADS = 4
RESET_EVERY = 30.0
SAMPLE_EVERY = 10.0
HOSTILE_SHARE = 0.2
TIMEOUT = 10.0
ADMIN_TOKEN = "soak-admin-token"
VECTORS = ROOT / "tests" / "vectors"
SOAP = {"Content-Type": "application/soap+xml; charset=utf-8"}

#: One operation: it sends with the thread's client and returns the status of its answer (or of its last one).
Operation = Callable[[httpx.Client], int]


class Expected(Exception):
    """An answer a correct simulator owes the client, counted apart: ``kind`` is ``reset`` or ``throttled``."""

    def __init__(self, kind: str, wait: float = 0.0) -> None:
        super().__init__(kind)
        self.kind, self.wait = kind, wait


class Traffic:
    """A simulator's traffic: valid operations (the reference candidate's) and hostile ones."""

    soap = False  # a SOAP service answers its faults with HTTP 500 (SOAP 1.2 Receiver): not an error here

    def __init__(self, url: str, pki: Path) -> None:
        self.url, self.pki = url, pki
        self.lock = threading.Lock()
        self.resets = 0  # counts up before and after each reset by the harness: what a client's grant predates

    def valid(self) -> list[Operation]:
        raise NotImplementedError

    def hostile(self) -> list[Operation]:
        return [lambda c: c.post(self.url + "/", content=os.urandom(512)).status_code,
                lambda c: c.get(self.url + "/%00/../../etc/passwd?x=" + "A" * 4000).status_code]


def _post(path: str, body: bytes, headers: dict[str, str] | None = None) -> Callable[[Traffic], Operation]:
    return lambda t: (lambda c: c.post(t.url + path, content=body, headers=headers or SOAP).status_code)


class Insi(Traffic):
    soap = True

    def valid(self) -> list[Operation]:
        body = _request_body()
        return [_post("/lps", body)(self)]

    def hostile(self) -> list[Operation]:
        bodies = [p.read_bytes() for p in sorted((VECTORS / "hostile").glob("*.xml"))]
        bodies += [b"<soap:Envelope", _request_body().replace(b"MOREAU", b"\xff\xfe" * 50), b"A" * 600_000]
        return [*super().hostile(), *(_post("/lps", body)(self) for body in bodies)]


class Psc(Traffic):
    """Sign-ins through the code flow, then refresh grants and introspection with the thread's tokens."""

    def __init__(self, url: str, pki: Path) -> None:
        super().__init__(url, pki)
        self.tokens = threading.local()
        self.basic = {"Authorization": "Basic " + base64.b64encode(":".join(PSC_CLIENT).encode()).decode()}

    def _sign_in(self, _client: httpx.Client) -> int:
        from esante.harness.lab.psc import psc_token

        self.tokens.refresh = psc_token(self.url, None, "PS001", client_id=PSC_CLIENT[0]).refresh_token
        return 200

    def _refresh(self, client: httpx.Client) -> int:
        from esante.simulators.psc.protocol import TOKEN_PATH

        if getattr(self.tokens, "refresh", None) is None:
            return self._sign_in(client)
        answer = client.post(self.url + TOKEN_PATH, headers=self.basic,
                             data={"grant_type": "refresh_token", "refresh_token": self.tokens.refresh})
        if answer.status_code == 400:  # the simulator was reset: its grants are gone, sign in again
            self.tokens.refresh = None
            return self._sign_in(client)
        self.tokens.refresh, self.tokens.access = answer.json()["refresh_token"], answer.json()["access_token"]
        return answer.status_code

    def _introspect(self, client: httpx.Client) -> int:
        from esante.simulators.psc.protocol import INTROSPECT_PATH

        token = getattr(self.tokens, "access", None) or "none"
        return client.post(self.url + INTROSPECT_PATH, headers=self.basic, data={"token": token}).status_code

    def valid(self) -> list[Operation]:
        from esante.simulators.psc.protocol import STANDARD_DISCOVERY_PATH

        return [self._refresh, self._refresh, self._introspect,
                lambda c: c.get(self.url + STANDARD_DISCOVERY_PATH).status_code]

    def hostile(self) -> list[Operation]:
        from esante.simulators.psc.protocol import AUTHORIZE_PATH, TOKEN_PATH

        junk = "eyJhbGciOiJSUzI1NiJ9.WzFd.c2ln"
        return [*super().hostile(),
                lambda c: c.post(self.url + TOKEN_PATH, data={"client_assertion": junk, "grant_type": "x",
                                                              "client_assertion_type": "urn:ietf:params:oauth:"
                                                              "client-assertion-type:jwt-bearer"}).status_code,
                lambda c: c.get(self.url + AUTHORIZE_PATH, params={"client_id": "\x00" * 30,
                                                                    "redirect_uri": "javascript:x"}).status_code,
                lambda c: c.post(self.url + TOKEN_PATH, content=os.urandom(2000),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code]


class Dmp(Traffic):
    soap = True

    def valid(self) -> list[Operation]:
        from benchmarks.bench_dmp import _parties, feed_request, search_request
        from esante.harness.reference.pdf import minimal_pdf
        from esante.simulators.core.pki import TestCA
        from esante.simulators.dataset import load_dataset
        from esante.simulators.dmp.protocol import REGISTRY_PATH, REPOSITORY_PATH

        parties = _parties(TestCA.load_or_create(self.pki), load_dataset())
        feeds = [feed_request(parties, minimal_pdf("Compte rendu de soak. " * 40))[0] for _ in range(20)]
        searches = [search_request(parties) for _ in range(20)]

        def feed(client: httpx.Client) -> int:
            return client.post(self.url + REPOSITORY_PATH, content=random.choice(feeds), headers=SOAP).status_code

        def search(client: httpx.Client) -> int:
            return client.post(self.url + REGISTRY_PATH, content=random.choice(searches), headers=SOAP).status_code

        return [feed, search, search]

    def hostile(self) -> list[Operation]:
        from esante.simulators.dmp.protocol import REGISTRY_PATH

        examples = sorted((VECTORS / "dmp").glob("*_requete.xml"))
        broken = [p.read_bytes().replace(b"<", b"<!--", 1) for p in examples[:3]]
        broken += [p.read_bytes().replace(b"2019", b"2019-02-30T99") for p in examples[3:8]]
        return [*super().hostile(), *(_post(REGISTRY_PATH, body)(self) for body in broken)]


class Mes(Traffic):
    """Pairing, measure bundles and searches with the thread's token; a reset means pairing again."""

    def __init__(self, url: str, pki: Path) -> None:
        super().__init__(url, pki)
        self.session = threading.local()

    def _token(self) -> tuple[str, str]:
        from esante.harness.lab.mes import mes_pairing

        if getattr(self.session, "token", None) is None:
            generation = self.resets
            try:
                tokens = mes_pairing(self.url, None, "P001")
            except (KeyError, ValueError, RuntimeError):
                if generation != self.resets:  # the reset forgot the pairing flow's authorization request or code
                    raise Expected("reset") from None
                raise
            self.session.token, self.session.patient = tokens.access_token, str(tokens.model_extra["patient"])
            self.session.generation = generation
        return self.session.token, self.session.patient

    def _call(self, client: httpx.Client, method: str, path: str, body: Any = None) -> int:
        token, _ = self._token()
        answer = client.request(method, self.url + "/fhir" + path, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            content=json.dumps(body) if body is not None else None)
        if answer.status_code == 401:
            self.session.token = None
            if self.session.generation != self.resets:  # paired before a reset, which forgot the pairing
                raise Expected("reset")
        if answer.status_code == 429:  # MES's 50 calls per second per pairing: four threads back to back exceed it
            raise Expected("throttled", float(answer.headers.get("Retry-After", "1")))
        return answer.status_code

    def valid(self) -> list[Operation]:
        from esante.harness.lab.mes import bundle, observation

        def measure(client: httpx.Client) -> int:
            patient = self._token()[1]
            return self._call(client, "POST", "", bundle(observation("heart_rate", f"Patient/{patient}")))

        return [measure, lambda c: self._call(c, "GET", "/Observation?code=8867-4&_count=20"),
                lambda c: self._call(c, "GET", "/metadata")]

    def hostile(self) -> list[Operation]:
        return [*super().hostile(),
                lambda c: self._call(c, "GET", "/Patient?birthdate=20240230&_count=-1"),
                lambda c: self._call(c, "POST", "", {"resourceType": "Bundle", "type": "transaction",
                                                     "entry": [{"resource": {"resourceType": "Observation",
                                                                             "effectiveDateTime": 20240101}}]}),
                lambda c: self._call(c, "POST", "/Appointment", [1, {"start": 1e308}])]


class Mssante(Traffic):
    """The directory's HTTP API (the mail servers are left out: they are being rewritten)."""

    def valid(self) -> list[Operation]:
        key = {"ESANTE-API-KEY": "soak"}
        return [lambda c: c.get(self.url + "/fhir/v2/PractitionerRole", params={"name": "VASSEUR"},
                                headers=key).status_code,
                lambda c: c.get(self.url + "/fhir/v2/Practitioner", headers=key).status_code]

    def hostile(self) -> list[Operation]:
        return [*super().hostile(),
                lambda c: c.get(self.url + "/fhir/v2/PractitionerRole", params={"_count": "1e99", "x:y": "|"},
                                headers={"ESANTE-API-KEY": "soak"}).status_code,
                lambda c: c.get(self.url + "/fhir/v2/Nothing/../../x").status_code]


TRAFFIC: dict[str, type[Traffic]] = {"insi": Insi, "psc": Psc, "dmp": Dmp, "mes": Mes, "mssante": Mssante}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.refusals = 0

    def add(self, seconds: float, status: int | None, hostile: bool, soap: bool, failure: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if failure:
                self.errors[failure] += 1
            elif status is not None and status >= 500 and not (soap and status == 500):
                self.errors["5xx"] += 1
            elif status is not None and status >= 400:
                if hostile:
                    self.refusals += 1
                else:
                    self.errors["refused_valid"] += 1


def _worker(traffic: Traffic, valid: list[Operation], hostile: list[Operation], stop: float, tally: Tally) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        while time.monotonic() < stop:
            is_hostile = random.random() < HOSTILE_SHARE
            operation = random.choice(hostile if is_hostile else valid)
            started, status, failure = time.perf_counter(), None, None
            try:
                status = operation(client)
            except Expected as answer:
                with tally.lock:
                    tally.expected[answer.kind] += 1
                time.sleep(answer.wait)
                continue
            except httpx.TimeoutException:
                failure = "timeout"
            except (httpx.TransportError, OSError):
                failure = "connection"
            except (KeyError, ValueError, RuntimeError) as exc:  # an answer a valid flow could not read
                failure = f"flow: {type(exc).__name__}"
            tally.add(time.perf_counter() - started, status, is_hostile, traffic.soap, failure)


def _crashes(evidence: Path) -> int:
    """Exchanges the journal recorded as a crashed handler (outcome ``error``)."""
    db = sqlite3.connect(f"{evidence.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM records WHERE kind = 'exchange.response' AND "
                          "json_extract(payload, '$.outcome') = 'error'").fetchone()[0]
    finally:
        db.close()


def soak(name: str, minutes: float, tmp: Path) -> dict[str, Any]:
    port, evidence, pki = free_port(), tmp / f"{name}.sqlite", tmp / "pki"
    esante = str(Path(sys.executable).with_name("esante"))
    sim = subprocess.Popen([esante, "sim", name, "--port", str(port), "--evidence", str(evidence), "--pki-dir",
                            str(pki)], cwd=ROOT, env={**os.environ, "ESANTE_ADMIN_TOKEN": ADMIN_TOKEN},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(port, "/_admin/health")
        traffic = TRAFFIC[name](f"http://127.0.0.1:{port}", pki)
        valid, hostile = traffic.valid(), traffic.hostile()
        _worker(traffic, valid, hostile, time.monotonic() + 5, Tally())  # warm-up
        return _measure(traffic, valid, hostile, sim.pid, port, minutes * 60) | {"crash": _crashes(evidence)}
    finally:
        sim.terminate()
        sim.wait(timeout=60)


def _measure(traffic: Traffic, valid: list[Operation], hostile: list[Operation], pid: int, port: int,
             seconds: float) -> dict[str, Any]:
    tally, started = Tally(), time.monotonic()
    stop = started + seconds
    threads = [threading.Thread(target=_worker, args=(traffic, valid, hostile, stop, tally)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    samples, last_reset = [(0.0, _rss_mb(pid))], started
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        while time.monotonic() < stop:
            time.sleep(min(SAMPLE_EVERY, max(0.0, stop - time.monotonic())))
            if time.monotonic() - last_reset >= RESET_EVERY:
                traffic.resets += 1  # before and after: a grant obtained while it ran counts as from before it
                admin.post(f"http://127.0.0.1:{port}/_admin/reset")
                traffic.resets += 1
                last_reset = time.monotonic()
            samples.append((round(time.monotonic() - started, 1), _rss_mb(pid)))
    for thread in threads:
        thread.join()
    served = len(tally.latencies)
    return {"minutes": round(seconds / 60, 2), "threads": THREADS, "operations": served,
            "per_s": round(served / seconds, 1),
            "p99_ms": round(statistics.quantiles(tally.latencies, n=100)[98] * 1000, 1) if served > 100 else None,
            "errors": dict(tally.errors), "expected": dict(tally.expected), "hostile_refused": tally.refusals,
            "rss_mb": {"start": samples[0][1], "middle": samples[len(samples) // 2][1], "end": samples[-1][1]},
            "rss_samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("simulators", nargs="*", help=f"among {', '.join(TRAFFIC)} (default: all)")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave results.json alone")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="esante-soak-") as tmp:
        for name in args.simulators or list(TRAFFIC):
            figures[name] = soak(name, args.minutes, Path(tmp))
            print(name, json.dumps({k: v for k, v in figures[name].items() if k != "rss_samples"}), flush=True)
    if not args.no_write:
        path = ROOT / "benchmarks" / "results.json"
        results = json.loads(path.read_text()) if path.is_file() else {}
        machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
        results["soak"] = {**results.get("soak", {}), "machine": machine, "taken_at": time.strftime("%Y-%m-%d"),
                           **figures}
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
