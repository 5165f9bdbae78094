"""How a DMPi message is read, routed to its transaction, and answered.

* transport: SOAP 1.2 (``application/soap+xml``) or MTOM (``multipart/related``; there the SOAP 1.1 envelope
  of the official TD2.1 example, which the real DMP accepted, is tolerated), with the SOAP processing model and
  WS-Addressing 1.0 as the SOAP kit reads them: ``Action`` and ``MessageID`` required, ``To`` and ``ReplyTo``
  optional (ANS's own client DRIMbox sends no ``ReplyTo``), each at most once, ``ReplyTo`` anonymous, and no
  header block marked ``mustUnderstand`` but those the DMP understands (WS-Addressing, ``wsse:Security``);
* the transaction: the ``Action`` on the service path serving it (HL7v3 interactions several TDs share are
  told apart by their reasonCode), and a body of the right kind; TD1.5a/b/d, which the 2024 annex removed, only
  with the ``legacy_patient_access`` option;
* the caller: the VIHF in ``wsse:Security``, accepted by :func:`~.vihf.validate_vihf` at the simulator's clock
  (a refused VIHF is the ``vihf`` fault, its subcode the rule broken);
* the answer: the transaction's response action, ``RelatesTo`` the request, MTOM when the request was MTOM
  or the answer carries documents (ITI-43).

A message that fails here is a :class:`~.call.DmpFault` (a SOAP fault).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree
from starlette.responses import Response

from esante.simulators.dataset import Dataset
from esante.simulators.dmp.notes import VihfSummary
from esante.simulators.dmp.patient.access import NO_PATIENT_TDS
from esante.simulators.dmp.patient.hl7v3 import reason_code
from esante.simulators.dmp.protocol import LEGACY_TDS, REASONS, TRANSACTIONS, Transaction
from esante.simulators.dmp.transport.call import Call, DmpFault, Reply
from esante.simulators.dmp.transport.vihf import TrustStore, Vihf, VihfError, validate_vihf
from esante.simulators.kits.mtom import MtomRejected, Related, build_related, is_multipart, parse_related
from esante.simulators.kits.soap import (
    SOAP12_CONTENT_TYPE,
    WSA_HEADERS,
    WSSE_NS,
    SoapFault,
    SoapMessage,
    SoapRejected,
    check_addressing,
    check_understood,
    envelope,
    parse_envelope,
    reply_headers,
)

BY_ACTION: dict[str, list[Transaction]] = {}
for _transaction in TRANSACTIONS.values():
    BY_ACTION.setdefault(_transaction.action, []).append(_transaction)
#: The body element of each transaction whose name is not the last part of its action.
BODY_ELEMENTS = {"TD2.1": "ProvideAndRegisterDocumentSetRequest", "TD3.1": "AdhocQueryRequest",
                 "TD3.2": "RetrieveDocumentSetRequest", "TD3.3": "SubmitObjectsRequest",
                 "TD0.5": "PRPA_IN201305UV02"}
UNDERSTOOD = WSA_HEADERS | {f"{{{WSSE_NS}}}Security"}
#: The fault of faults.yaml answering each standard fault the SOAP kit raises.
STANDARD_FAULTS = {"VersionMismatch": "version_mismatch", "MustUnderstand": "must_understand",
                   "wsa:MessageAddressingHeaderRequired": "addressing_header_missing",
                   "wsa:InvalidAddressingHeader": "addressing_header_invalid"}


def _standard(exc: SoapFault, message: SoapMessage | None = None) -> DmpFault:
    return DmpFault(STANDARD_FAULTS[exc.subcode or exc.code], exc.reason, standard=exc,
                    relates_to=message.message_id if message is not None else None)


def read_message(body: bytes, content_type: str) -> tuple[SoapMessage, Related | None]:
    """The SOAP message (and its MTOM package, if any), processed as SOAP 1.2 and WS-Addressing say."""
    related = None
    if is_multipart(content_type):
        try:
            related = parse_related(body, content_type)
        except MtomRejected as exc:
            raise DmpFault("malformed", exc.reason) from None
        body = related.root
    try:
        message = parse_envelope(body, allow_soap11=related is not None)
    except SoapFault as exc:
        raise _standard(exc) from None  # SOAP 1.1 (text/xml or not): VersionMismatch, naming SOAP 1.2
    except SoapRejected as exc:
        raise DmpFault("malformed", exc.reason) from None
    if related is None and content_type.split(";")[0].strip().lower() != "application/soap+xml":
        raise DmpFault("malformed", f"Content-Type {content_type or 'absent'}: SOAP 1.2 requires "
                                    "application/soap+xml (or multipart/related for MTOM)",
                       relates_to=message.message_id)
    try:
        check_understood(message, UNDERSTOOD)
        check_addressing(message)
    except SoapFault as exc:
        raise _standard(exc, message) from None
    except SoapRejected as exc:
        raise DmpFault("malformed", exc.reason, relates_to=message.message_id) from None
    return message, related


def transaction_of(message: SoapMessage, path: str, *, legacy: bool = False) -> Transaction:
    """The transaction the message's Action names on the service ``path`` (the legacy TDs when ``legacy``)."""
    candidates = [t for t in BY_ACTION.get(message.action or "", []) if legacy or t.td not in LEGACY_TDS]
    served = [t for t in candidates if path in t.paths]
    if not candidates:
        raise DmpFault("action_not_supported", f"action {message.action!r} is no DMPi transaction")
    if not served:
        raise DmpFault("action_not_supported", f"{message.action} is not served at {path} (but at "
                                               f"{candidates[0].paths[0]})")
    if len(served) == 1:
        return served[0]
    reason = reason_code(message.body) if message.body is not None else None
    chosen = next((t for t in served if t.td == REASONS.get(reason or "")), None)
    if chosen is None:
        raise DmpFault("body_invalid", f"reasonCode {reason!r} names no transaction of {message.action} "
                                       f"({', '.join(t.td for t in served)})")
    return chosen


