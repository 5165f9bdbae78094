"""The container backend: the campaign's simulators as containers of the project's image, through testcontainers.

:class:`ContainerEnvironment` starts one container per simulator (``ESANTE_SIMULATOR`` chooses which), each
with a fresh admin token and, for HTTPS, the run's test CA copied in, so the candidate outside trusts it and
is trusted by it exactly as in local mode. A container counts as started once the image's own health check
(``/opt/esante/healthcheck.py``, run inside it) succeeds: the engine's health status is not used, since not
every engine runs HEALTHCHECK (podman without systemd does not). Then it is a :class:`RemoteEnvironment`:
every simulator's evidence is imported into the run's store.

testcontainers and the Docker SDK are optional (``pip install 'esante-conformance[containers]'``);
:func:`engine_problem` says why containers cannot be used here, for a clear error or a test skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from esante.harness.remote import RemoteEnvironment
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import CA_CERT_FILE, CA_KEY_FILE, TestCA

DEFAULT_IMAGE = "esante-conformance:latest"
CONTAINER_PORT = 8001  # inside its own container every simulator may use the same port
HEALTH_CHECK = ["python", "/opt/esante/healthcheck.py"]
START_TIMEOUT = 60.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "docker/Dockerfile"


def image_name() -> str:
    """The image to run: ``ESANTE_IMAGE`` when set, else the one ``docker build -t esante-conformance`` makes."""
    return os.environ.get("ESANTE_IMAGE") or DEFAULT_IMAGE


def engine_problem() -> str | None:
    """Why simulators cannot run as containers here (missing library, no engine answering), or None."""
    try:
        import testcontainers  # noqa: F401

        import docker
    except ImportError:
        return "testcontainers is not installed (pip install 'esante-conformance[containers]')"
    where = os.environ.get("DOCKER_HOST", "the default Docker socket")
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises many kinds (connection, API, missing socket): all mean "no engine"
        return f"no container engine answers at {where} ({type(exc).__name__}: {str(exc)[:200]})"
    return None


def build_image(tag: str = DEFAULT_IMAGE, *, context: Path = PROJECT_ROOT, base_image: str | None = None) -> str:
    """Build the project's image from a source checkout (layers cached by the engine); returns its id.

    ``base_image`` (default ``$BASE_IMAGE``, else the Dockerfile's ``python:3.11-slim``) is the build argument
    that lets a machine without registry access use a local base image. The build uses the host's network,
    which some engines need to reach the package registry.
    """
    import docker

    base_image = base_image or os.environ.get("BASE_IMAGE")
    client = docker.from_env(timeout=600)
    try:
        image, _ = client.images.build(path=str(context), dockerfile=DOCKERFILE, tag=tag, rm=True,
                                       network_mode="host", buildargs={"BASE_IMAGE": base_image} if base_image else {})
        return str(image.id)
    finally:
        client.close()


def image_size(tag: str = DEFAULT_IMAGE) -> int:
    """The image's size in bytes, as the engine reports it."""
    import docker

    client = docker.from_env(timeout=30)
    try:
        return int(client.images.get(tag).attrs["Size"])
    finally:
        client.close()


class SimulatorContainer:
    """One simulator in a container of the project's image; ``url`` is where this host reaches it."""

    def __init__(self, name: str, *, image: str, admin_token: str, ca: TestCA | None, dataset: str = "default",
                 port: int = CONTAINER_PORT, environment: dict[str, str] | None = None) -> None:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import ExecWaitStrategy

        self.name, self.port, self.tls = name, port, ca is not None
        env = {"ESANTE_SIMULATOR": name, "ESANTE_PORT": str(port), "ESANTE_HOST": "0.0.0.0",
               "ESANTE_ADMIN_TOKEN": admin_token, "ESANTE_DATASET": dataset, "ESANTE_TLS": str(self.tls).lower(),
               **(environment or {})}
        self.container = DockerContainer(image).with_exposed_ports(port).with_envs(**env)
        self.container.waiting_for(ExecWaitStrategy(HEALTH_CHECK).with_startup_timeout(START_TIMEOUT)
                                   .with_poll_interval(0.2))
        if ca is not None:
            # The test CA (test-only material) goes in so that the simulator issues its server certificate
            # from the very CA the candidate and the harness trust; readable by the image's non-root user.
            self.container.with_copy_into_container(ca.ca_pem, f"/data/pki/{CA_CERT_FILE}", 0o644)
            self.container.with_copy_into_container(_key_pem(ca), f"/data/pki/{CA_KEY_FILE}", 0o644)

    def start(self) -> SimulatorContainer:
        self.container.start()
        return self

    @property
    def url(self) -> str:
        host = self.container.get_container_host_ip()
        host = "127.0.0.1" if host in ("localhost", "") else host  # the server certificate names 127.0.0.1
        return f"{'https' if self.tls else 'http'}://{host}:{self.container.get_exposed_port(self.port)}"

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")

    def stop(self) -> None:
        self.container.stop()


def _key_pem(ca: TestCA) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())


