"""The MSSanté simulator: the operator's SMTP submission and IMAP servers (own loopback ports, started with the
simulator through ``Simulator.start_listeners``), the Annuaire Santé FHIR directory and the Thunderbird
autoconfig at ``/mail/config-v1.1.xml`` (how a client finds the mail ports from the simulator's base URL)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from esante.simulators.core.notes import Notes
from esante.simulators.core.pki import TestCA, server_ssl_context
from esante.simulators.core.runtime import ListenerContext, ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.mail.servers import MailServers
from esante.simulators.kits.mail.worker import WorkerPool
from esante.simulators.mssante.directory import FhirDirectory
from esante.simulators.mssante.imap import imap_server
from esante.simulators.mssante.inspection import worker_init
from esante.simulators.mssante.notes import MssNotes
from esante.simulators.mssante.post import PostOffice
from esante.simulators.mssante.protocol import AUTOCONFIG_PATH, FHIR_BASE, FHIR_JSON
from esante.simulators.mssante.sessions import MailContext
from esante.simulators.mssante.smtp import smtp_server

INSPECTION_WORKERS = 2
INSPECTION_DEADLINE = 20.0  # seconds one message's inspection may take (a 15 MB structured message: about 1)


def mail_tls(context: ListenerContext, hostnames: tuple[str, ...]) -> Any:
    """STARTTLS with a server certificate from the run's test PKI (the HTTPS one's CA), client certificates
    asked for and verified when offered (application mailboxes, SASL EXTERNAL)."""
    pki_dir = context.tls.pki_dir if context.tls else Path(tempfile.mkdtemp(prefix="esante-mss-pki-"))
    ca = TestCA.load_or_create(pki_dir)
    return server_ssl_context(ca.issue_server(list(hostnames)), ca.ca_pem)


class MssanteSimulator(Simulator):
    """MSSanté: secure messaging between professionals (and patients), with its directory.

    Options: ``smtp_port`` / ``imap_port`` — fixed ports (containers; default ``ESANTE_MSS_SMTP_PORT`` /
    ``ESANTE_MSS_IMAP_PORT`` or free loopback ports); ``mail_host`` — the host name autoconfig gives
    (default: the host of each request).
    """

    name: ClassVar[str] = "mssante"
    title: ClassVar[str] = "MSSanté"
    notes_model: ClassVar[type[Notes]] = MssNotes

    def __init__(self, dataset: Dataset, *, smtp_port: int | None = None, imap_port: int | None = None,
                 mail_host: str | None = None) -> None:
        super().__init__(dataset)
        self.smtp_port = smtp_port or int(os.environ.get("ESANTE_MSS_SMTP_PORT", "0"))
        self.imap_port = imap_port or int(os.environ.get("ESANTE_MSS_IMAP_PORT", "0"))
        self.mail_host = mail_host or os.environ.get("ESANTE_MSS_MAIL_HOST")
        self.post = PostOffice(dataset)
        self.directory = FhirDirectory(dataset)
        self.mail: MailServers | None = None

    def load_dataset(self, dataset: Dataset) -> None:
        self.post.load(dataset)
        self.directory = FhirDirectory(dataset)
        if self.mail is not None and self.mail.pool is not None:  # the inspection workers judge with the data set
            self.mail.run(self.mail.pool.restart((dataset,)), timeout=60)
        super().load_dataset(dataset)

    def reset(self) -> None:
        """Every mailbox as the campaign's cases expect it: only what correspondents sent (``inbox.yaml``)."""
        self.post.reset()

    # -- listeners ------------------------------------------------------------------------------------------
    def start_listeners(self, context: ListenerContext) -> None:
        hostnames = context.tls.hostnames if context.tls else ("localhost", "127.0.0.1")
        pool = WorkerPool(INSPECTION_WORKERS, INSPECTION_DEADLINE, initializer=worker_init,
                          initargs=(self.post.dataset,))
        mail = MailContext(self.post, context.runtime, mail_tls(context, hostnames), lambda: self.peer("psc"), pool)
        self.mail = MailServers(context.host, (self.smtp_port, self.imap_port), smtp=smtp_server(mail),
                                imap=imap_server(mail), store=self.post.store, pool=pool)
        self.mail.start()

    def listener_ports(self) -> dict[str, int]:
        return {"smtp": self.mail.smtp_port, "imap": self.mail.imap_port} if self.mail is not None else {}

    def stop_listeners(self) -> None:
        if self.mail is not None:
            self.mail.stop()
            self.mail = None

    # -- HTTP -----------------------------------------------------------------------------------------------
    def error_response(self, error: ServiceError) -> Response:
        status = {"too_large": 413, "injected": 503}.get(error.kind, 500)
        spec = self.injected_fault(error)
        if spec is not None:
            status = spec.status
        return _fhir(FhirError(status, "exception" if status >= 500 else "too-costly", error.message).outcome(),
                     status)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(AUTOCONFIG_PATH, self.autoconfig, methods=["GET"], include_in_schema=False)
        router.add_api_route(FHIR_BASE + "/{kind}", self.search, methods=["GET"], include_in_schema=False)
        router.add_api_route(FHIR_BASE + "/{kind}/_search", self.search, methods=["POST"], include_in_schema=False)
        router.add_api_route(FHIR_BASE + "/{kind}/{resource_id}", self.read, methods=["GET"],
                             include_in_schema=False)
        return router

    async def autoconfig(self, request: Request) -> Response:
        MssNotes.of(request).operation = "autoconfig"
        host = escape(self.mail_host or request.url.hostname or "localhost")
        if self.mail is None:
            return Response("mail servers are not running", status_code=503)
        servers = "".join(
            f'<{tag} type="{kind}"><hostname>{host}</hostname><port>{port}</port><socketType>STARTTLS</socketType>'
            f'<authentication>OAuth2</authentication><authentication>TLS-client-cert</authentication>'
            f'<username>%EMAILADDRESS%</username></{tag}>'
            for tag, kind, port in (("incomingServer", "imap", self.mail.imap_port),
                                    ("outgoingServer", "smtp", self.mail.smtp_port)))
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1">'
                f'<emailProvider id="mssante.test"><domain>mssante.test</domain>'
                f'<displayName>MSSanté (simulateur esante-conformance)</displayName>'
                f'<displayShortName>MSSanté</displayShortName>{servers}</emailProvider></clientConfig>')
        return Response(body, media_type="application/xml")

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + FHIR_BASE

    async def search(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        notes = MssNotes.of(request)
        notes.operation, notes.resource_type = "directory_search", kind
        try:
            _api_key(request)
            params = list(request.query_params.multi_items())
            if request.method == "POST":
                params += list((await request.form()).multi_items())  # type: ignore[arg-type]
            notes.search = [f"{k}={v}" for k, v in params]
            bundle = self.directory.search(kind, [(k, str(v)) for k, v in params], self._base(request))
        except FhirError as error:
            notes.error = error.diagnostics
            return _fhir(error.outcome(), error.status)
        notes.total = bundle["total"]
        notes.mailboxes = sorted({t["value"] for e in bundle["entry"] for t in e["resource"].get("telecom", [])})
        return _fhir(bundle)

    async def read(self, request: Request) -> Response:
        notes = MssNotes.of(request)
        notes.operation = "directory_read"
        try:
            _api_key(request)
            return _fhir(self.directory.read(request.path_params["kind"], request.path_params["resource_id"]))
        except FhirError as error:
            notes.error = error.diagnostics
            return _fhir(error.outcome(), error.status)


def _api_key(request: Request) -> None:
    if not request.headers.get("esante-api-key"):
        raise FhirError(401, "security", "the ESANTE-API-KEY header is required")


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)
