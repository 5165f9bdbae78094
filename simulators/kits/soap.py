"""SOAP 1.2 envelope reading and writing, with the SOAP processing model and WS-Addressing 1.0, shared by every
SOAP simulator (INSi, DMP).

Written by hand: no maintained Python SOAP *server* library validates as the French teleservices do and answers
their fault shapes; envelopes are read with :func:`esante.simulators.kits.xml.parse_xml` (hardened) and built
with lxml so that namespaces and escaping are always right.

What a receiver must refuse before it looks at the body, as the specifications say, raises :class:`SoapFault`
(a :class:`SoapRejected` with the standard fault to answer):

* SOAP 1.2 Part 1, 5.4.7 and Appendix A: an envelope not in the SOAP 1.2 namespace is a ``VersionMismatch``
  fault, written as a SOAP 1.1 fault (with an ``Upgrade`` header block naming SOAP 1.2) when the request was
  SOAP 1.1 (:func:`parse_envelope`);
* SOAP 1.2 Part 1, 5.2.3 and 5.4.8: a header block targeted at this node (no ``role``, or ``next`` or
  ``ultimateReceiver``) with ``mustUnderstand`` true that the service does not understand is a
  ``MustUnderstand`` fault with one ``NotUnderstood`` header block per such block (:func:`check_understood`);
* WS-Addressing 1.0 Core 3 and its SOAP binding 6: ``Action`` and, for request-reply, ``MessageID`` are required
  (``wsa:MessageAddressingHeaderRequired``); each message addressing property at most once
  (``wsa:InvalidAddressingHeader`` / ``wsa:InvalidCardinality``), ``Action`` and ``MessageID`` not empty, and,
  for a synchronous service, ``ReplyTo`` and ``FaultTo`` anonymous (``wsa:OnlyAnonymousAddressSupported``)
  (:func:`check_addressing`). ``To`` and ``ReplyTo`` are optional (both default to anonymous).

HTTP status codes follow the SOAP 1.2 HTTP binding (Part 2, 7.5.2.2): 400 for a ``Sender`` fault, 500 for the
others; a service whose real counterpart answers otherwise says so in its ``faults.yaml``. A service's own
faults are catalogued there; :func:`fault_response` answers one (its ``answer``: ``code``, ``subcode``,
``reason``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from lxml import etree
from starlette.responses import Response

from esante.simulators.core.faults import ServiceFault
from esante.simulators.kits.xml import XmlRejected, parse_xml, text_of

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA_NS = "http://www.w3.org/2005/08/addressing"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SOAP12_CONTENT_TYPE = "application/soap+xml; charset=utf-8"
SOAP11_CONTENT_TYPE = "text/xml; charset=utf-8"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

WSA_ANONYMOUS = f"{WSA_NS}/anonymous"
#: The [action] of a reply carrying a WS-Addressing fault, and of one carrying any other SOAP fault.
WSA_FAULT_ACTION = f"{WSA_NS}/fault"
SOAP_FAULT_ACTION = f"{WSA_NS}/soap/fault"
#: The message addressing properties that occur at most once (RelatesTo may repeat).
WSA_SINGLE = ("To", "From", "ReplyTo", "FaultTo", "Action", "MessageID")
#: Every WS-Addressing header block: a service speaking WS-Addressing understands them all.
WSA_HEADERS = frozenset(f"{{{WSA_NS}}}{name}" for name in (*WSA_SINGLE, "RelatesTo"))
#: Roles a header block may target this node with (SOAP 1.2 Part 1, 2.2; absent means ultimateReceiver).
OUR_ROLES = (None, f"{SOAP12_NS}/role/next", f"{SOAP12_NS}/role/ultimateReceiver",
             "http://schemas.xmlsoap.org/soap/actor/next")


class SoapRejected(ValueError):
    """The message is not a SOAP envelope we can process; ``reason`` is for the fault text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SoapFault(SoapRejected):
    """A fault the SOAP or WS-Addressing specification defines, to be answered as it says.

    ``code`` is ``VersionMismatch``, ``MustUnderstand`` or ``Sender`` (a WS-Addressing fault); ``subcode``
    and ``subsubcode`` are prefixed QNames (``wsa:InvalidAddressingHeader``, ``wsa:InvalidCardinality``);
    ``problem_header`` the WS-Addressing header at fault (its ``ProblemHeaderQName`` detail);
    ``not_understood`` the Clark names of the header blocks not understood; ``soap11`` whether the request was
    SOAP 1.1 (a VersionMismatch is then written in SOAP 1.1).
    """

    def __init__(self, code: str, reason: str, *, subcode: str | None = None, subsubcode: str | None = None,
                 problem_header: str | None = None, not_understood: tuple[str, ...] = (),
                 soap11: bool = False) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.subsubcode = code, subcode, subsubcode
        self.problem_header, self.not_understood, self.soap11 = problem_header, not_understood, soap11

    @property
    def status(self) -> int:
        return 400 if self.code == "Sender" else 500

    @property
    def missing_header(self) -> bool:
        """A required WS-Addressing header is absent (as opposed to present and invalid)."""
        return self.subcode == "wsa:MessageAddressingHeaderRequired"