def body_of(message: SoapMessage, transaction: Transaction) -> etree._Element:
    """The body element, which must be the transaction's."""
    body = message.body
    if body is None:
        raise DmpFault("body_invalid", "empty SOAP Body")
    expected = BODY_ELEMENTS.get(transaction.td) or transaction.action.rsplit(":", 1)[-1]
    if etree.QName(body).localname != expected:
        raise DmpFault("body_invalid", f"{transaction.td} expects {expected}, the body is "
                                       f"{etree.QName(body).localname}")
    return body


def caller_vihf(message: SoapMessage, call: Call, *, trust: TrustStore, dataset: Dataset, now: datetime) -> Vihf:
    """The VIHF of the message, accepted at ``now``; its summary goes into the call's notes."""
    security = message.header(WSSE_NS, "Security")
    if security is None:
        raise DmpFault("vihf", "no wsse:Security header carrying the VIHF", subcode="VIHF_NOT_FOUND")
    try:
        vihf = validate_vihf(security, trust=trust, dataset=dataset, now=now,
                             require_resource=call.td not in NO_PATIENT_TDS)
    except VihfError as exc:
        raise DmpFault("vihf", f"{exc.message} ({exc.location})", subcode=exc.code) from None
    signer = vihf.signer
    call.notes.vihf = VihfSummary(
        national_id=vihf.national_id, mode=vihf.auth_mode, purpose=vihf.purpose.code,
        profession=vihf.profession.code, structure=vihf.structure_id, ins=vihf.ins, lps=vihf.lps_name,
        signed=vihf.signed, signer=signer.subject if signer else None,
        example_vector=signer.example_vector if signer else None)
    return vihf


def respond(call: Call, reply: Reply) -> Response:
    """The answer's envelope with its WS-Addressing headers; MTOM when the call was, or documents go with it."""
    body = envelope(reply.body, reply_headers(call.transaction.response_action, call.message.message_id))
    if call.related is None and not reply.attachments:
        return Response(body, media_type=SOAP12_CONTENT_TYPE)
    content, content_type = build_related(body, reply.attachments, action=call.transaction.response_action)
    return Response(content, media_type=content_type)
