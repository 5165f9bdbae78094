"""pytest fixtures for editors' own test suites: esante simulators as processes or containers.

Installed with the package and registered through the ``pytest11`` entry point, so ``pip install
esante-conformance`` is all a test suite needs. Fixtures:

* ``esante_insi``, ``esante_psc``... (one per registered simulator): that simulator, reset and filed under the
  current test; ``.url``, ``.ca_file``, ``.exchanges()`` (what it saw during the test), ``.set_faults(...)``,
  ``.admin`` (the full admin API client);
* ``esante_simulator(name)``: the same, by name;
* ``esante_pki``: the test CA the simulators' certificates come from (issue client certificates with it);
* ``esante_lab``: the session's simulators, started on first use, wired to each other (MSSanté introspects at
  PSC, Mon espace santé files in the DMP) and stopped at the end; ``esante_lab.psc_token("PS001")`` gives a PSC
  access token through the real code flow.

Options (or environment variables): ``--esante-simulators=process|container`` (``ESANTE_SIMULATORS``; default
``process``: ``esante sim`` subprocesses), ``--esante-image`` (``ESANTE_IMAGE``) and ``--esante-plain-http``.
Everything the simulators observe is imported, checked, into one evidence store (``esante_lab.store``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.harness.environment import introduce
from esante.harness.lab.psc import TokenSet, psc_token
from esante.harness.remote import RemoteSimulatorClient
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultRule
from esante.simulators.core.journal import Exchange
from esante.simulators.core.pki import CA_CERT_FILE, TestCA
from esante.simulators.core.server import free_port

PROCESS, CONTAINER = "process", "container"
START_TIMEOUT = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("esante", "esante-conformance simulators")
    group.addoption("--esante-simulators", choices=(PROCESS, CONTAINER), default=None,
                    help="run the simulators as local processes (default) or as containers of the image")
    group.addoption("--esante-image", default=None, help="the image for --esante-simulators=container")
    group.addoption("--esante-plain-http", action="store_true", help="serve the simulators over plain HTTP")


class _Process:
    """``esante sim NAME`` in a subprocess, its evidence in its own store; started once its health answers."""

    def __init__(self, name: str, *, workdir: Path, admin_token: str, tls: bool) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        env = {**os.environ, "ESANTE_ADMIN_TOKEN": admin_token, "ESANTE_PKI_DIR": str(workdir / "pki"),
               "ESANTE_EVIDENCE": str(workdir / f"{name}.sqlite")}
        args = [sys.executable, "-m", "esante.harness.cli", "sim", name, "--port", str(self.port)]
        self._log = (workdir / f"{name}.log").open("wb")
        self.process = subprocess.Popen(args + (["--tls"] if tls else []), env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait(self, ca_file: Path | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        verify: Any = str(ca_file) if ca_file else True
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/_admin/health", verify=verify, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"simulator process on {self.url} did not become healthy (see {self._log.name})")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class SimulatorHandle:
    """One simulator for one test: reset, filed under the test, its exchanges read back from the evidence."""

    def __init__(self, name: str, url: str, admin: RemoteSimulatorClient, ca_file: Path | None, run_id: str,
                 test_id: str) -> None:
        self.name, self.url, self.admin, self.ca_file = name, url, admin, ca_file
        self.run_id, self.test_id = run_id, test_id

    def exchanges(self) -> list[Exchange]:
        """Every call the simulator received during this test, as journaled (imported into the lab's store)."""
        return self.admin.journal(self.run_id, self.test_id)

    def set_faults(self, *rules: FaultRule | dict[str, Any]) -> None:
        self.admin.set_faults([r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules])

    def set_dataset(self, name: str) -> None:
        self.admin.set_dataset(name)


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
        self.clients: dict[str, RemoteSimulatorClient] = {}

    def url(self, name: str) -> str:
        return self._start(name)

    def _start(self, name: str) -> str:
        if name in self._running:
            return self._running[name].url
        if self.mode == CONTAINER:
            from esante.harness.containers import SimulatorContainer, image_name

            running: Any = SimulatorContainer(name, image=self.image or image_name(), admin_token=self.admin_token,
                                              ca=self.ca).start()
        else:
            running = _Process(name, workdir=self.workdir, admin_token=self.admin_token, tls=self.tls)
            running.wait(self.ca_file)
        self._running[name] = running
        client = RemoteSimulatorClient(name, running.url, self.admin_token, store=self.store,
                                       ca_pem=self.ca.ca_pem if self.ca else None)
        client.attach()
        self.clients[name] = client
        introduce(self.clients, {n: r.url for n, r in self._running.items()}, self.admin_token,
                  self.ca.ca_pem if self.ca else None)
        return running.url

    def psc_token(self, professional: str, *, client_id: str = "esante-reference-mss") -> TokenSet:
        """A PSC access token for ``professional`` (PS001, or a national id), through the code flow."""
        return psc_token(self.url("psc"), self.ca.ca_pem if self.ca else None, professional, client_id=client_id)

    def for_test(self, name: str, test_id: str) -> SimulatorHandle:
        url = self._start(name)
        client = self.clients[name]
        client.set_context(self.run_id, test_id)
        client.reset()
        client.set_dataset("default")
        return SimulatorHandle(name, url, client, self.ca_file, self.run_id, test_id)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()  # imports what is left while the simulator still runs
        for running in self._running.values():
            running.stop()


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
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def esante_pki(esante_lab: SessionLab) -> TestCA:
    if esante_lab.ca is None:
        pytest.skip("the simulators serve plain HTTP (--esante-plain-http): there is no test PKI")
    return esante_lab.ca


@pytest.fixture
def esante_simulator(esante_lab: SessionLab, request: pytest.FixtureRequest) -> Callable[[str], SimulatorHandle]:
    return lambda name: esante_lab.for_test(name, request.node.nodeid)


def _fixture_for(name: str) -> Any:
    def fixture(esante_lab: SessionLab, request: pytest.FixtureRequest) -> SimulatorHandle:
        return esante_lab.for_test(name, request.node.nodeid)

    fixture.__doc__ = f"The {name} simulator, reset and filed under the current test."
    return pytest.fixture(name=f"esante_{name}")(fixture)


for _entry in entry_points(group="esante.simulators"):
    globals()[f"esante_{_entry.name}"] = _fixture_for(_entry.name)
