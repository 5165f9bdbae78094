"""The mitmproxy side of ``esante proxy``: small addons, one per concern, loaded into ``mitmdump -s``.

They run in mitmproxy's own Python, which may be another environment than esante's (see
:mod:`esante.harness.proxy`), so this module imports the standard library and mitmproxy only. What the proxy sees
is handed to the controller (:mod:`.controller`, in the esante process) over loopback HTTP; the controller files
it under the current test case and journals it into the evidence store.

* :class:`Capture` hands every HTTP exchange over: the request before it goes upstream, the answer before the
  candidate gets it, the failure when there is none; and every TLS handshake with the candidate that failed.
  Traffic the controller cannot record is not forwarded (the flow is killed): nothing passes unrecorded.
* :class:`UpstreamCertificate` presents upstream (mutual TLS) the very certificate the candidate presented to the
  proxy, when its key is in the folder of candidate certificates, else a configured one. Such a leg speaks TLS 1.2:
  there a refused certificate fails the handshake, and is recorded as a TLS failure; TLS 1.3 refuses it after the
  handshake, and the server's alert is lost when it closes the connection on the request already sent.
* :class:`MirrorFailures` closes the candidate's connection when the upstream gave no answer (refused, reset,
  TLS failure), as the service itself would have left it, instead of answering a proxy-made 502 page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections import OrderedDict
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mitmproxy import connection, ctx, http, tls, version
from OpenSSL import SSL, crypto

logger = logging.getLogger("esante.proxy")

TOKEN_ENV = "ESANTE_PROXY_TOKEN"  # the controller's token: in the environment, never on the command line
EXCHANGE = "esante.exchange"  # flow metadata: the exchange id the controller gave the request
#: By the candidate's address (bounded): the TLS failure the flow failing next on that connection met (mitmproxy
#: reports it apart from the flow), and the client certificate presented upstream for that connection.
_TLS_FAILURES: OrderedDict[str, str] = OrderedDict()
_PRESENTED: OrderedDict[str, str] = OrderedDict()
_REMEMBERED = 1024


def _remember(memory: OrderedDict[str, str], key: str | None, value: str) -> None:
    if key is not None:
        memory[key] = value
        while len(memory) > _REMEMBERED:
            memory.popitem(last=False)


class _TlsAlerts(logging.Handler):
    """An alert received after the handshake (TLS 1.3 refuses a client certificate so, once the client thinks the
    handshake done) reaches no hook: mitmproxy only logs it, with the candidate's address. Keep it from there."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("TLS Error"):
            _remember(_TLS_FAILURES, _address(getattr(record, "client", None)), message)


