"""How the reference candidate talks to the DMP: SOAP 1.2 over HTTPS, WS-Addressing, the VIHF in
``wsse:Security``, MTOM/XOP for ITI-41 (and for reading ITI-43's answer), bounded retries.

Every request carries ``wsa:Action`` (mustUnderstand), ``wsa:MessageID``, ``wsa:To`` (the service URL) and
``wsa:ReplyTo`` (anonymous: the DMP answers on the request's connection only). MTOM messages are written by
hand: a ``multipart/related`` body of type ``application/xop+xml`` whose root part is the envelope and whose
other parts are the documents, named by ``Content-ID`` and referenced from the envelope with ``xop:Include``.
Answers are read with a parser that resolves no entity, loads no DTD and reaches no network, multipart ones
with the standard library's ``email`` package.

Retry discipline: a call that gets no answer (connection refused or dropped, no answer within the timeout)
or an HTTP 5xx that is not a SOAP message is retried at most twice (three attempts), after a short pause. A
SOAP fault or a business refusal is an answer: retrying would only repeat it.

Wire defects: ``dmp_soap11`` (SOAP 1.1 envelope, ``text/xml``, for the non-MTOM calls),
``dmp_non_anonymous_reply_to`` (``wsa:ReplyTo`` names a callback URL), ``dmp_must_understand_extension`` (a
header block of its own marked mustUnderstand), ``dmp_retries_forever`` (six retries).
"""

from __future__ import annotations

import email
import email.policy
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import httpx
from lxml import etree

from esante.simulators.core.pki import client_ssl_context

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP = "http://www.w3.org/2004/08/xop/include"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
CALLBACK = "https://reference-candidate.invalid/dmp/replies"  # dmp_non_anonymous_reply_to
TRACE = "urn:esante:reference-candidate:trace"  # dmp_must_understand_extension: a header block of its own

SERVICES = "/si-dmp-server/v2/services"
REGISTRY = f"{SERVICES}/DocumentRegistry_Service"
REPOSITORY = f"{SERVICES}/DocumentRepository_Service"
PATIENT = f"{SERVICES}/patient"
HABILITATION = f"{SERVICES}/Habilitation"
ACTION_PATIENT_QUERY = "urn:hl7-org:v3:PRPA_IN201307UV02"
ACTION_PATIENT_SEARCH = "urn:hl7-org:v3:PRPA_IN201305UV02"
ACTION_SET_AUTHORIZATION = "urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorization"
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"

TIMEOUT_S = 5.0
RETRY_PAUSE_S = 0.2
ATTEMPTS = 3
RETRIES_FOREVER_ATTEMPTS = 7  # dmp_retries_forever: one call and six retries
MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_PARTS = 32


class DmpUnavailable(Exception):
    """No usable answer: unreachable, silent, or an HTTP error that is not SOAP."""


class DmpFault(Exception):
    """A SOAP fault; ``subcode`` is the Subcode value without its prefix (``VIHF_SIGNER_MISMATCH``...)."""

    def __init__(self, code: str, subcode: str | None, reason: str) -> None:
        super().__init__(f"SOAP fault {code}/{subcode or '-'}: {reason}")
        self.code, self.subcode, self.reason = code, subcode, reason


@dataclass(slots=True)
class Answer:
    """The answer's first body element, and its MTOM parts by Content-ID."""

    body: etree._Element
    parts: dict[str, bytes] = field(default_factory=dict)

    def include(self, element: etree._Element) -> bytes | None:
        """The bytes an element carries: its ``xop:Include``'d part, else None."""
        include = element.find(f"{{{XOP}}}Include")
        return None if include is None else self.parts.get(content_id(include.get("href", "")))


def content_id(reference: str) -> str:
    ref = reference.strip()
    if ref.lower().startswith("cid:"):
        ref = unquote(ref[4:])
    return ref.strip("<>")


def _local_value(text: str | None) -> str | None:
    """A QName value without its prefix(es): ``soap:wsa:ActionNotSupported`` → ``ActionNotSupported``."""
    return text.strip().rsplit(":", 1)[-1] if text and text.strip() else None