@dataclass(slots=True)
class SoapMessage:
    """A parsed SOAP request: its version, header blocks and the first body element."""

    version: str  # "1.2" or "1.1"
    envelope: etree._Element
    headers: list[etree._Element] = field(default_factory=list)
    body: etree._Element | None = None

    @property
    def namespace(self) -> str:
        return SOAP12_NS if self.version == "1.2" else SOAP11_NS

    def header(self, namespace: str, local_name: str) -> etree._Element | None:
        tag = f"{{{namespace}}}{local_name}"
        return next((h for h in self.headers if h.tag == tag), None)

    def header_text(self, namespace: str, local_name: str) -> str | None:
        return text_of(self.header(namespace, local_name))

    @property
    def action(self) -> str | None:
        return self.header_text(WSA_NS, "Action")

    @property
    def message_id(self) -> str | None:
        return self.header_text(WSA_NS, "MessageID")

    @property
    def reply_to(self) -> str | None:
        """The ``ReplyTo`` address (anonymous when absent, as WS-Addressing defaults it)."""
        reply_to = self.header(WSA_NS, "ReplyTo")
        return WSA_ANONYMOUS if reply_to is None else text_of(reply_to.find(f"{{{WSA_NS}}}Address"))


def parse_envelope(data: bytes, *, allow_soap11: bool = False, max_bytes: int | None = None) -> SoapMessage:
    """Parse a SOAP envelope; raise :class:`SoapRejected` with a precise reason when it is not XML we read, and
    :class:`SoapFault` (``VersionMismatch``) when its root is not a SOAP 1.2 Envelope (a SOAP 1.1 one is read
    where ``allow_soap11``)."""
    try:
        root = parse_xml(data, **({"max_bytes": max_bytes} if max_bytes else {}))
    except XmlRejected as exc:
        raise SoapRejected(exc.reason) from None
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP12_NS, SOAP11_NS):
        raise SoapFault("VersionMismatch", f"root element is {{{qname.namespace or ''}}}{qname.localname}, not a "
                                           "SOAP 1.2 Envelope")
    if qname.namespace == SOAP11_NS and not allow_soap11:
        raise SoapFault("VersionMismatch", "SOAP 1.1 envelope received where SOAP 1.2 is required", soap11=True)
    ns = qname.namespace
    header = root.find(f"{{{ns}}}Header")
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise SoapRejected("SOAP envelope has no Body")
    body_children = [c for c in body if isinstance(c.tag, str)]
    headers = [h for h in header if isinstance(h.tag, str)] if header is not None else []
    return SoapMessage("1.2" if ns == SOAP12_NS else "1.1", root, headers,
                       body_children[0] if body_children else None)


# -- the processing model ----------------------------------------------------------------------------------
def _must_understand(block: etree._Element, ns: str) -> bool:
    value = block.get(f"{{{ns}}}mustUnderstand")
    if value is None or value.strip() in ("false", "0"):
        return False
    if value.strip() in ("true", "1"):
        return True
    raise SoapRejected(f"mustUnderstand={value!r} on {block.tag} is not a boolean")


def check_understood(message: SoapMessage, understood: Collection[str]) -> None:
    """Refuse (``MustUnderstand``) the header blocks targeted at us, marked ``mustUnderstand``, that are not
    among ``understood`` (Clark names, ``{namespace}local``)."""
    ns = message.namespace
    role_attribute = f"{{{ns}}}role" if ns == SOAP12_NS else f"{{{ns}}}actor"
    missed = tuple(block.tag for block in message.headers
                   if block.get(role_attribute) in OUR_ROLES and _must_understand(block, ns)
                   and block.tag not in understood)
    if missed:
        names = ", ".join(missed)
        raise SoapFault("MustUnderstand", f"header block(s) {names} not understood", not_understood=missed)


def _addressing_fault(subcode: str, header: str, reason: str, subsubcode: str | None = None) -> SoapFault:
    return SoapFault("Sender", reason, subcode=f"wsa:{subcode}", subsubcode=subsubcode and f"wsa:{subsubcode}",
                     problem_header=f"wsa:{header}")


