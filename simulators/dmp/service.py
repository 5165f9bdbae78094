"""The DMP simulator: the DMPi SOAP services, each call checked the way the DMP does, in this order:

1. transport: SOAP 1.2 (``application/soap+xml``) or MTOM (``multipart/related``; there the SOAP 1.1 envelope
   of the official TD2.1 example is tolerated), WS-Addressing ``Action``, ``MessageID``, ``To``, ``ReplyTo``;
2. the transaction: the ``Action`` on the service path serving it, a body of the right kind;
3. the VIHF (:mod:`simulators.dmp.vihf`): parsed, signature verified against the lab's test PKI, signer fit
   for the authentication mode, fresh, and coherent with the data set; a refused VIHF is a SOAP fault whose
   subcode is the VIHF rule broken;
4. the rights matrix PDT-INF-526 (:mod:`simulators.dmp.rights`), then the patient's own choices: a DMP that
   exists and is open, the professional authorised (or treating doctor, or in régulation / bris de glace
   mode without the patient's opposition), not blocked;
5. the transaction itself, on state that lasts across calls (:mod:`records`, :mod:`registry`).

Business refusals are answered in the transaction's own form; each call's TD, VIHF summary, decision and
findings go into the journal's notes for the campaign checks.

Options: ``clock`` (ISO instant) pins the VIHF freshness clock (to replay the 2019 official examples);
``accept_example_vectors`` accepts the official examples' VIHFs as known test vectors (see ``vihf.py``).
Feeding (TD2.1) needs no authorisation from the patient: any professional may add a document, a blocked one
may not (our reading of the rights matrix, whose TD2.1 row has no authorisation note).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from esante.simulators.core.journal import behaviours_of, notes_of
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.dmp import habilitations, hl7v3, xds
from esante.simulators.dmp.call import Call, DmpError, Reply
from esante.simulators.dmp.ebrim import Coded, DocumentEntry
from esante.simulators.dmp.hl7v2 import format_cx
from esante.simulators.dmp.protocol import (
    OID_INS_NIR_TEST,
    REASONS,
    SERVICE_PATHS,
    TRANSACTIONS,
    WSA_ANONYMOUS,
    Transaction,
)
from esante.simulators.dmp.records import Records, now
from esante.simulators.dmp.registry import DocumentRegistry
from esante.simulators.dmp.rights import decide
from esante.simulators.dmp.vihf import TrustStore, Vihf, VihfError, validate_vihf
from esante.simulators.kits.mtom import MtomRejected, Related, build_related, is_multipart, parse_related
from esante.simulators.kits.soap import (
    SOAP12_CONTENT_TYPE,
    WSA_NS,
    WSSE_NS,
    SoapMessage,
    SoapRejected,
    envelope,
    fault,
    parse_envelope,
)

BY_ACTION: dict[str, list[Transaction]] = {}
for _t in TRANSACTIONS.values():
    BY_ACTION.setdefault(_t.action, []).append(_t)
HL7_TDS = {"TD0.2", "TD0.5", "TD1.3a", "TD1.3b", "TD1.4"}
XDS_TDS = {"TD2.1", "TD3.1", "TD3.2", "TD3.3", "TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d"}
NO_PATIENT_TDS = {"TD0.4", "TD0.5"}  # transactions about no one patient: the VIHF has no resource-id
#: Transactions that need the patient's authorisation in the normal access mode.
NEED_AUTHORISATION = {"TD1.3a", "TD1.3b", "TD1.4", "TD1.5a", "TD1.5b", "TD1.5d", "TD1.6", "TD3.1", "TD3.2",
                      "TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d"}
BODY_ELEMENTS = {"TD2.1": "ProvideAndRegisterDocumentSetRequest", "TD3.1": "AdhocQueryRequest",
                 "TD3.2": "RetrieveDocumentSetRequest", "TD3.3": "SubmitObjectsRequest",
                 "TD0.5": "PRPA_IN201305UV02"}
WSA_REQUIRED = ("Action", "MessageID", "To", "ReplyTo")


class DmpFault(Exception):
    """A message the DMP cannot process: answered with a SOAP 1.2 fault."""

    def __init__(self, key: str, detail: str, *, subcode: str | None = None) -> None:
        super().__init__(detail)
        self.key, self.detail, self.subcode = key, detail, subcode


def fault_response(key: str, detail: str = "", subcode: str | None = None) -> Response:
    """A SOAP 1.2 fault; HTTP 400 for a Sender fault, 500 for a Receiver one (SOAP 1.2 HTTP binding, 7.5.1)."""
    entry = DmpSimulator.fault_catalogue.service_faults[key]
    spec = entry.answer
    reason = f"{spec['reason']} : {detail}" if detail else spec["reason"]
    body = fault(spec["code"], reason, subcode=subcode or spec["subcode"])
    return Response(body, status_code=entry.status, media_type=SOAP12_CONTENT_TYPE)


class PeerDocument(BaseModel):
    """A document another national service files in the patient's DMP (Mon espace santé)."""

    model_config = ConfigDict(extra="forbid")
    ins: str = Field(pattern=r"^\d{13}\d{2}$|^\d{5}(?:2A|2B)\d{6}\d{2}$")
    ins_oid: str = OID_INS_NIR_TEST
    title: str = Field(min_length=1, max_length=256)
    mime_type: str = Field(min_length=3, max_length=100)
    content_b64: str = Field(max_length=8 * 1024 * 1024)
    type_code: dict[str, str]
    creation_time: str = Field(pattern=r"^\d{8}(\d{6})?$")
    source: str = Field(min_length=1, max_length=64)


