"""Hardened XML reading: the only way any simulator or the harness parses untrusted XML.

A SOAP message may not carry a document type declaration (SOAP 1.2 part 1, 5), and nothing a candidate
sends may make us fetch a URL or expand entities. The parser therefore:

* refuses any DOCTYPE outright (this defeats XXE and entity-expansion "billion laughs" payloads);
* never resolves entities, never loads a DTD, never touches the network;
* refuses inputs over a size cap before parsing, and keeps libxml2's own depth and text-size limits
  (``huge_tree`` stays off);
* refuses a namespace declared with a relative URI (``xmlns:xs="0"``): Namespaces in XML deprecates them, and a
  document holding one has no canonical form, so XML-DSig can neither sign nor verify it (libxml2's c14n fails).
"""

from __future__ import annotations

import re

from lxml import etree

DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class XmlRejected(ValueError):
    """The input is not XML we are willing to read; ``reason`` says why in one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: What looks like a namespace declaration with a relative URI in the bytes: a cheap test, confirmed on the tree
#: (it may be text or a comment) only when it matches.
_SUSPECT = re.compile(rb"""xmlns(?::[^\s=]+)?\s*=\s*(["'])(?![A-Za-z][A-Za-z0-9+.-]*:|\1)""")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _relative_namespace(data: bytes, root: etree._Element) -> str | None:
    if not _SUSPECT.search(data):
        return None
    for element in root.iter(etree.Element):
        for uri in element.nsmap.values():
            if uri and not _ABSOLUTE.match(uri):
                return uri
    return None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False)


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise :class:`XmlRejected`."""
    if len(data) > max_bytes:
        raise XmlRejected(f"XML message of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if not data.strip():
        raise XmlRejected("empty body where an XML message was expected")
    # Cheap pre-check (XML keywords are case-sensitive): a DOCTYPE is refused before libxml2 reads it.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlRejected("document type declarations and entities are not allowed in this message")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"message is not well-formed XML: {exc.msg} (line {exc.lineno})") from None
    if root.getroottree().docinfo.doctype:
        raise XmlRejected("document type declarations are not allowed in this message")
    relative = _relative_namespace(data, root)
    if relative is not None:
        raise XmlRejected(f"namespace URI {relative[:80]!r} is relative: namespace URIs must be absolute")
    return root


def pretty(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Indented text of an XML message for humans; the raw text when it is not XML we accept."""
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XmlRejected:
        return data.decode("utf-8", errors="replace")
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def text_of(element: etree._Element | None) -> str | None:
    """Stripped text of an element, None when the element is absent or empty."""
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None
