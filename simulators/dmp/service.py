"""The DMP simulator: the DMPi SOAP services, each call checked the way the DMP does, in this order:

1. the message and its transaction (:mod:`.transport.envelope`): SOAP 1.2 or MTOM, WS-Addressing, the
   ``Action`` on the service serving it, a body of the right kind;
2. the VIHF (:mod:`.transport.vihf`): parsed, signature verified against the lab's test PKI, signer fit for
   the authentication mode, fresh at the simulator's clock, and coherent with the data set;
3. who may (:mod:`.patient.access`): the rights matrix PDT-INF-526, a DMP that exists and is open, the
   patient's authorisation, blocking and oppositions;
4. the transaction itself (:mod:`.transactions`), on state that lasts across calls (:mod:`.patient`,
   :mod:`.documents`).

A message failing 1 or 2 is answered with a SOAP 1.2 fault (``faults.yaml``; a refused VIHF's subcode is the
VIHF rule broken); a refusal at 3 or 4 in the transaction's own form. Each call's TD, VIHF summary, decision
and findings go into its notes (:class:`~.notes.DmpNotes`) for the DMP test kit.

A fault carries the WS-Addressing headers of a reply (``Action`` WS-Addressing's fault action, ``RelatesTo``
the request's MessageID once it could be read); a fault the SOAP or WS-Addressing specification
defines (VersionMismatch, MustUnderstand, the addressing faults) is written as it says.

Options: ``clock`` (ISO instant) pins the simulator's clock for the VIHF's freshness and signer validity (to
replay the 2019 official examples); ``accept_example_vectors`` accepts the official examples' VIHFs as known
test vectors (see :mod:`.transport.vihf`); ``legacy_patient_access`` serves TD1.5a/b/d (the patient's web
account), which the 2024 annex v2.01.04 removed from the interface.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from esante.simulators.core.journal import behaviours_of
from esante.simulators.core.notes import Notes
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.dmp.documents.peer import PeerDocument, file_peer_document
from esante.simulators.dmp.documents.registry import DocumentRegistry
from esante.simulators.dmp.notes import DmpNotes
from esante.simulators.dmp.patient.records import Records, now
from esante.simulators.dmp.protocol import SERVICE_PATHS
from esante.simulators.dmp.transactions import perform
from esante.simulators.dmp.transport.call import Call, DmpFault
from esante.simulators.dmp.transport.envelope import body_of, caller_vihf, read_message, respond, transaction_of
from esante.simulators.dmp.transport.vihf import TrustStore
from esante.simulators.kits.soap import SOAP_FAULT_ACTION, WSA_FAULT_ACTION, reply_headers, standard_fault_response
from esante.simulators.kits.soap import fault_response as soap_fault


def fault_response(key: str, detail: str = "", subcode: str | None = None, *,
                   relates_to: str | None = None) -> Response:
    """The DMP's SOAP 1.2 fault ``key`` (``faults.yaml``), its Reason followed by ``detail``."""
    spec = DmpSimulator.fault_catalogue.service_faults[key]
    return soap_fault(spec, reason=f"{spec.answer['reason']} : {detail}" if detail else None, subcode=subcode,
                      headers=reply_headers(SOAP_FAULT_ACTION, relates_to))


def _fault(exc: DmpFault, relates_to: str | None) -> Response:
    if exc.standard is None:
        return fault_response(exc.key, exc.detail, exc.subcode, relates_to=relates_to)
    action = WSA_FAULT_ACTION if exc.standard.subcode else SOAP_FAULT_ACTION
    return standard_fault_response(exc.standard, headers=reply_headers(action, relates_to))


class DmpSimulator(Simulator):
    """The DMP (Dossier Médical Partagé), DMPi interface."""

    name: ClassVar[str] = "dmp"
    title: ClassVar[str] = "DMP (DMPi)"
    notes_model: ClassVar[type[Notes]] = DmpNotes

    def __init__(self, dataset: Dataset, *, clock: str | None = None, accept_example_vectors: bool = False,
                 legacy_patient_access: bool = False) -> None:
        super().__init__(dataset)
        self.clock = datetime.fromisoformat(clock.replace("Z", "+00:00")) if clock else None
        self.accept_example_vectors = bool(accept_example_vectors)
        self.legacy_patient_access = bool(legacy_patient_access)
        self._trust: tuple[tuple[bytes, bool], TrustStore] | None = None
        self.reset()

    def reset(self) -> None:
        self.records = Records(self.dataset)
        self.registry = DocumentRegistry()

    def router(self) -> APIRouter:
        router = APIRouter()
        for path in SERVICE_PATHS:
            router.add_api_route(path, self.handle, methods=["POST"], include_in_schema=False)
        return router

    def peer_router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/documents", self.file_peer_document, methods=["POST"], status_code=201)
        return router

    def error_response(self, error: ServiceError) -> Response:
        key = error.code if error.kind == "injected" and error.code else error.kind
        return fault_response(key if key in self.fault_catalogue.service_faults else "internal", error.message)

    def now(self) -> datetime:
        """The simulator's clock: pinned by the ``clock`` option, else the time of day."""
        return self.clock or now()

    def trust(self) -> TrustStore:
        """The VIHF trust store, built once per CA (the lab's CA is given after construction)."""
        key = (self.ca_pem or b"", self.accept_example_vectors)
        if self._trust is None or self._trust[0] != key:
            self._trust = (key, TrustStore.from_pem(key[0], accept_example_vectors=key[1]))
        return self._trust[1]

    # -- one call ----------------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        notes = DmpNotes.of(request)
        message_id = None
        try:
            message, related = read_message(await request.body(), request.headers.get("content-type", ""))
            message_id = message.message_id
            transaction = transaction_of(message, request.url.path, legacy=self.legacy_patient_access)
            notes.td = notes.operation = transaction.td
            notes.action, notes.message_id, notes.mtom = message.action, message.message_id, related is not None
            call = Call(transaction, message, body_of(message, transaction), notes, related)
            call.vihf = caller_vihf(message, call, trust=self.trust(), dataset=self.dataset, now=self.now())
            return respond(call, perform(call, self.records, self.registry, self.dataset, behaviours_of(request)))
        except DmpFault as exc:
            notes.fault, notes.fault_detail = exc.key, exc.detail
            notes.vihf_error = exc.subcode if exc.key == "vihf" else None
            return _fault(exc, message_id or exc.relates_to)

    # -- the private link of Mon espace santé ------------------------------------------------------------
    def file_peer_document(self, document: PeerDocument) -> JSONResponse:
        return file_peer_document(document, self.records, self.registry)
