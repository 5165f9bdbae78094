"""pytest fixtures for editors' own test suites: esante simulators as processes or containers.

Installed with the package and registered through the ``pytest11`` entry point, so ``pip install
esante-conformance`` is all a test suite needs. Fixtures:

* ``esante_insi``, ``esante_psc``... (one per registered simulator): that simulator, reset and filed under the
  current test (:class:`SimulatorHandle`): ``.url``, ``.ca_file``, ``.http`` (an HTTPS client trusting the
  test CA and, where the service wants one, presenting a client certificate of the test PKI: INSi's
  ``INSI-AUTO``), ``.exchanges()`` (what it saw during the test, each with its ``operation``),
  ``.judge("insi.soap12_envelope")`` (one named check of the conformance campaigns on what the test sent),
  ``.set_faults(...)``, ``.admin`` (the full admin API client);
* ``esante_simulator(name)``: the same, by name;
* ``esante_pki``: the test PKI the simulators' certificates come from (``.ca_file``; issue client certificates
  with it);
* ``esante_lab``: the session's simulators, started on first use, wired to each other (MSSanté introspects at
  PSC, Mon espace santé files in the DMP) and stopped at the end; ``esante_lab.psc_token("PS001")`` gives a PSC
  access token through the real code flow.

Requests for the SOAP services, built from their official examples, are in :mod:`esante.harness.lab.insi`.

Options (or environment variables): ``--esante-simulators=process|container`` (``ESANTE_SIMULATORS``; default
``process``: ``esante sim`` subprocesses), ``--esante-image`` (``ESANTE_IMAGE``) and ``--esante-plain-http``.
Everything the simulators observe is imported, checked, into one evidence store (``esante_lab.store``).

No simulator outlives the session, however it ends: each process leads its own process group, which the
session stops and reaps (at its end, and at exit), and each stops by itself when the session's process is gone
(killed, timed out).
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.harness.checks import CheckContext, load_checks
from esante.harness.environment import introduce
from esante.harness.lab.oauth import TokenSet
from esante.harness.lab.psc import psc_token
from esante.harness.remote import RemoteSimulatorClient
from esante.reports.model import Verdict
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultRule
from esante.simulators.core.journal import Exchange
from esante.simulators.core.pki import CA_CERT_FILE, IssuedCert, TestCA, client_ssl_context
from esante.simulators.core.server import free_port
from esante.simulators.dataset import load_dataset

PROCESS, CONTAINER = "process", "container"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("esante", "esante-conformance simulators")
    group.addoption("--esante-simulators", choices=(PROCESS, CONTAINER), default=None,
                    help="run the simulators as local processes (default) or as containers of the image")
    group.addoption("--esante-image", default=None, help="the image for --esante-simulators=container")
    group.addoption("--esante-plain-http", action="store_true", help="serve the simulators over plain HTTP")


def _verify(ca_pem: bytes | None, cert: IssuedCert | None = None) -> Any:
    """What httpx's ``verify`` takes: a TLS context trusting the test CA (presenting ``cert``), or True for plain
    HTTP (an SSL context, never a file name: httpx deprecates those)."""
    return client_ssl_context(ca_pem, cert) if ca_pem is not None else True


class _Process:
    """``esante sim NAME`` in a subprocess leading its own process group, its evidence in its own store; it stops
    by itself if this process disappears (``--stop-with-parent``)."""

    def __init__(self, name: str, *, workdir: Path, admin_token: str, tls: bool) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        env = {**os.environ, "ESANTE_ADMIN_TOKEN": admin_token, "ESANTE_PKI_DIR": str(workdir / "pki"),
               "ESANTE_EVIDENCE": str(workdir / f"{name}.sqlite")}
        args = [sys.executable, "-m", "esante.harness.cli", "sim", name, "--port", str(self.port),
                "--stop-with-parent", *(["--tls"] if tls else [])]
        self._log = (workdir / f"{name}.log").open("wb")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait(self, ca_pem: bytes | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(verify=_verify(ca_pem), timeout=1) as http:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if http.get(f"{self.url}/_admin/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.1)
        raise RuntimeError(f"the {self.name} simulator process on {self.url} did not become healthy "
                           f"(see {self._log.name})")

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL) and reap the process; safe to call twice."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()


@dataclass(slots=True, repr=False)
class ObservedExchange(Exchange):
    """An exchange a simulator journaled, with the operation it was about (``rechercherInsAvecTraitsIdentite``)."""

    operation: str | None = None

    @classmethod
    def of(cls, exchange: Exchange) -> ObservedExchange:
        values = {f.name: getattr(exchange, f.name) for f in fields(Exchange)}
        return cls(**values, operation=exchange.notes.get("operation"))

    def __repr__(self) -> str:
        operation = f" {self.operation}" if self.operation else ""
        return f"<{self.simulator} {self.method} {self.path}{operation} -> {self.status or self.outcome}>"


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one check of the conformance campaigns found on what a test sent."""

    check: str
    requirements: tuple[str, ...]
    verdict: Verdict
    message: str
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def __repr__(self) -> str:
        return f"<{self.check} [{', '.join(self.requirements)}]: {self.verdict.value}: {self.message}>"

    __str__ = __repr__