class DmpSimulator(Simulator):
    """The DMP (Dossier Médical Partagé), DMPi interface."""

    name: ClassVar[str] = "dmp"
    title: ClassVar[str] = "DMP (DMPi)"

    def __init__(self, dataset: Dataset, *, clock: str | None = None, accept_example_vectors: bool = False) -> None:
        super().__init__(dataset)
        self.clock = datetime.fromisoformat(clock.replace("Z", "+00:00")) if clock else None
        self.accept_example_vectors = bool(accept_example_vectors)
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

    def trust(self) -> TrustStore:
        """The VIHF trust store, built once per CA (the lab's CA is given after construction)."""
        key = (self.ca_pem or b"", self.accept_example_vectors)
        if self._trust is None or self._trust[0] != key:
            self._trust = (key, TrustStore.from_pem(key[0], accept_example_vectors=key[1]))
        return self._trust[1]

    # -- one call ----------------------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        notes = notes_of(request)
        try:
            message, related = self._read(await request.body(), request.headers.get("content-type", ""))
            transaction = self._transaction(message, request.url.path)
            notes.update(td=transaction.td, operation=transaction.td, action=message.action,
                         message_id=message.message_id, mtom=related is not None)
            call = Call(transaction, message, self._body(message, transaction), None, notes, related)
            call.vihf = self._vihf(message, call)
            reply = self._perform(call, behaviours_of(request))
            return self._respond(call, reply)
        except DmpFault as exc:
            notes.update(fault=exc.key, fault_detail=exc.detail, **({"vihf_error": exc.subcode}
                                                                    if exc.key == "vihf" else {}))
            return fault_response(exc.key, exc.detail, exc.subcode)

    def _read(self, body: bytes, content_type: str) -> tuple[SoapMessage, Related | None]:
        related = None
        if is_multipart(content_type):
            try:
                related = parse_related(body, content_type)
            except MtomRejected as exc:
                raise DmpFault("malformed", exc.reason) from None
            body = related.root
        elif content_type.split(";")[0].strip().lower() != "application/soap+xml":
            raise DmpFault("malformed", f"Content-Type {content_type or 'absent'}: SOAP 1.2 requires "
                                        "application/soap+xml (or multipart/related for MTOM)")
        try:
            message = parse_envelope(body, allow_soap11=related is not None)
        except SoapRejected as exc:
            raise DmpFault("malformed", exc.reason) from None
        missing = [name for name in WSA_REQUIRED if message.header(WSA_NS, name) is None]
        if missing:
            raise DmpFault("addressing_header_missing", f"wsa:{', wsa:'.join(missing)}")
        return message, related

    def _transaction(self, message: SoapMessage, path: str) -> Transaction:
        candidates = BY_ACTION.get(message.action or "", [])
        served = [t for t in candidates if path in t.paths]
        if not candidates:
            raise DmpFault("action_not_supported", f"action {message.action!r} is no DMPi transaction")
        if not served:
            raise DmpFault("action_not_supported", f"{message.action} is not served at {path} (but at "
                                                   f"{candidates[0].paths[0]})")
        if len(served) == 1:
            return served[0]
        reason = hl7v3.reason_code(message.body) if message.body is not None else None
        td = REASONS.get(reason or "")
        chosen = next((t for t in served if t.td == td), None)
        if chosen is None:
            raise DmpFault("body_invalid", f"reasonCode {reason!r} names no transaction of {message.action} "
                                           f"({', '.join(t.td for t in served)})")
        return chosen

    def _body(self, message: SoapMessage, transaction: Transaction) -> etree._Element:
        body = message.body
        if body is None:
            raise DmpFault("body_invalid", "empty SOAP Body")
        expected = BODY_ELEMENTS.get(transaction.td) or (transaction.action.rsplit(":", 1)[-1])
        if etree.QName(body).localname != expected:
            raise DmpFault("body_invalid", f"{transaction.td} expects {expected}, the body is "
                                           f"{etree.QName(body).localname}")
        return body

    def _vihf(self, message: SoapMessage, call: Call) -> Vihf:
        security = message.header(WSSE_NS, "Security")
        if security is None:
            raise DmpFault("vihf", "no wsse:Security header carrying the VIHF", subcode="VIHF_NOT_FOUND")
        try:
            vihf = validate_vihf(security, trust=self.trust(), dataset=self.dataset, now=self.clock or now(),
                                 require_resource=call.td not in NO_PATIENT_TDS)
        except VihfError as exc:
            raise DmpFault("vihf", f"{exc.message} ({exc.location})", subcode=exc.code) from None
        call.notes["vihf"] = {"national_id": vihf.national_id, "mode": vihf.auth_mode, "purpose": vihf.purpose.code,
                              "profession": vihf.profession.code, "structure": vihf.structure_id, "ins": vihf.ins,
                              "lps": vihf.lps_name, "signed": vihf.signed,
                              "signer": vihf.signer.subject if vihf.signer else None,
                              "example_vector": vihf.signer.example_vector if vihf.signer else None}
        return vihf

    def _perform(self, call: Call, behaviours: set[str]) -> Reply:
        try:
            if "registry_unavailable" in behaviours:
                code = "XDSRegistryNotAvailable" if call.td in XDS_TDS else "DMPServiceUnavailable"
                raise DmpError(code, "the DMP's document registry is unavailable, try again later")
            record = self.records.get(call.vihf.ins) if call.vihf.ins else None
            if "dmp_closed" in behaviours and record is not None:
                record.status = "closed"
            row = None
            if call.td == "TD3.3":
                td, row = xds.update_td(xds.update_submission(call), self.registry)
                call.transaction = replace(call.transaction, td=td)
                call.notes["td"] = call.td
            elif call.td == "TD3.1":
                row = xds.search_rights_row(call)
            self._check_rights(call, record, row)
            return self._dispatch(call, record)
        except DmpError as exc:
            call.notes["error"] = {"code": exc.code, "message": exc.message, "location": exc.location}
            return self._error_reply(call, exc)

    def _check_rights(self, call: Call, record: Any, row: str | None = None) -> None:
        vihf = call.vihf
        decision = decide(call.td, vihf, action=row, is_treating_doctor=record is not None and
                          record.treating_doctor == vihf.national_id)
        call.notes["rights"] = decision.reason
        if not decision.allowed:
            raise DmpError("DMPAccessDeniedByRightsService", decision.reason)
        if call.td in NO_PATIENT_TDS or call.td == "TD0.2":
            return
        if record is None:
            raise DmpError("XDSUnknownPatientId" if call.td in XDS_TDS else "DMPNotFound",
                           f"no DMP exists for INS {vihf.ins}")
        if not record.is_open:
            raise DmpError("DMPClosed", f"the DMP of INS {vihf.ins} is closed")
        self._check_patient_choice(call, record)

    def _check_patient_choice(self, call: Call, record: Any) -> None:
        """The patient's authorisation, blocking and oppositions (the rights matrix says what the role may do;
        the patient says who may)."""
        authorisation = record.authorisation_of(call.vihf.national_id)
        purpose = call.vihf.purpose.code
        call.notes["authorisation"] = authorisation
        if authorisation == "INTERDITE" and call.td != "TD0.3":
            raise DmpError("DMPAccessDeniedByPatient", "the patient has blocked this professional")
        if call.td not in NEED_AUTHORISATION or authorisation == "VALIDE":
            return
        if purpose == "bris_de_glace" and not record.opposition_bris_de_glace:
            return
        if purpose == "centre_15" and not record.opposition_urgence:
            return
        if purpose in ("bris_de_glace", "centre_15"):
            raise DmpError("DMPAccessDeniedByPatient", f"the patient opposes access in {purpose} mode")
        raise DmpError("DMPAccessNotAuthorized", "the professional is not authorised on this DMP (TD0.3 first)")

    def _dispatch(self, call: Call, record: Any) -> Reply:
        td = call.td
        if td in hl7v3.BY_TD:
            if hl7v3.requested_ins(call.body) != call.vihf.ins:
                raise DmpError("DMPPatientIdDoesNotMatch", "the patient of the request is not the VIHF's resource-id")
            return hl7v3.BY_TD[td](call, self.records, record)
        if td == "TD0.5":
            return hl7v3.search_without_ins(call, self.records)
        if td == "TD0.4":
            return habilitations.patient_list(call, self.records, record)
        if td in habilitations.BY_TD:
            return habilitations.BY_TD[td](call, self.records, record)
        handler = {"TD2.1": xds.feed, "TD3.1": xds.search, "TD3.2": xds.retrieve}.get(td, xds.update)
        return handler(call, record, self.registry, self.dataset)

    def _error_reply(self, call: Call, error: DmpError) -> Reply:
        if call.td in HL7_TDS:
            return hl7v3.error_reply(call, error)
        if call.td in XDS_TDS:
            return xds.error_reply(call, error)
        return habilitations.error_reply(call, error)

    def _respond(self, call: Call, reply: Reply) -> Response:
        headers = []
        for name, value in (("Action", call.transaction.response_action), ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
                            ("To", WSA_ANONYMOUS), ("RelatesTo", call.message.message_id or "")):
            element = etree.Element(f"{{{WSA_NS}}}{name}", nsmap={None: WSA_NS})
            element.text = value
            headers.append(element)
        body = envelope(reply.body, headers)
        if call.related is None and not reply.attachments:
            return Response(body, media_type=SOAP12_CONTENT_TYPE)
        content, content_type = build_related(body, reply.attachments, action=call.transaction.response_action)
        return Response(content, media_type=content_type)

    # -- the private link of Mon espace santé ------------------------------------------------------------
    def file_peer_document(self, document: PeerDocument) -> JSONResponse:
        """A document another national service files in the patient's DMP, as if fed by TD2.1."""
        record = self.records.get(document.ins)
        if record is None or not record.is_open:
            return JSONResponse({"error": f"no open DMP for INS {document.ins}"}, status_code=404)
        try:
            content = base64.b64decode(document.content_b64, validate=True)
        except ValueError:
            return JSONResponse({"error": "content_b64 is not base64"}, status_code=422)
        entry_uuid, unique_id = f"urn:uuid:{uuid.uuid4()}", f"2.25.{uuid.uuid4().int}"
        code = document.type_code
        entry = DocumentEntry(entry_uuid, unique_id=unique_id, patient_id=format_cx(document.ins, document.ins_oid),
                              lid=entry_uuid, mime_type=document.mime_type, title=document.title,
                              type_code=Coded(code.get("code", ""), code.get("system", ""), code.get("display", "")),
                              creation_time=document.creation_time, comments=f"filed by {document.source}")
        self.registry.add(entry, content, f"peer:{document.source}")
        record.last_add = now()
        return JSONResponse({"unique_id": unique_id, "entry_uuid": entry_uuid}, status_code=201)
