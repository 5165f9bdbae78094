"""The CNAM's INSi material, read for the INSi tests: the WSDL DESIR_ICIR_EXP_1.5.0 and its XSDs, the answers
recorded from the qualification platform and the CNDA kit (``../shared/research/insi-official/``, beside the
repository; see its ``SOURCES.md``). Nothing here is ours: tests judge the simulator against it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = ROOT.parent / "shared" / "research" / "insi-official"
WSDL = OFFICIAL / "wsdl" / "DESIR_ICIR_EXP_1.5.0.wsdl"
#: The WS-Addressing schema the WSDL imports by URL, and the local copy it is read from (no network in tests).
WSA_URL = "http://www.w3.org/2006/03/addressing/ws-addr.xsd"
WSA_LOCAL = OFFICIAL / "wsdl" / "xsd" / "WSA" / "ws-addr.xsd"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSDL = "http://schemas.xmlsoap.org/wsdl/"
NS_XS = "http://www.w3.org/2001/XMLSchema"
#: The request padoa/tlsi-ins sends in mTLS mode, its IDAM placeholder and MessageID as recorded.
MTLS_REQUEST = OFFICIAL / "requests" / "tlsi-ins_rechercherInsAvecTraitsIdentite_mTLS.xml"
MTLS_REQUEST_MESSAGE_ID = "uuid:b3549edd-4ae9-472a-b26f-fd2fb4ef397f"


def require_official() -> None:
    """Skip, saying why, where the official material is not beside the repository."""
    if not WSDL.is_file():
        pytest.skip(f"the official INSi material is not at {OFFICIAL} (../shared/research/insi-official)")


class _LocalWsAddressing(etree.Resolver):
    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if system_url == WSA_URL:
            return self.resolve_filename(str(WSA_LOCAL), context)
        return None


@cache
def official_schema() -> etree.XMLSchema:
    """The WSDL's own ``<wsdl:types>`` schema, its imports read from the WSDL's folder, WS-Addressing mapped to
    the local copy; the parser reaches no network."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalWsAddressing())
    wsdl = etree.parse(str(WSDL), parser)
    types = wsdl.find(f"{{{NS_WSDL}}}types/{{{NS_XS}}}schema")
    assert types is not None
    return etree.XMLSchema(types)


def assert_valid(element: etree._Element) -> None:
    """``element`` validates against the official XSDs (it must be one of their global elements)."""
    schema = official_schema()
    assert schema.validate(element), f"{etree.QName(element).localname}: {schema.error_log}"


def read(relative: str) -> etree._Element:
    """An official file's root element (``answers/qualification/CR02_DE_VINCI_LEONARDO.xml``...)."""
    return etree.parse(str(OFFICIAL / relative)).getroot()


def body_child(envelope: etree._Element) -> etree._Element:
    """The first element of a SOAP 1.2 envelope's Body."""
    body = envelope.find(f"{{{SOAP12}}}Body")
    assert body is not None, "no SOAP 1.2 Body"
    return next(c for c in body if isinstance(c.tag, str))


def canonical(element: etree._Element) -> tuple[Any, ...]:
    """An element as a tree of (qualified name, text, attributes, children): what it says, whatever its prefixes,
    namespace declarations, indentation and comments."""
    children = tuple(canonical(c) for c in element if isinstance(c.tag, str))
    text = (element.text or "").strip()
    return element.tag, text, tuple(sorted(element.attrib.items())), children


def qualification_identities() -> list[dict[str, Any]]:
    """The qualification platform's test identities and the CR each first-name attempt got
    (``test-identities.json``)."""
    return json.loads((OFFICIAL / "test-identities.json").read_text(encoding="utf-8"))["identities"]