class Pki:
    """The session's test PKI: ``ca_file`` (what a client trusts) and the CA itself, to issue client certificates
    (``issue_client``, ``issue_professional``, ``issue_structure``...)."""

    def __init__(self, ca: TestCA, ca_file: Path) -> None:
        self.ca, self.ca_file = ca, ca_file

    @property
    def ca_pem(self) -> bytes:
        return self.ca.ca_pem

    def __getattr__(self, name: str) -> Any:  # issue_client, issue_professional...: the CA's own
        if name == "ca":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.ca, name)

    def __repr__(self) -> str:
        return f"<esante test PKI: CA {self.ca_file}>"


class SimulatorHandle:
    """One simulator for one test: reset, filed under the test, its exchanges read back from the evidence."""

    def __init__(self, lab: SessionLab, name: str, url: str, test_id: str) -> None:
        self.lab, self.name, self.url, self.test_id = lab, name, url, test_id
        self.admin: RemoteSimulatorClient = lab.clients[name]
        self.ca_file, self.run_id = lab.ca_file, lab.run_id
        self.dataset = "default"
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"<esante {self.name} simulator at {self.url}, test {self.test_id}>"

    @property
    def http(self) -> httpx.Client:
        """An HTTP client for this simulator (relative URLs: ``esante_insi.http.post("/lps", ...)``), trusting the
        test CA and presenting the client certificate the service wants, if any; closed after the test."""
        if self._http is None:
            self._http = self.client(self.lab.client_certificate(self.name))
        return self._http

    def client(self, cert: IssuedCert | None = None, **options: Any) -> httpx.Client:
        """A new HTTP client for this simulator, presenting ``cert`` (issued by ``esante_pki``); the caller
        closes it."""
        ca_pem = self.lab.ca.ca_pem if self.lab.ca else None
        return httpx.Client(base_url=self.url, verify=_verify(ca_pem, cert), **{"timeout": 10.0, **options})

    def exchanges(self) -> list[ObservedExchange]:
        """Every call the simulator received during this test, as journaled (imported into the lab's store)."""
        return [ObservedExchange.of(e) for e in self.admin.journal(self.run_id, self.test_id)]

    def judge(self, check: str, **params: Any) -> Judgement:
        """Run the named check (``esante list checks``) on what this simulator saw during the test; ``params``
        are the check's parameters, as a campaign's ``with:`` gives them. Checks about what a software reports
        (its identity panel...) have no report to read here: they judge the exchanges only."""
        registered = load_checks().get(check)
        if registered is None:
            known = sorted(name for name in load_checks() if name.startswith(f"{self.name}."))
            raise KeyError(f"no check {check!r}; the {self.name} checks: {', '.join(known) or 'none'}")
        observed: list[Exchange] = list(self.exchanges())
        outcome = registered(CheckContext(self.test_id, observed, [], params, load_dataset(self.dataset)))
        return Judgement(registered.name, registered.requirements, outcome.verdict, outcome.message,
                         outcome.exchanges)

    def set_faults(self, *rules: FaultRule | dict[str, Any]) -> None:
        self.admin.set_faults([r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules])

    def set_dataset(self, name: str) -> None:
        self.admin.set_dataset(name)
        self.dataset = name

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class SessionLab:
    """The session's simulators: each started on first use, as processes or containers."""

    def __init__(self, mode: str, workdir: Path, *, tls: bool, image: str | None) -> None:
        self.mode, self.workdir, self.tls, self.image = mode, workdir, tls, image
        self.admin_token = secrets.token_urlsafe(24)
        self.run_id = f"pytest-{secrets.token_hex(4)}"
        self.ca = TestCA.load_or_create(workdir / "pki") if tls else None
        self.ca_file = workdir / "pki" / CA_CERT_FILE if tls else None
        self.store = EvidenceStore(workdir / "evidence.sqlite")
        self._running: dict[str, Any] = {}
        self._certificates: dict[str, IssuedCert | None] = {}
        self.clients: dict[str, RemoteSimulatorClient] = {}

    def __repr__(self) -> str:
        running = ", ".join(f"{name} {r.url}" for name, r in self._running.items()) or "none yet"
        return f"<esante lab ({self.mode} mode): {running}; CA {self.ca_file or 'none (plain HTTP)'}>"

    def url(self, name: str) -> str:
        return self._start(name)

    def _start(self, name: str) -> str:
        if name in self._running:
            return self._running[name].url
        if self.mode == CONTAINER:
            from esante.harness.containers import SimulatorContainer, image_name

            running: Any = SimulatorContainer(name, image=self.image or image_name(), admin_token=self.admin_token,
                                              ca=self.ca).start()
            self._running[name] = running
        else:
            running = _Process(name, workdir=self.workdir, admin_token=self.admin_token, tls=self.tls)
            self._running[name] = running  # before waiting: whatever happens next, close() stops it
            running.wait(self.ca.ca_pem if self.ca else None)
        client = RemoteSimulatorClient(name, running.url, self.admin_token, store=self.store,
                                       ca_pem=self.ca.ca_pem if self.ca else None)
        client.attach()
        self.clients[name] = client
        introduce(self.clients, {n: r.url for n, r in self._running.items()}, self.admin_token,
                  self.ca.ca_pem if self.ca else None)
        return running.url

    def client_certificate(self, name: str) -> IssuedCert | None:
        """The client certificate the service wants, issued once by the test CA: a service whose protocol
        lists the common names its mutual TLS accepts (``AUTHORISED_CERT_CNS``: INSi) gets the first."""
        if name not in self._certificates:
            protocol = import_module(f"esante.simulators.{name}.protocol")
            names = getattr(protocol, "AUTHORISED_CERT_CNS", ())
            self._certificates[name] = self.ca.issue_client(names[0]) if names and self.ca else None
        return self._certificates[name]

    def psc_token(self, professional: str, *, client_id: str = "esante-reference-mss") -> TokenSet:
        """A PSC access token for ``professional`` (PS001, or a national id), through the code flow."""
        return psc_token(self.url("psc"), self.ca.ca_pem if self.ca else None, professional, client_id=client_id)

    def for_test(self, name: str, test_id: str) -> SimulatorHandle:
        self._start(name)
        client = self.clients[name]
        client.set_context(self.run_id, test_id)
        client.reset()
        client.set_dataset("default")
        return SimulatorHandle(self, name, self._running[name].url, test_id)

    def close(self) -> None:
        """Import what is left, then stop every simulator, whatever the import found; safe to call twice."""
        clients, self.clients = self.clients, {}
        running, self._running = self._running, {}
        try:
            for client in clients.values():
                client.close()  # imports what is left while the simulator still runs
        finally:
            for simulator in running.values():
                simulator.stop()