def start_containers(names: list[str], **options: Any) -> dict[str, SimulatorContainer]:
    """Start one container per simulator, in parallel; all are healthy on return, or none is left running."""
    containers = {name: SimulatorContainer(name, **options) for name in names}
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = {name: pool.submit(c.start) for name, c in containers.items()}
        failures = {name: f.exception() for name, f in futures.items() if f.exception() is not None}
    if failures:
        for container in containers.values():
            _stop_quietly(container)
        raise ValueError("simulator containers did not start: " + "; ".join(
            f"{name}: {type(exc).__name__}: {str(exc)[:500]}" for name, exc in failures.items()))
    return containers


def _stop_quietly(container: SimulatorContainer) -> None:
    with contextlib.suppress(Exception):  # never started, already gone: nothing left to stop
        container.stop()


class ContainerEnvironment(RemoteEnvironment):
    """The campaign's simulators started as containers for this run, stopped (after a last import) on close."""

    def __init__(self, names: list[str], *, store: EvidenceStore, pki_dir: Path, tls: bool = True,
                 dataset: str = "default", image: str | None = None) -> None:
        problem = engine_problem()
        if problem:
            raise ValueError(f"cannot run the simulators as containers: {problem}")
        token = secrets.token_urlsafe(24)
        ca = TestCA.load_or_create(pki_dir) if tls else None
        self.containers = start_containers(names, image=image or image_name(), admin_token=token, ca=ca,
                                           dataset=dataset)
        try:
            super().__init__(names, store=store, urls={n: c.url for n, c in self.containers.items()},
                             admin_token=token, ca_pem=ca.ca_pem if ca else None)
        except BaseException:
            self._stop_containers()
            raise

    def _stop_containers(self) -> None:
        for container in self.containers.values():
            _stop_quietly(container)

    def close(self) -> None:
        try:
            super().close()  # the last import needs the simulators still running
        finally:
            self._stop_containers()



# -- the compose file's services, started through the Docker API (where no compose tool is installed) ----------

_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            if env.get(match[1]):
                return env[match[1]]
            if match[2] == "?":
                raise ValueError(f"{match[1]} is not set: {match[3]}")
            return match[3] or ""

        return _VARIABLE.sub(one, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    return value


def compose_services(path: Path, env: Mapping[str, str], *, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The services of a compose file that ``up`` would start with these profiles, variables interpolated."""
    services = _interpolate(yaml.safe_load(path.read_text())["services"], env)
    return {name: s for name, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


def start_service(service: Mapping[str, Any]) -> Any:
    """Start one compose service as compose would (image, environment, command, first port) and wait for its
    own health check command; returns the started testcontainers container."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import ExecWaitStrategy

    port = int(str(service["ports"][0]).rsplit(":", 1)[1])
    container = DockerContainer(service["image"]).with_exposed_ports(port).with_envs(
        **{k: str(v) for k, v in service.get("environment", {}).items()})
    if "command" in service:
        container.with_command(service["command"])
    test = service["healthcheck"]["test"]
    container.waiting_for(ExecWaitStrategy(test[1:]).with_startup_timeout(START_TIMEOUT).with_poll_interval(0.2))
    return container.start()
