"""How a DMPi message is read, routed to its transaction, and answered.

* transport: SOAP 1.2 (``application/soap+xml``) or MTOM (``multipart/related``; there the SOAP 1.1 envelope
  of the official TD2.1 example is tolerated), with the WS-Addressing ``Action``, ``MessageID``, ``To`` and
  ``ReplyTo`` headers;
* the transaction: the ``Action`` on the service path serving it (HL7v3 interactions several TDs share are
  told apart by their reasonCode), and a body of the right kind;
* the caller: the VIHF in ``wsse:Security``, accepted by :func:`~.vihf.validate_vihf` at the simulator's clock
  (a refused VIHF is the ``vihf`` fault, its subcode the rule broken);
* the answer: the transaction's response action, ``RelatesTo`` the request, MTOM when the request was MTOM
  or the answer carries documents (ITI-43).

A message that fails here is a :class:`~.call.DmpFault` (a SOAP fault).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from lxml import etree
from starlette.responses import Response

from esante.simulators.dataset import Dataset
from esante.simulators.dmp.notes import VihfSummary
from esante.simulators.dmp.patient.access import NO_PATIENT_TDS
from esante.simulators.dmp.patient.hl7v3 import reason_code
from esante.simulators.dmp.protocol import REASONS, TRANSACTIONS, WSA_ANONYMOUS, Transaction
from esante.simulators.dmp.transport.call import Call, DmpFault, Reply
from esante.simulators.dmp.transport.vihf import TrustStore, Vihf, VihfError, validate_vihf
from esante.simulators.kits.mtom import MtomRejected, Related, build_related, is_multipart, parse_related
from esante.simulators.kits.soap import (
    SOAP12_CONTENT_TYPE,
    WSA_NS,
    WSSE_NS,
    SoapMessage,
    SoapRejected,
    envelope,
    parse_envelope,
)

BY_ACTION: dict[str, list[Transaction]] = {}
for _transaction in TRANSACTIONS.values():
    BY_ACTION.setdefault(_transaction.action, []).append(_transaction)
#: The body element of each transaction whose name is not the last part of its action.
BODY_ELEMENTS = {"TD2.1": "ProvideAndRegisterDocumentSetRequest", "TD3.1": "AdhocQueryRequest",
                 "TD3.2": "RetrieveDocumentSetRequest", "TD3.3": "SubmitObjectsRequest",
                 "TD0.5": "PRPA_IN201305UV02"}
WSA_REQUIRED = ("Action", "MessageID", "To", "ReplyTo")


def read_message(body: bytes, content_type: str) -> tuple[SoapMessage, Related | None]:
    """The SOAP message (and its MTOM package, if any) with every WS-Addressing header the DMP requires."""
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


def transaction_of(message: SoapMessage, path: str) -> Transaction:
    """The transaction the message's Action names on the service ``path``."""
    candidates = BY_ACTION.get(message.action or "", [])
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
