"""The INSi simulator: one SOAP 1.2 endpoint, two operations, the service's faults."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import APIRouter, Request
from lxml import etree
from starlette.responses import Response

from esante.simulators.core.notes import Notes
from esante.simulators.core.pki import common_name_of_subject
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.insi.matching import PatientIndex, individual
from esante.simulators.insi.messages import InsiFault, InsiRequest, read_request, result_envelope
from esante.simulators.insi.notes import InsiNotes
from esante.simulators.insi.protocol import AUTHORISED_CERT_CNS, NS_SIRAM, SERVICE_PATH, CodeCR, Operation
from esante.simulators.kits.soap import SOAP12_CONTENT_TYPE, SoapRejected, parse_envelope
from esante.simulators.kits.soap import fault_response as soap_fault


def fault_response(key: str, detail: str = "", message_id: str | None = None) -> Response:
    """The teleservice's SOAP 1.2 fault: Code, ``siram_*`` Subcode, Reason and a ``siram:Erreur`` detail."""
    spec = InsiSimulator.fault_catalogue.service_faults[key]
    erreur = etree.Element(f"{{{NS_SIRAM}}}Erreur", nsmap={"siram": NS_SIRAM})
    erreur.set("code", spec.answer["error"])
    erreur.set("severite", spec.answer["severity"])
    if message_id:
        erreur.set("messageID", message_id)
    erreur.text = spec.answer["detail"].format(detail=detail).strip()
    return soap_fault(spec, detail=erreur)


class InsiSimulator(Simulator):
    """The Assurance Maladie INSi teleservice (search and verification of the INS).

    Options (``settings.options``): ``require_mtls`` — refuse calls without a client certificate (the mTLS
    endpoint); without it a CPS "assertion PS" in ``wsse:Security`` is accepted instead (the CPS endpoint).
    """

    name: ClassVar[str] = "insi"
    title: ClassVar[str] = "INSi teleservice"
    notes_model: ClassVar[type[Notes]] = InsiNotes

    def __init__(self, dataset: Any, *, require_mtls: bool = False) -> None:
        super().__init__(dataset)
        self.require_mtls = require_mtls
        self.index = PatientIndex(dataset)

    def load_dataset(self, dataset: Any) -> None:
        super().load_dataset(dataset)
        self.index = PatientIndex(dataset)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(SERVICE_PATH, self.handle, methods=["POST"], include_in_schema=False)
        return router

    def error_response(self, error: ServiceError) -> Response:
        key = error.code if error.kind == "injected" and error.code else error.kind
        return fault_response(key if key in self.fault_catalogue.service_faults else "internal", error.message)

    async def handle(self, request: Request) -> Response:
        notes = InsiNotes.of(request)
        try:
            req = self._read(await request.body(), request.headers.get("content-type", ""))
            notes.operation, notes.message_id, notes.idam = req.operation.value, req.message_id, req.idam
            self._authorise(req, request.scope)
            return self._answer(req, notes)
        except InsiFault as exc:
            notes.fault, notes.fault_detail = exc.key, exc.detail
            return fault_response(exc.key, exc.detail)

    def _read(self, body: bytes, content_type: str) -> InsiRequest:
        media = content_type.split(";")[0].strip().lower()
        if media != "application/soap+xml":
            raise InsiFault("malformed", f"Content-Type {media or 'absent'}: SOAP 1.2 requires application/soap+xml")
        try:
            message = parse_envelope(body)
        except SoapRejected as exc:
            raise InsiFault("malformed", exc.reason) from None
        return read_request(message)

    def _authorise(self, req: InsiRequest, scope: dict[str, Any]) -> None:
        subject = (scope.get("extensions", {}).get("tls") or {}).get("client_cert_subject")
        if subject is not None:
            cn = common_name_of_subject(subject)
            if cn not in AUTHORISED_CERT_CNS:
                raise InsiFault("desir_560", f"client certificate CN {cn!r} is not INSI-AUTO or INSI-MANU")
        elif self.require_mtls:
            raise InsiFault("desir_560", "a client certificate is required on this endpoint")
        elif not req.cps_assertion:
            raise InsiFault("desir_560", "no client certificate and no CPS assertion in wsse:Security")
        lps = next((x for x in self.dataset.lps if x.idam == req.idam), None)
        if lps is None or not lps.authorised:
            raise InsiFault("desir_550", f"IDAM {req.idam!r}")

    def _answer(self, req: InsiRequest, notes: InsiNotes) -> Response:
        if req.operation is Operation.TRAITS:
            assert req.traits is not None
            matches = self.index.find_by_traits(req.traits)
        else:
            assert req.vitale is not None
            matches = self.index.find_by_vitale(req.vitale)
        code = CodeCR.FOUND if len(matches) == 1 else CodeCR.NOT_FOUND if not matches else CodeCR.SEVERAL
        notes.code_cr, notes.matched = code.value, [p.id for p in matches]
        body = result_envelope(code, individual(matches[0]) if code is CodeCR.FOUND else None)
        return Response(body, media_type=SOAP12_CONTENT_TYPE)