@pytest.fixture(scope="session")
def esante_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionLab]:
    config = request.config
    mode = config.getoption("esante_simulators") or os.environ.get("ESANTE_SIMULATORS") or PROCESS
    if mode == CONTAINER:
        from esante.harness.containers import engine_problem

        problem = engine_problem()
        if problem:
            pytest.skip(f"esante simulators as containers: {problem}")
    lab = SessionLab(mode, tmp_path_factory.mktemp("esante"), tls=not config.getoption("esante_plain_http"),
                     image=config.getoption("esante_image"))
    atexit.register(lab.close)  # should the session end without its teardown
    try:
        yield lab
    finally:
        lab.close()
        atexit.unregister(lab.close)


@pytest.fixture(scope="session")
def esante_pki(esante_lab: SessionLab) -> Pki:
    if esante_lab.ca is None or esante_lab.ca_file is None:
        pytest.skip("the simulators serve plain HTTP (--esante-plain-http): there is no test PKI")
    return Pki(esante_lab.ca, esante_lab.ca_file)


@pytest.fixture
def esante_simulator(esante_lab: SessionLab, request: pytest.FixtureRequest
                     ) -> Iterator[Callable[[str], SimulatorHandle]]:
    handles: list[SimulatorHandle] = []

    def simulator(name: str) -> SimulatorHandle:
        handles.append(esante_lab.for_test(name, request.node.nodeid))
        return handles[-1]

    yield simulator
    for handle in handles:
        handle.close()


def _fixture_for(name: str) -> Any:
    def fixture(esante_lab: SessionLab, request: pytest.FixtureRequest) -> Iterator[SimulatorHandle]:
        handle = esante_lab.for_test(name, request.node.nodeid)
        yield handle
        handle.close()

    fixture.__doc__ = f"The {name} simulator, reset and filed under the current test."
    return pytest.fixture(name=f"esante_{name}")(fixture)


for _entry in entry_points(group="esante.simulators"):
    globals()[f"esante_{_entry.name}"] = _fixture_for(_entry.name)
