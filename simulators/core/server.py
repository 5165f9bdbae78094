"""Serving a simulator: uvicorn, over plain HTTP or HTTPS with optional mutual TLS.

uvicorn does not put the TLS peer certificate into the ASGI scope, and an ASGI app cannot close its
connection without answering. :class:`_EsanteProtocol` adds both, per connection, as scope extensions:
``tls`` (the client certificate, DER and subject) and ``esante.transport`` (for dropped-connection faults).

:class:`ServerHandle` runs a server in a background thread of the current process (the local default;
ready in well under a second); :func:`serve` runs one in the foreground (``esante sim NAME``, containers).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from esante.simulators.core.pki import TestCA, subject_of_der
from esante.simulators.core.runtime import ListenerContext, SimulatorRuntime, TlsSettings


class _EsanteProtocol(HttpToolsProtocol):
    """httptools protocol that exposes the client certificate and the transport to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extensions: dict[str, Any] = {"esante.transport": transport}
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            extensions["tls"] = {"client_cert_der": der,
                                 "client_cert_subject": subject_of_der(der) if der else None,
                                 "tls_version": ssl_object.version()}
        inner = self.app

        async def with_extensions(scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                                  send: Callable[..., Awaitable[Any]]) -> None:
            scope.setdefault("extensions", {}).update(extensions)
            await inner(scope, receive, send)

        self.app = with_extensions


def _uvicorn_config(app: Any, host: str, port: int, tls: TlsSettings | None) -> uvicorn.Config:
    kwargs: dict[str, Any] = {}
    if tls is not None:
        ca = TestCA.load_or_create(tls.pki_dir)
        cert_path, key_path = ca.issue_server(list(tls.hostnames)).write(tls.pki_dir, f"server-{port or 'any'}")
        kwargs = {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path),
                  "ssl_ca_certs": str(tls.pki_dir / "ca.crt.pem"),
                  "ssl_cert_reqs": ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL}
    return uvicorn.Config(app, host=host, port=port, http=_EsanteProtocol, lifespan="off",
                          log_level="warning", access_log=False, timeout_keep_alive=30, **kwargs)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerHandle:
    """A simulator served from a background thread; ``start()`` returns once it accepts connections."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, tls: TlsSettings | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        self._server = uvicorn.Server(_uvicorn_config(app, host, self.port, tls))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.run, name=f"sim-{self.port}", daemon=True)
        self._listeners = _listeners_of(app, host, tls)
        #: The simulator's runtime when the app is a simulator's (``create_app``), else None.
        self.runtime: SimulatorRuntime | None = getattr(app, "runtime", None)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerHandle:
        self._listeners.start()
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator server on port {self.port} did not start")
            time.sleep(0.005)
        return self

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving; after ``grace`` seconds, close connections a peer left open (a TLS close would
        otherwise wait for the peer's close_notify)."""
        self._server.should_exit = True
        self._thread.join(timeout=grace)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=10)
        self._listeners.stop()

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ForegroundServer(uvicorn.Server):
    """uvicorn's server, calling ``stopped`` once it has shut down: after a signal uvicorn raises it again once
    its loop is over (the process then ends as the signal says), so what must happen before the end is done
    here."""

    def __init__(self, config: uvicorn.Config, stopped: Callable[[], None]) -> None:
        super().__init__(config)
        self.stopped = stopped

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        self.stopped()


def serve(app: Any, *, host: str, port: int, tls: TlsSettings | None = None) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM); then stop the simulator's listeners and close
    its evidence store, so the file it leaves is self-contained (no ``-wal`` beside it)."""
    listeners = _listeners_of(app, host, tls)
    runtime = getattr(app, "runtime", None)
    done = threading.Event()

    def stopped() -> None:
        if done.is_set():
            return
        done.set()
        listeners.stop()
        if runtime is not None:
            runtime.store.close()

    listeners.start()
    try:
        _ForegroundServer(_uvicorn_config(app, host, port, tls), stopped).run()
    finally:
        stopped()


class _Listeners:
    """The simulator's own non-HTTP listeners (``Simulator.start_listeners``), around the HTTP server's life."""

    def __init__(self, runtime: Any, host: str, tls: TlsSettings | None) -> None:
        self.runtime, self.host, self.tls = runtime, host, tls

    def start(self) -> None:
        if self.runtime is not None:
            self.runtime.simulator.start_listeners(ListenerContext(self.host, self.runtime, self.tls))

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.simulator.stop_listeners()


def _listeners_of(app: Any, host: str, tls: TlsSettings | None) -> _Listeners:
    """An app made by ``create_app`` carries its runtime (the journal middleware's); other apps have none."""
    return _Listeners(getattr(app, "runtime", None), host, tls)