# -- writing -------------------------------------------------------------------------------------------------
def envelope(action: str, to: str, body: etree._Element, vihf: etree._Element, *, soap11: bool = False,
             reply_to: str = ANONYMOUS, trace: bool = False) -> bytes:
    ns = SOAP11 if soap11 else SOAP12
    env = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns, "wsa": WSA})
    header = etree.SubElement(env, f"{{{ns}}}Header")
    must = {f"{{{ns}}}mustUnderstand": "1" if soap11 else "true"}
    etree.SubElement(header, f"{{{WSA}}}Action", must).text = action
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    etree.SubElement(header, f"{{{WSA}}}To").text = to
    etree.SubElement(etree.SubElement(header, f"{{{WSA}}}ReplyTo"), f"{{{WSA}}}Address").text = reply_to
    if trace:
        etree.SubElement(header, f"{{{TRACE}}}Trace", must, nsmap={"trace": TRACE}).text = str(uuid.uuid4())
    security = etree.SubElement(header, f"{{{WSSE}}}Security", must, nsmap={"wsse": WSSE})
    security.append(vihf)
    etree.SubElement(env, f"{{{ns}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def mtom(root: bytes, attachments: dict[str, tuple[str, bytes]], action: str) -> tuple[bytes, str]:
    """A multipart/related XOP package: ``root`` (a SOAP 1.2 envelope) then each cid → (content type, bytes)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"root.{uuid.uuid4().hex}@esante-reference"
    chunks = [f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"; "
              f"action=\"{action}\"\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{start}>\r\n\r\n".encode(),
              root, b"\r\n"]
    for cid, (content_type, data) in attachments.items():
        chunks += [f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: <{cid}>\r\n\r\n".encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{start}>"; '
                    f'start-info="application/soap+xml"; action="{action}"')
    return b"".join(chunks), content_type


# -- reading -------------------------------------------------------------------------------------------------
class NotSoap(ValueError):
    """The answer is no SOAP message (a proxy's error page, garbage)."""


def _split_related(data: bytes, content_type: str) -> tuple[bytes, dict[str, bytes]]:
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + data,
                                       policy=email.policy.HTTP)
    payload = message.get_payload() if message.is_multipart() else None
    if not isinstance(payload, list) or not payload or len(payload) > MAX_PARTS:
        raise NotSoap("a multipart/related answer without usable parts")
    start = content_id(message.get_param("start", "", header="content-type") or "")
    root: bytes | None = None
    parts: dict[str, bytes] = {}
    for index, part in enumerate(payload):
        body = part.get_payload(decode=True) or b""
        cid = content_id(str(part.get("Content-ID", "")))
        if root is None and ((start and cid == start) or (not start and index == 0)):
            root = body
        elif cid:
            parts[cid] = body
    if root is None:
        raise NotSoap(f"no part of the multipart/related answer is its start <{start}>")
    return root, parts


def _parse(data: bytes) -> etree._Element:
    """The answer as XML: bounded, no entity resolved, no DTD loaded, no network reached."""
    if len(data) > MAX_ANSWER_BYTES:
        raise NotSoap(f"{len(data)} bytes, over {MAX_ANSWER_BYTES}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise NotSoap(f"not XML: {exc.msg}") from None


def read_answer(data: bytes, content_type: str) -> Answer:
    """The answer's body; :class:`DmpFault` for a SOAP fault, :class:`NotSoap` when it is not SOAP at all."""
    parts: dict[str, bytes] = {}
    if content_type.split(";", 1)[0].strip().lower() == "multipart/related":
        data, parts = _split_related(data, content_type)
    root = _parse(data)
    ns = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or ns not in (SOAP12, SOAP11):
        raise NotSoap(f"the answer's root is {root.tag}, not a SOAP envelope")
    body = root.find(f"{{{ns}}}Body")
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    if first is None:
        raise NotSoap("a SOAP answer with an empty Body")
    if first.tag == f"{{{ns}}}Fault":
        code = first.findtext(f"{{{ns}}}Code/{{{ns}}}Value") or first.findtext("faultcode")
        subcode = first.findtext(f"{{{ns}}}Code/{{{ns}}}Subcode/{{{ns}}}Value")
        reason = first.findtext(f"{{{ns}}}Reason/{{{ns}}}Text") or first.findtext("faultstring") or ""
        raise DmpFault(_local_value(code) or "Receiver", _local_value(subcode), reason.strip())
    return Answer(first, parts)


# -- the connection ------------------------------------------------------------------------------------------
class DmpConnection:
    """HTTPS to one DMP (its base URL); the VIHF and the body are made by the caller."""

    def __init__(self, base_url: str, *, ca_pem: bytes | None, client_cert: tuple[Path, Path] | None = None,
                 defects: Collection[str] = frozenset(), timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.defects = defects
        verify = client_ssl_context(ca_pem, client_cert) if ca_pem is not None else True
        self.http = httpx.Client(verify=verify, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, path: str, action: str, body: etree._Element, vihf: etree._Element,
             attachments: dict[str, tuple[str, bytes]] | None = None) -> Answer:
        """One transaction: MTOM when ``attachments`` (cid → content type, bytes) are given, else plain SOAP."""
        url = f"{self.base_url}{path}"
        soap11 = "dmp_soap11" in self.defects and attachments is None
        data = envelope(action, url, body, vihf, soap11=soap11,
                        reply_to=CALLBACK if "dmp_non_anonymous_reply_to" in self.defects else ANONYMOUS,
                        trace="dmp_must_understand_extension" in self.defects)
        if attachments is not None:
            data, content_type = mtom(data, attachments, action)
        elif soap11:
            content_type = "text/xml; charset=utf-8"
        else:
            content_type = f'application/soap+xml; charset=utf-8; action="{action}"'
        return self._send(url, data, content_type)

    def _send(self, url: str, data: bytes, content_type: str) -> Answer:
        attempts = RETRIES_FOREVER_ATTEMPTS if "dmp_retries_forever" in self.defects else ATTEMPTS
        problem = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(RETRY_PAUSE_S)
            try:
                response = self.http.post(url, content=data, headers={"Content-Type": content_type})
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            try:
                return read_answer(response.content, response.headers.get("content-type", ""))
            except NotSoap as exc:
                problem = f"HTTP {response.status_code}, not SOAP ({exc})"
                if response.status_code < 500:
                    break
        raise DmpUnavailable(f"the DMP is unavailable ({problem})")
