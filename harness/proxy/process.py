"""Running ``esante proxy``: the controller served from this process, mitmproxy (``mitmdump``) as a child process.

mitmproxy runs apart because on Python 3.11 it cannot share esante's environment: mitmproxy 11 pins
``cryptography < 44.1`` while the XML-DSig kit needs signxml 5.1+, which needs ``cryptography >= 45``. Where one
environment holds both (Python 3.12+, ``pip install 'esante-conformance[proxy]'``, mitmproxy 12), ``mitmdump`` is
found on the PATH; elsewhere it is installed on its own and named by ``ESANTE_MITMDUMP`` (or ``mitmdump=``).

:class:`ProxyHandle` starts both and returns once mitmproxy's addons have reached the controller (so every
listener is up); ``stop()`` ends mitmproxy, then the controller.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from esante.harness.proxy.controller import ProxyControl, control_app
from esante.harness.proxy.settings import EXPLICIT, ProxySettings
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import CA_CERT_FILE, CA_KEY_FILE, TestCA
from esante.simulators.core.server import ServerHandle, free_port

MITMDUMP_ENV = "ESANTE_MITMDUMP"
TOKEN_ENV = "ESANTE_PROXY_TOKEN"  # as addons.TOKEN_ENV (that module is mitmproxy's, not importable here)
START_TIMEOUT_S = 60.0
#: The addons mitmdump loads (``-s``): a script of mitmproxy's, never imported by esante itself.
ADDONS = Path(__file__).with_name("addons.py")


class ProxyUnavailable(RuntimeError):
    """mitmproxy is not installed where esante can find it, or it did not start."""


def find_mitmdump(configured: str | None = None) -> str:
    """``configured``, else ``$ESANTE_MITMDUMP``, else ``mitmdump`` on the PATH; ProxyUnavailable says how to
    install it."""
    found = configured or os.environ.get(MITMDUMP_ENV) or shutil.which("mitmdump")
    if not found or not Path(found).is_file():
        raise ProxyUnavailable(
            "mitmproxy's mitmdump was not found. On Python 3.12+: pip install 'esante-conformance[proxy]'. On "
            "Python 3.11 mitmproxy 11 cannot share esante's environment (it pins cryptography < 44.1): install it "
            "apart (python3 -m venv ~/.esante/mitmproxy && ~/.esante/mitmproxy/bin/pip install mitmproxy==11.0.2) "
            f"and set {MITMDUMP_ENV}=~/.esante/mitmproxy/bin/mitmdump")
    return found


class ProxyHandle:
    """One running proxy: its controller (admin API, journal) and its mitmdump process."""

    def __init__(self, settings: ProxySettings, store: EvidenceStore | None = None) -> None:
        self.settings = settings
        self.store = store or EvidenceStore(settings.evidence_path)
        self.control = ProxyControl(settings, self.store)
        self.ports = {u.service: settings.ports.get(u.service) or free_port(settings.host) for u in settings.upstreams}
        self.port = settings.port or free_port(settings.host)
        self._controller = ServerHandle(control_app(self.control), host=settings.host, port=settings.admin_port)
        self._confdir = Path()  # mitmproxy's configuration folder (its CA), made by start()
        self._process: subprocess.Popen[bytes] | None = None

    # -- where the candidate and the harness reach it --------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        return self._controller.url

    @property
    def proxy_url(self) -> str:
        """Explicit mode: the HTTP proxy the candidate is configured with (``HTTPS_PROXY``)."""
        return f"http://{self.settings.host}:{self.port}"

    def endpoints(self, direct: dict[str, str]) -> dict[str, str]:
        """The services' URLs as the candidate calls them: the proxy's in reverse mode, unchanged in explicit mode
        (``direct``: where the services are, for those the proxy does not stand in front of)."""
        if self.settings.mode == EXPLICIT:
            return dict(direct)
        host = self.settings.host
        return {**direct, **{u.service: f"{u.url.split(':', 1)[0]}://{host}:{self.ports[u.service]}"
                             for u in self.settings.upstreams}}

    # -- life ------------------------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The mitmdump command line (the controller's token travels in the environment, not here)."""
        s = self.settings
        if s.mode == EXPLICIT:
            modes = [f"regular@{self.port}"]
        else:
            modes = [f"reverse:{u.url}@{self.ports[u.service]}" for u in s.upstreams]
        options = {"confdir": str(self._confdir), "connection_strategy": "lazy", "request_client_cert": "true",
                   "body_size_limit": str(s.max_body_bytes), "esante_controller": self.admin_url,
                   "termlog_verbosity": "warn", "flow_detail": "0", "keep_host_header": "false"}
        if s.upstream_ca is not None:
            options["ssl_verify_upstream_trusted_ca"] = str(s.upstream_ca)
        if s.client_certs is not None:
            options["esante_client_certs"] = str(s.client_certs)
        if s.client_cert is not None:
            options["esante_client_cert"] = str(s.client_cert)
        return [find_mitmdump(s.mitmdump), "--listen-host", s.host, *(a for m in modes for a in ("--mode", m)),
                "-s", str(ADDONS), *(a for k, v in options.items() for a in ("--set", f"{k}={v}"))]

    def start(self) -> ProxyHandle:
        find_mitmdump(self.settings.mitmdump)  # says how to install it, before anything is made
        self._confdir = Path(tempfile.mkdtemp(prefix="esante-proxy-"))
        command = self.command()
        self._write_ca()
        self._controller.start()
        log = (self._confdir / "mitmdump.log").open("wb")
        env = {**os.environ, TOKEN_ENV: self.settings.admin_token}
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env)
        log.close()
        if not self._wait_ready():
            output = self.log()
            self.stop()
            raise ProxyUnavailable(f"mitmproxy did not start: {output[-2000:]}")
        return self

    def _write_ca(self) -> None:
        """mitmproxy's CA is the test PKI's: one CA file serves the simulators and the proxy."""
        pki = self.settings.pki_dir
        TestCA.load_or_create(pki)
        ca = self._confdir / "mitmproxy-ca.pem"
        ca.write_bytes((pki / CA_KEY_FILE).read_bytes() + (pki / CA_CERT_FILE).read_bytes())
        ca.chmod(0o600)

    def _wait_ready(self) -> bool:
        assert self._process is not None
        waited = 0.0
        while not self.control.ready.wait(0.05):
            waited += 0.05
            if self._process.poll() is not None or waited > START_TIMEOUT_S:
                return False
        return True

    def log(self) -> str:
        """What mitmdump printed (warnings and errors)."""
        path = self._confdir / "mitmdump.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._controller.stop()
        shutil.rmtree(self._confdir, ignore_errors=True)

    def __enter__(self) -> ProxyHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def describe(proxy: ProxyHandle) -> str:
    """How to reach a running proxy, for the person who started it."""
    s = proxy.settings
    lines = [f"esante proxy ({s.mode} mode, mitmproxy {proxy.control.mitmproxy_version})"]
    if s.mode == EXPLICIT:
        lines.append(f"  HTTP proxy for the candidate   {proxy.proxy_url}  (e.g. HTTPS_PROXY={proxy.proxy_url})")
    urls = proxy.endpoints({u.service: u.url for u in s.upstreams})
    lines += [f"  {u.service:<8} {urls[u.service]}  ->  {u.url}" for u in s.upstreams]
    lines += [f"  CA of the certificates the candidate sees  {s.pki_dir / CA_CERT_FILE}",
              f"  admin API  {proxy.admin_url}/_admin  (token: {s.admin_token})",
              f"  evidence   {proxy.store.path}"]
    if s.record_dir is not None:
        lines.append(f"  recording  {s.record_dir}{' (secrets masked)' if s.mask_secrets else ''}")
    return "\n".join([*lines, "Ctrl-C stops the proxy."])


__all__ = ["MITMDUMP_ENV", "ProxyHandle", "ProxyUnavailable", "describe", "find_mitmdump"]
