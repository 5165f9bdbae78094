"""SOAP 1.2 envelope reading and writing, shared by every SOAP simulator (INSi, DMP).

Reading goes through :func:`esante.simulators.kits.xml.parse_xml` (hardened). Writing builds envelopes with lxml
so that namespaces and escaping are always right. A service's faults are catalogued in its ``faults.yaml``;
:func:`fault_response` answers one (its ``answer``: ``code``, ``subcode``, ``reason``).
"""

from __future__ import annotations

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


class SoapRejected(ValueError):
    """The message is not a SOAP envelope we can process; ``reason`` is for the fault text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class SoapMessage:
    """A parsed SOAP request: its version, header blocks and the first body element."""

    version: str  # "1.2" or "1.1"
    envelope: etree._Element
    headers: list[etree._Element] = field(default_factory=list)
    body: etree._Element | None = None

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


def parse_envelope(data: bytes, *, allow_soap11: bool = False, max_bytes: int | None = None) -> SoapMessage:
    """Parse a SOAP envelope; raise :class:`SoapRejected` with a precise reason when it is not one."""
    try:
        root = parse_xml(data, **({"max_bytes": max_bytes} if max_bytes else {}))
    except XmlRejected as exc:
        raise SoapRejected(exc.reason) from None
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (SOAP12_NS, SOAP11_NS):
        raise SoapRejected(f"root element is {{{qname.namespace}}}{qname.localname}, not a SOAP Envelope")
    if qname.namespace == SOAP11_NS and not allow_soap11:
        raise SoapRejected("SOAP 1.1 envelope received where SOAP 1.2 is required")
    ns = qname.namespace
    header = root.find(f"{{{ns}}}Header")
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise SoapRejected("SOAP envelope has no Body")
    body_children = [c for c in body if isinstance(c.tag, str)]
    headers = [h for h in header if isinstance(h.tag, str)] if header is not None else []
    return SoapMessage("1.2" if ns == SOAP12_NS else "1.1", root, headers,
                       body_children[0] if body_children else None)


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


#: Prefixes a subcode may carry (``wsa:ActionNotSupported``, the WS-Addressing SOAP binding's faults).
SUBCODE_NAMESPACES = {"wsa": WSA_NS}


def fault(code: str, reason: str, *, subcode: str | None = None,
          detail: etree._Element | None = None, lang: str = "fr") -> bytes:
    """A SOAP 1.2 Fault envelope. ``code`` is ``Sender`` or ``Receiver``.

    ``subcode`` is written in the envelope's own prefix (``soap:siram_100``), as the French teleservices do,
    unless it names a standard one with its prefix (``wsa:ActionNotSupported``, declared on the element).
    """
    f = etree.Element(f"{{{SOAP12_NS}}}Fault")
    code_el = etree.SubElement(f, f"{{{SOAP12_NS}}}Code")
    etree.SubElement(code_el, f"{{{SOAP12_NS}}}Value").text = f"soap:{code}"
    if subcode:
        sub = etree.SubElement(code_el, f"{{{SOAP12_NS}}}Subcode")
        prefix = subcode.rpartition(":")[0]
        namespace = SUBCODE_NAMESPACES.get(prefix)
        value = etree.SubElement(sub, f"{{{SOAP12_NS}}}Value", nsmap={prefix: namespace} if namespace else None)
        value.text = subcode if namespace else f"soap:{subcode}"
    reason_el = etree.SubElement(f, f"{{{SOAP12_NS}}}Reason")
    text = etree.SubElement(reason_el, f"{{{SOAP12_NS}}}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", lang)
    text.text = reason
    if detail is not None:
        etree.SubElement(f, f"{{{SOAP12_NS}}}Detail").append(detail)
    return envelope(f)


def fault_response(spec: ServiceFault, *, reason: str | None = None, subcode: str | None = None,
                   detail: etree._Element | None = None) -> Response:
    """A catalogued SOAP 1.2 fault as the HTTP answer: the entry's Code, Subcode and Reason (``reason`` and
    ``subcode`` override them), an optional Detail, with the entry's HTTP status (SOAP 1.2 HTTP binding: 400 for
    a Sender fault, 500 for a Receiver one, unless the service says otherwise)."""
    answer = spec.answer
    body = fault(answer["code"], reason or answer["reason"], subcode=subcode or answer.get("subcode"), detail=detail)
    return Response(body, status_code=spec.status, media_type=SOAP12_CONTENT_TYPE)