class Controller:
    """The channel to the controller (one short HTTP call per event, off the event loop)."""

    def __init__(self) -> None:
        self.url = ""
        self.token = os.environ.get(TOKEN_ENV, "")

    def post(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        parts = urlsplit(self.url)
        conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        try:
            conn.request("POST", f"/_admin/capture/{event}", body=json.dumps(payload),
                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        if answer.status >= 300:
            raise RuntimeError(f"controller answered {answer.status} to {event}: {data[:300]!r}")
        return json.loads(data or b"{}")

    async def send(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.post, event, payload)


CONTROLLER = Controller()


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


def _address(address: Any) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None


def _pem(conn: connection.Connection) -> str | None:
    return conn.certificate_list[0].to_pem().decode() if conn.certificate_list else None


def _fields(headers: http.Headers) -> list[list[str]]:
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers.fields]


def _bodies(message: http.Message) -> dict[str, Any]:
    """The body as on the wire, and decoded too when a Content-Encoding applies."""
    raw = message.raw_content or b""
    decoded = message.get_content(strict=False) or b""
    return {"body": _b64(raw), "decoded": _b64(decoded) if decoded != raw else None}


class Capture:
    """Hands every exchange and failed handshake over to the controller, before the traffic moves on."""

    def load(self, loader: Any) -> None:
        loader.add_option("esante_controller", str, "", "the esante proxy controller's URL")
        logging.getLogger("mitmproxy.proxy.server").addHandler(_TlsAlerts(logging.WARNING))

    def configure(self, updated: set[str]) -> None:
        CONTROLLER.url = ctx.options.esante_controller

    async def running(self) -> None:
        await CONTROLLER.send("ready", {"pid": os.getpid(), "mitmproxy": version.VERSION})

    async def request(self, flow: http.HTTPFlow) -> None:
        await self._journal_request(flow)

    async def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        assert response is not None
        await self._finish(flow, {"outcome": "answered", "status": response.status_code,
                                  "headers": _fields(response.headers), **_bodies(response)})

    async def error(self, flow: http.HTTPFlow) -> None:
        if EXCHANGE not in flow.metadata and not await self._journal_request(flow):
            return
        message = flow.error.msg if flow.error else "unknown error"
        tls_failure = _TLS_FAILURES.pop(_address(flow.client_conn.peername) or "", None)
        outcome = "tls_failed" if tls_failure else ("dropped" if flow.response is None else "error")
        await self._finish(flow, {"outcome": outcome, "status": None, "headers": [], "body": "",
                                  "error": tls_failure or message})

    async def tls_failed_client(self, data: tls.TlsData) -> None:
        client = data.context.client
        payload = {"side": "candidate", "error": data.conn.error or "TLS handshake failed", "sni": client.sni,
                   "client": _address(client.peername), "listener": client.proxy_mode.full_spec,
                   "upstream": _address(data.context.server.address)}
        try:
            await CONTROLLER.send("failure", payload)
        except (OSError, RuntimeError) as exc:
            logger.error(f"esante: a failed TLS handshake could not be recorded: {exc}")

    def tls_failed_server(self, data: tls.TlsData) -> None:
        _remember(_TLS_FAILURES, _address(data.context.client.peername),
                  data.conn.error or "TLS handshake with the upstream failed")

    async def _journal_request(self, flow: http.HTTPFlow) -> bool:
        request = flow.request
        path, _, query = request.path.partition("?")
        client = flow.client_conn
        payload = {"listener": client.proxy_mode.full_spec, "host": request.host,
                   "port": request.port, "upstream_scheme": request.scheme, "method": request.method,
                   "path": unquote(path), "query": query, "scheme": "https" if client.tls_established else "http",
                   "headers": _fields(request.headers), "client": _address(client.peername),
                   "client_certificate": _pem(client), **_bodies(request)}
        try:
            flow.metadata[EXCHANGE] = (await CONTROLLER.send("request", payload))["exchange_id"]
            return True
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            logger.error(f"esante: the request could not be recorded, so it is not forwarded: {exc}")
            if flow.killable:
                flow.kill()
            return False

    async def _finish(self, flow: http.HTTPFlow, answer: dict[str, Any]) -> None:
        exchange = flow.metadata.pop(EXCHANGE, None)
        if exchange is None:
            return
        server = flow.server_conn
        upstream = {"address": _address(server.address), "peer": _address(server.peername), "sni": server.sni,
                    "tls_version": server.tls_version, "certificate": _pem(server),
                    "client_certificate": _PRESENTED.get(_address(flow.client_conn.peername) or "")}
        ended = (flow.response.timestamp_end if flow.response else None) or time.time()
        payload = {"exchange_id": exchange, "upstream": upstream, **answer,
                   "duration_ms": round((ended - flow.request.timestamp_start) * 1000, 3)}
        try:
            await CONTROLLER.send("response", payload)
        except (OSError, RuntimeError) as exc:
            logger.error(f"esante: the answer could not be recorded, so it is not sent on: {exc}")
            if flow.killable:
                flow.kill()


class _Pair:
    def __init__(self, cert_pem: bytes, key_pem: bytes, source: str) -> None:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        self.fingerprint = certificate.fingerprint(hashes.SHA256())  # as mitmproxy's Cert.fingerprint()
        self.cert = crypto.X509.from_cryptography(certificate)
        self.key = crypto.PKey.from_cryptography_key(serialization.load_pem_private_key(key_pem, password=None))
        self.subject = certificate.subject.rfc4514_string()
        self.source = source


def _read_pair(path: Path) -> _Pair | None:
    """A certificate and its key: in one PEM file, or as the test PKI writes them (``x.crt.pem``, ``x.key.pem``)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return _Pair(data, data, str(path))
    key = path.with_name(path.name.replace(".crt.pem", ".key.pem"))
    return _Pair(data, key.read_bytes(), str(path)) if key != path and key.is_file() else None


class UpstreamCertificate:
    """Chooses the client certificate presented upstream: the candidate's own, else the configured one."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], _Pair | None] = {}

    def load(self, loader: Any) -> None:
        loader.add_option("esante_client_certs", str, "", "a folder of client certificates with their keys: the "
                                                          "one the candidate presents is presented upstream")
        loader.add_option("esante_client_cert", str, "", "a client certificate and its key, presented upstream "
                                                         "when the candidate's own is not in that folder")

    def tls_start_server(self, data: tls.TlsData) -> None:
        pair = self._choose(data.context.client)
        if pair is None:
            return
        if data.ssl_conn is None:  # mitmproxy's own upstream TLS settings first (trust, SNI, ALPN), then our cert
            ctx.master.addons.get("tlsconfig").tls_start_server(data)
        data.ssl_conn.use_certificate(pair.cert)
        data.ssl_conn.use_privatekey(pair.key)
        SSL._lib.SSL_set_options(data.ssl_conn._ssl, SSL._lib.SSL_OP_NO_TLSv1_3)  # as mitmproxy reaches OpenSSL
        _remember(_PRESENTED, _address(data.context.client.peername), pair.subject)

    def _choose(self, client: connection.Client) -> _Pair | None:
        if client.certificate_list and ctx.options.esante_client_certs:
            wanted = client.certificate_list[0].fingerprint()
            folder = Path(ctx.options.esante_client_certs)
            for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
                pair = self._pair(path)
                if pair is not None and pair.fingerprint == wanted:
                    return pair
        configured = ctx.options.esante_client_cert
        return self._pair(Path(configured)) if configured else None

    def _pair(self, path: Path) -> _Pair | None:
        """Read once per version of the file (the candidate may issue itself a new certificate)."""
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            return None
        if key not in self._cache:
            try:
                self._cache[key] = _read_pair(path)
            except (OSError, ValueError, TypeError) as exc:
                logger.warning(f"esante: {path} is not a certificate with its key: {exc}")
                self._cache[key] = None
        return self._cache[key]


class MirrorFailures:
    """No answer upstream: no answer to the candidate either (its connection is closed, as the service's was)."""

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.response is None and flow.killable:
            flow.kill()


addons = [Capture(), UpstreamCertificate(), MirrorFailures()]
