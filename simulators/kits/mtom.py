"""MTOM/XOP (SOAP Message Transmission Optimization): a SOAP envelope in a ``multipart/related`` body whose
binary content sits in MIME parts referenced by ``xop:Include href="cid:..."``.

IHE XDS.b sends documents this way (ITI-41 Provide and Register, ITI-43 Retrieve). Reading is bounded: a part
count limit, and the body size is already bounded by the journal. The MIME parsing is the standard library's
``email`` package (it copes with CRLF and bare LF line ends, both seen in the official examples). An
``xop:Include`` naming no part is refused (XOP 1.0, 3.1: it must reference a part of the package); the parts
no ``xop:Include`` names are told to the service (:meth:`Related.unreferenced`), which decides.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

XOP_NS = "http://www.w3.org/2004/08/xop/include"
MAX_PARTS = 64


class MtomRejected(ValueError):
    """The body is not a usable multipart/related message; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Related:
    """A parsed multipart/related body: the root part (the SOAP envelope) and the other parts by Content-ID."""

    root: bytes
    root_type: str
    parts: dict[str, bytes] = field(default_factory=dict)
    included: set[str] = field(default_factory=set)

    def include(self, element: etree._Element) -> bytes | None:
        """The bytes of the part an element's ``xop:Include`` names; None when the element has no
        ``xop:Include`` (its content is inline); :class:`MtomRejected` when the part does not exist."""
        inc = element.find(f"{{{XOP_NS}}}Include")
        if inc is None:
            return None
        cid = content_id(inc.get("href", ""))
        if cid not in self.parts:
            raise MtomRejected(f"xop:Include href={inc.get('href', '')!r} names no part of the package")
        self.included.add(cid)
        return self.parts[cid]

    def unreferenced(self) -> list[str]:
        """The Content-IDs of the parts no :meth:`include` has read so far."""
        return sorted(set(self.parts) - self.included)


def content_id(reference: str) -> str:
    """A ``cid:`` URL or a ``Content-ID`` header reduced to the bare id (``<a@b>``, ``cid:a%40b`` → ``a@b``)."""
    ref = reference.strip()
    if ref.lower().startswith("cid:"):
        ref = unquote(ref[4:])
    return ref.strip("<>")


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/related"


def parse_related(body: bytes, content_type: str, *, max_parts: int = MAX_PARTS) -> Related:
    """Split a multipart/related body; the root is the ``start`` part, else the first one."""
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    if not message.is_multipart():
        raise MtomRejected("multipart/related body without a usable boundary")
    payload = message.get_payload()
    if not isinstance(payload, list) or not payload:
        raise MtomRejected("multipart/related body with no part")
    if len(payload) > max_parts:
        raise MtomRejected(f"multipart/related body with {len(payload)} parts (at most {max_parts})")
    start = content_id(message.get_param("start", "", header="content-type") or "")
    parts: dict[str, bytes] = {}
    root: tuple[bytes, str] | None = None
    for index, part in enumerate(payload):
        data = part.get_payload(decode=True) or b""
        cid = content_id(str(part.get("Content-ID", "")))
        if root is None and ((start and cid == start) or (not start and index == 0)):
            root = (data, part.get_content_type())
        elif cid:
            parts[cid] = data
    if root is None:
        raise MtomRejected(f"no part has the start Content-ID <{start}>")
    return Related(root[0], root[1], parts)


def build_related(envelope: bytes, attachments: list[tuple[str, str, bytes]], *, action: str) -> tuple[bytes, str]:
    """An MTOM message: ``envelope`` as the root part, then each ``(content_id, content_type, data)``.

    Returns the body and its ``Content-Type`` header value.
    """
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.message@{uuid.uuid4().hex}"
    chunks = [f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
              f"type=\"application/soap+xml\"; action=\"{action}\"\r\nContent-Transfer-Encoding: binary\r\n"
              f"Content-ID: <{root_id}>\r\n\r\n".encode(), envelope, b"\r\n"]
    for cid, ctype, data in attachments:
        chunks += [f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: <{cid}>\r\n\r\n".encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    f'start="<{root_id}>"; start-info="application/soap+xml"; action="{action}"')
    return b"".join(chunks), content_type


def xop_include(parent: etree._Element, cid: str) -> etree._Element:
    """Append ``<xop:Include href="cid:...">`` to ``parent`` (the part itself goes in :func:`build_related`)."""
    return etree.SubElement(parent, f"{{{XOP_NS}}}Include", href=f"cid:{cid}", nsmap={"xop": XOP_NS})