def _check_endpoint(message: SoapMessage, name: str, anonymous_only: bool) -> None:
    endpoint = message.header(WSA_NS, name)
    if endpoint is None:
        return
    address = text_of(endpoint.find(f"{{{WSA_NS}}}Address"))
    if address is None:
        raise _addressing_fault("InvalidAddressingHeader", name, f"wsa:{name} has no wsa:Address",
                                "MissingAddressInEPR")
    if anonymous_only and address != WSA_ANONYMOUS:
        raise _addressing_fault("InvalidAddressingHeader", name, f"wsa:{name} {address} is not anonymous: this "
                                "service answers on the request's connection only", "OnlyAnonymousAddressSupported")


def check_addressing(message: SoapMessage, *, required: Iterable[str] = ("Action", "MessageID"),
                     anonymous_only: bool = True) -> None:
    """WS-Addressing 1.0 as a synchronous request-reply service reads it (module docstring)."""
    for name in WSA_SINGLE:
        count = sum(1 for h in message.headers if h.tag == f"{{{WSA_NS}}}{name}")
        if count > 1:
            raise _addressing_fault("InvalidAddressingHeader", name, f"wsa:{name} occurs {count} times",
                                    "InvalidCardinality")
    missing = [name for name in required if message.header(WSA_NS, name) is None]
    if missing:
        raise _addressing_fault("MessageAddressingHeaderRequired", missing[0],
                                f"wsa:{', wsa:'.join(missing)} required")
    for name in ("Action", "MessageID"):
        if message.header(WSA_NS, name) is not None and message.header_text(WSA_NS, name) is None:
            raise _addressing_fault("InvalidAddressingHeader", name, f"wsa:{name} is empty")
    for name in ("ReplyTo", "FaultTo"):
        _check_endpoint(message, name, anonymous_only)


# -- writing ------------------------------------------------------------------------------------------------
def envelope(body: etree._Element | None, headers: list[etree._Element] | None = None,
             *, nsmap: dict[str | None, str] | None = None) -> bytes:
    """Serialise a SOAP 1.2 envelope around ``body`` (and optional header blocks)."""
    env = etree.Element(f"{{{SOAP12_NS}}}Envelope", nsmap={"soap": SOAP12_NS, **(nsmap or {})})
    if headers:
        header = etree.SubElement(env, f"{{{SOAP12_NS}}}Header")
        header.extend(headers)
    body_el = etree.SubElement(env, f"{{{SOAP12_NS}}}Body")
    if body is not None:
        body_el.append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def reply_headers(action: str, relates_to: str | None) -> list[etree._Element]:
    """The WS-Addressing headers of a reply on the back-channel: ``Action``, a fresh ``MessageID``, ``To``
    anonymous and ``RelatesTo`` the request's MessageID (when it had one)."""
    headers = []
    values = [("Action", action), ("MessageID", f"urn:uuid:{uuid.uuid4()}"), ("To", WSA_ANONYMOUS)]
    for name, value in values + ([("RelatesTo", relates_to)] if relates_to else []):
        element = etree.Element(f"{{{WSA_NS}}}{name}", nsmap={None: WSA_NS})
        element.text = value
        headers.append(element)
    return headers


#: Prefixes a subcode may carry (``wsa:ActionNotSupported``, the WS-Addressing SOAP binding's faults).
SUBCODE_NAMESPACES = {"wsa": WSA_NS}


def _code_value(parent: etree._Element, value: str) -> None:
    """A fault (sub)code ``Value``: a standard QName with its prefix declared, else in the envelope's prefix
    (``soap:siram_100``), as the French teleservices write theirs."""
    prefix = value.rpartition(":")[0]
    namespace = SUBCODE_NAMESPACES.get(prefix)
    element = etree.SubElement(parent, f"{{{SOAP12_NS}}}Value", nsmap={prefix: namespace} if namespace else None)
    element.text = value if namespace else f"soap:{value}"


