"""The INSi simulator: one SOAP 1.2 endpoint, two operations, the service's faults.

Authentication, per endpoint, as the real service takes it (``../shared/research/insi-official/SOURCES.md``):

* the **mutual-TLS endpoint** (``qualiflps-services-ps-tlsm…/lps``): the client certificate authenticates. Its CN
  must be ``INSI-AUTO`` or ``INSI-MANU``, else fault ``desir_560``; the request needs no ``wsse:Security``
  (the real client's mTLS request, ``requests/tlsi-ins_rechercherInsAvecTraitsIdentite_mTLS.xml``, has none
  and the qualification platform answers it CR 00);
* the **CPS endpoint** (``qualiflps.services-ps…/lps``): no client certificate; the CPS "assertion PS" is a
  SAML assertion in ``wsse:Security`` (the DMP package's example request). Without one: ``desir_560``.

Served over HTTPS, the simulator is both at once: a call presenting a certificate is an mTLS call, one without
is a CPS call (``require_mtls`` makes it the mTLS endpoint only). Over plain HTTP every call is a CPS call.
Then the software: an IDAM that is unknown or revoked gets ``desir_550``, exactly as the real fault
(``answers/qualification/FAULT_siram_100_desir_550_unknown_IDAM.xml``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import APIRouter, Request
from lxml import etree
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from esante.simulators.core.notes import Notes
from esante.simulators.core.pki import common_name_of_subject
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.insi.answers import result_envelope
from esante.simulators.insi.matching import PatientIndex, individual
from esante.simulators.insi.messages import InsiFault, InsiRequest, read_request
from esante.simulators.insi.notes import InsiNotes
from esante.simulators.insi.protocol import AUTHORISED_CERT_CNS, NS_SIRAM, SERVICE_PATH, CodeCR, Operation
from esante.simulators.kits.soap import (
    SOAP12_CONTENT_TYPE,
    SoapFault,
    SoapMessage,
    SoapRejected,
    parse_envelope,
    standard_fault_response,
)
from esante.simulators.kits.soap import fault_response as soap_fault


def fault_response(key: str, detail: str = "", message_id: str | None = None,
                   standard: SoapFault | None = None) -> Response:
    """The teleservice's SOAP 1.2 fault: Code, ``siram_*`` Subcode, Reason and a ``siram:Erreur`` detail.

    As the real fault (``FAULT_siram_100_desir_550_unknown_IDAM.xml``), ``siram:Erreur`` carries ``code``,
    ``messageID`` (the request's ``wsa:MessageID``, when it could be read) and ``severite``. A fault SOAP 1.2
    itself defines (``standard``: VersionMismatch, MustUnderstand) keeps its code and header blocks, with the
    same detail.
    """
    spec = InsiSimulator.fault_catalogue.service_faults[key]
    erreur = etree.Element(f"{{{NS_SIRAM}}}Erreur", nsmap={"siram": NS_SIRAM})
    erreur.set("code", spec.answer["error"])
    if message_id:
        erreur.set("messageID", message_id)
    erreur.set("severite", spec.answer["severity"])
    erreur.text = spec.answer["detail"].format(detail=detail).strip()
    if standard is not None:
        return standard_fault_response(standard, detail=erreur, status=spec.status, lang="fr")
    return soap_fault(spec, detail=erreur)


def message_id_of(body: bytes) -> str | None:
    """The ``wsa:MessageID`` of a request, if it is a SOAP envelope that has one."""
    try:
        return parse_envelope(body, allow_soap11=True).message_id
    except SoapRejected:
        return None


class _EchoingFault(Response):
    """A fault injected before the handler runs, written once the request body is read so that its
    ``siram:Erreur`` echoes the request's MessageID as every real fault does."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(status_code=500, media_type=SOAP12_CONTENT_TYPE)
        self.key, self.detail = key, detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"
        await fault_response(self.key, self.detail, message_id_of(b"".join(chunks)))(scope, receive, send)


class InsiSimulator(Simulator):
    """The Assurance Maladie INSi teleservice (search and verification of the INS).

    Options (``settings.options``):

    * ``require_mtls`` — the mutual-TLS endpoint only: a call without a client certificate gets ``desir_560``
      (without it, a call with no certificate is a CPS call, authenticated by its SAML assertion);
    * ``tiq_prenom`` — answer the CNDA kit's older TIQ shape, ``Prenom`` (first first name) before
      ``ListePrenom``, instead of the live service's ``ListePrenom`` alone (see ``answers.py``).
    """

    name: ClassVar[str] = "insi"
    title: ClassVar[str] = "INSi teleservice"
    notes_model: ClassVar[type[Notes]] = InsiNotes

    def __init__(self, dataset: Any, *, require_mtls: bool = False, tiq_prenom: bool = False) -> None:
        super().__init__(dataset)
        self.require_mtls = require_mtls
        self.tiq_prenom = tiq_prenom
        self.index = PatientIndex(dataset)
        #: Answers already written, by (CodeCR, matched patient): an answer depends on nothing else, so each is
        #: serialised once per data set (a fifth of a lookup's time otherwise).
        self._answers: dict[tuple[CodeCR, str | None], bytes] = {}

    def load_dataset(self, dataset: Any) -> None:
        super().load_dataset(dataset)
        self.index = PatientIndex(dataset)
        self._answers = {}

    def router(self) -> APIRouter:
        router = APIRouter()
        # a plain Starlette route: the handler takes the request whole, so FastAPI's parameter machinery would
        # only add its cost to every lookup
        router.add_route(SERVICE_PATH, self.handle, methods=["POST"], include_in_schema=False)
        return router

    def error_response(self, error: ServiceError) -> Response:
        key = error.code if error.kind == "injected" and error.code else error.kind
        key = key if key in self.fault_catalogue.service_faults else "internal"
        return _EchoingFault(key, error.message) if error.kind == "injected" else fault_response(key, error.message)

    async def handle(self, request: Request) -> Response:
        notes = InsiNotes.of(request)
        message_id = None
        try:
            message = self._envelope(await request.body(), request.headers.get("content-type", ""))
            message_id = message.message_id
            req = read_request(message)
            notes.operation, notes.message_id, notes.idam = req.operation.value, req.message_id, req.idam
            notes.authentication = self._authorise(req, request.scope)
            return self._answer(req, notes)
        except InsiFault as exc:
            notes.fault, notes.fault_detail = exc.key, exc.detail
            return fault_response(exc.key, exc.detail, message_id, exc.standard)

    def _envelope(self, body: bytes, content_type: str) -> SoapMessage:
        media = content_type.split(";")[0].strip().lower()
        if media != "application/soap+xml":
            raise InsiFault("malformed", f"Content-Type {media or 'absent'}: SOAP 1.2 requires application/soap+xml")
        try:
            return parse_envelope(body)
        except SoapRejected as exc:
            standard = exc if isinstance(exc, SoapFault) else None
            raise InsiFault("malformed", exc.reason, standard=standard) from None

    def _authorise(self, req: InsiRequest, scope: dict[str, Any]) -> str:
        """Who is calling, per endpoint (module docstring); returns ``certificate`` or ``cps``."""
        subject = (scope.get("extensions", {}).get("tls") or {}).get("client_cert_subject")
        if subject is not None:
            cn = common_name_of_subject(subject)
            if cn not in AUTHORISED_CERT_CNS:
                raise InsiFault("desir_560", f"client certificate CN {cn!r} is not INSI-AUTO or INSI-MANU")
        elif self.require_mtls:
            raise InsiFault("desir_560", "a client certificate is required on this endpoint")
        elif not req.cps_assertion:
            raise InsiFault("desir_560", "no client certificate, and no CPS assertion in wsse:Security")
        lps = next((x for x in self.dataset.lps if x.idam == req.idam), None)
        if lps is None or not lps.authorised:
            raise InsiFault("desir_550", f"IDAM {req.idam!r}")
        return "certificate" if subject is not None else "cps"

    def _answer(self, req: InsiRequest, notes: InsiNotes) -> Response:
        if req.operation is Operation.TRAITS:
            assert req.traits is not None
            matches = self.index.find_by_traits(req.traits)
        else:
            assert req.vitale is not None
            matches = self.index.find_by_vitale(req.vitale)
        code = CodeCR.FOUND if len(matches) == 1 else CodeCR.NOT_FOUND if not matches else CodeCR.SEVERAL
        notes.code_cr, notes.matched = code.value, [p.id for p in matches]
        key = (code, matches[0].id if code is CodeCR.FOUND else None)
        answer = self._answers.get(key)
        if answer is None:
            found = individual(matches[0]) if code is CodeCR.FOUND else None
            answer = self._answers[key] = result_envelope(code, found, tiq_prenom=self.tiq_prenom)
        return Response(answer, media_type=SOAP12_CONTENT_TYPE)