def fault(code: str, reason: str, *, subcode: str | None = None, subsubcode: str | None = None,
          detail: etree._Element | None = None, headers: list[etree._Element] | None = None,
          lang: str = "fr") -> bytes:
    """A SOAP 1.2 Fault envelope. ``code`` is ``Sender``, ``Receiver``, ``MustUnderstand`` or
    ``VersionMismatch``; ``subcode`` and ``subsubcode`` are written in the envelope's own prefix
    (``soap:siram_100``) unless they name a standard one with its prefix (``wsa:ActionNotSupported``)."""
    f = etree.Element(f"{{{SOAP12_NS}}}Fault")
    code_el = etree.SubElement(f, f"{{{SOAP12_NS}}}Code")
    etree.SubElement(code_el, f"{{{SOAP12_NS}}}Value").text = f"soap:{code}"
    parent = code_el
    for value in (subcode, subsubcode):
        if value:
            parent = etree.SubElement(parent, f"{{{SOAP12_NS}}}Subcode")
            _code_value(parent, value)
    text = etree.SubElement(etree.SubElement(f, f"{{{SOAP12_NS}}}Reason"), f"{{{SOAP12_NS}}}Text")
    text.set(XML_LANG, lang)
    text.text = reason
    if detail is not None:
        etree.SubElement(f, f"{{{SOAP12_NS}}}Detail").append(detail)
    return envelope(f, headers)


def _version_mismatch_11(reason: str, detail: etree._Element | None) -> bytes:
    """SOAP 1.2 Part 1, Appendix A: the VersionMismatch answer to a SOAP 1.1 message is a SOAP 1.1 fault whose
    ``Upgrade`` header block names the envelope this node supports."""
    env = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"soap": SOAP11_NS})
    upgrade = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_NS}}}Header"), f"{{{SOAP12_NS}}}Upgrade",
                               nsmap={"soap12": SOAP12_NS})
    etree.SubElement(upgrade, f"{{{SOAP12_NS}}}SupportedEnvelope", qname="soap12:Envelope")
    f = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_NS}}}Body"), f"{{{SOAP11_NS}}}Fault")
    etree.SubElement(f, "faultcode").text = "soap:VersionMismatch"
    etree.SubElement(f, "faultstring").text = reason
    if detail is not None:
        etree.SubElement(f, "detail").append(detail)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _standard_headers(error: SoapFault) -> list[etree._Element]:
    """The header blocks a standard fault carries: ``Upgrade`` (VersionMismatch), ``NotUnderstood``."""
    if error.code == "VersionMismatch":
        upgrade = etree.Element(f"{{{SOAP12_NS}}}Upgrade")
        etree.SubElement(upgrade, f"{{{SOAP12_NS}}}SupportedEnvelope", qname="soap:Envelope")
        return [upgrade]
    blocks = []
    for number, tag in enumerate(error.not_understood, 1):
        qname = etree.QName(tag)
        prefix = f"nu{number}"
        blocks.append(etree.Element(f"{{{SOAP12_NS}}}NotUnderstood", qname=f"{prefix}:{qname.localname}",
                                    nsmap={prefix: qname.namespace or ""}))
    return blocks


def problem_detail(error: SoapFault) -> etree._Element | None:
    """WS-Addressing's ``ProblemHeaderQName`` detail of an addressing fault."""
    if error.problem_header is None:
        return None
    element = etree.Element(f"{{{WSA_NS}}}ProblemHeaderQName", nsmap={"wsa": WSA_NS})
    element.text = error.problem_header
    return element


def standard_fault_response(error: SoapFault, *, detail: etree._Element | None = None,
                            headers: list[etree._Element] | None = None, status: int | None = None,
                            lang: str = "en") -> Response:
    """The HTTP answer of a standard fault: its code, subcodes, header blocks and detail (``detail`` replaces
    the ``ProblemHeaderQName`` of an addressing fault), with the binding's status unless ``status`` is given."""
    detail = detail if detail is not None else problem_detail(error)
    if error.soap11:
        return Response(_version_mismatch_11(error.reason, detail), status_code=status or 500,
                        media_type=SOAP11_CONTENT_TYPE)
    body = fault(error.code, error.reason, subcode=error.subcode, subsubcode=error.subsubcode, detail=detail,
                 headers=_standard_headers(error) + (headers or []), lang=lang)
    return Response(body, status_code=status or error.status, media_type=SOAP12_CONTENT_TYPE)


def fault_response(spec: ServiceFault, *, reason: str | None = None, subcode: str | None = None,
                   detail: etree._Element | None = None, headers: list[etree._Element] | None = None) -> Response:
    """A catalogued SOAP 1.2 fault as the HTTP answer: the entry's Code, Subcode and Reason (``reason`` and
    ``subcode`` override them), an optional Detail and header blocks, with the entry's HTTP status (SOAP 1.2
    HTTP binding: 400 for a Sender fault, 500 for a Receiver one, unless the service says otherwise)."""
    answer = spec.answer
    body = fault(answer["code"], reason or answer["reason"], subcode=subcode or answer.get("subcode"), detail=detail,
                 headers=headers)
    return Response(body, status_code=spec.status, media_type=SOAP12_CONTENT_TYPE)
