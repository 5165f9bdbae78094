"""What every fuzzing property of the suite shares (``tests/test_fuzz_*.py``): the oracle and the strategies.

The property, for every simulator surface: for any client input, the simulator answers in the protocol's own
error form within a bounded time, never a 5xx (outside injected faults; a SOAP service's own fault may be 500, as
SOAP 1.2 answers a Receiver fault), never a hang, and journals the exchange (one request record, one response
record whose outcome is ``answered``: a handler that raised is journaled ``error`` even when the middleware still
answers in the service's form). :func:`answered` checks all of it on one call.

Strategies: :func:`mutated_xml` mutates a document element by element and value by value (delete, duplicate,
empty, rename, new text, new attribute, nested deeper); :data:`JSON` and :data:`FHIRISH` are junk and
almost-FHIR JSON; :data:`AWKWARD` the values outsiders tried (numeric and impossible dates, huge numbers, control
characters, injection-like text); :func:`jwtish` tokens that look like JWTs and are not.

The six 500s and the stall outsiders found are regression cases: PSC's client assertions whose payload is a
list or whose subject is an object (test_psc_exactness.py, and @examples in test_fuzz_http.py); MES's
``GET /fhir/Patient`` and numeric dates (MES_OUTSIDERS in test_fuzz_http.py); the DMP's impossible date
(test_fuzz_soap.py, test_dmp_schemas.py); the message that froze every mail session for 13 s
(test_mssante_smtp.py, test_fuzz_mail.py). Those fuzzing found since are kept beside the property that found them.

How many examples each property tries is the hypothesis profile's (``tests/conftest.py``): ``ci``, the default,
is short and derandomised (the same examples each run, a few minutes for all of them); ``release`` is long and
random, for release checks: ``pytest tests/test_fuzz_*.py --hypothesis-profile=release``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st
from lxml import etree

from esante.simulators.core.evidence import EvidenceStore

#: No answer may take longer than this (a loopback call; the stall outsiders saw lasted 13 s).
BOUND_SECONDS = 5.0
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"  # a VersionMismatch to a SOAP 1.1 sender is in its version

AWKWARD = st.sampled_from([
    "", " ", "0", "-1", "1e309", "NaN", "99999999999999999999999999", "2019-02-30", "20190230", "20190230000000",
    "2024-13-45T25:61:61Z", "0000-00-00", "19690000", "ge2024", "lt", "a|b", "|", ",", "*", "%00", "\x00", "\u202e",
    "é" * 300, "A" * 5000, "<x>", "]]>", "&amp;", "' OR 1=1 --", "../../etc/passwd", "${jndi:ldap://x}", "true",
    "null", "[]", "{}", "urn:oid:", "1.2.250.1.213.1.4.8", "http://127.0.0.1:1/", "javascript:alert(1)",
])
TEXT = st.text(max_size=40) | AWKWARD

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4), max_leaves=20)
FHIR_KEYS = st.sampled_from(["resourceType", "type", "entry", "resource", "request", "status", "start", "end",
                             "participant", "identifier", "valueQuantity", "effectiveDateTime", "code", "subject",
                             "content", "masterIdentifier", "fullUrl", "ifNoneExist", "meta", "id", "birthDate",
                             "issued", "date", "period", "value", "system", "url", "method"])
FHIRISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12) |
                       st.sampled_from(["Bundle", "transaction", "Observation", "Appointment", "booked",
                                        "2026-01-01T10:00:00Z", "POST", "Device", "Patient", 20240101, 1e308]),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FHIR_KEYS, inner, max_size=6),
                       max_leaves=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def jwtish(draw: st.DrawFn) -> str:
    """Something shaped like a compact JWS (three dot-separated parts) whose header and payload are junk JSON,
    not JSON, or not base64."""
    header = draw(st.sampled_from([{"alg": "RS256"}, {"alg": "none"}, {"alg": "HS256", "kid": 1}, [1], "x"]) | JSON)
    payload = draw(JSON | st.fixed_dictionaries({}, optional={
        "iss": TEXT | JSON, "sub": TEXT | JSON, "aud": TEXT | JSON, "exp": st.integers() | TEXT,
        "iat": st.integers() | st.floats(allow_nan=False), "jti": TEXT, "nonce": TEXT}))
    parts = [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), _b64(draw(st.binary(max_size=64)))]
    if draw(st.booleans()):
        parts[draw(st.integers(0, 2))] = draw(TEXT)
    return ".".join(parts)


# -- XML, element by element and value by value ------------------------------------------------------------------

_MUTATIONS = ("delete", "duplicate", "empty", "text", "attribute", "rename", "nest", "children")


@st.composite
def mutated_xml(draw: st.DrawFn, document: bytes, *, max_mutations: int = 3) -> bytes:
    """``document`` with up to ``max_mutations`` mutations, each on one of its elements (drawn by position)."""
    root = etree.fromstring(document)
    for _ in range(draw(st.integers(1, max_mutations))):
        elements = list(root.iter(etree.Element))
        _mutate(draw, root, elements[draw(st.integers(0, len(elements) - 1))], draw(st.sampled_from(_MUTATIONS)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _mutate(draw: st.DrawFn, root: etree._Element, element: etree._Element, how: str) -> None:
    parent = element.getparent()
    if how == "delete" and parent is not None:
        parent.remove(element)
    elif how == "duplicate" and parent is not None:
        parent.insert(parent.index(element), etree.fromstring(etree.tostring(element)))
    elif how == "empty":
        element.text = None
        for child in list(element):
            element.remove(child)
    elif how == "rename":
        namespace = draw(st.sampled_from([etree.QName(element).namespace, "urn:x", None]))
        local = draw(st.sampled_from(["X", "Body", "Header", "Envelope", "Value", etree.QName(element).localname]))
        element.tag = f"{{{namespace}}}{local}" if namespace else local
    elif how == "attribute":
        name = draw(st.sampled_from(["id", "value", "code", "mustUnderstand", "root", "extension", "{urn:x}a"]))
        element.set(name, _xml_safe(draw(TEXT)))
    elif how == "nest":
        element.append(etree.fromstring(etree.tostring(root if element is not root else element)))
    elif how == "children":
        for child in list(element)[: draw(st.integers(0, 3))]:
            element.remove(child)
    else:
        element.text = _xml_safe(draw(TEXT))


def _xml_safe(text: str) -> str:
    """What lxml can put in a document (XML 1.0 forbids most control characters)."""
    return "".join(c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd"))


# -- the oracle --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Journaled:
    """What the simulator journaled for one call: the response record's payload."""

    outcome: str
    status: int | None
    notes: dict[str, Any]


@contextmanager
def one_exchange(store: EvidenceStore) -> Iterator[list[Journaled]]:
    """Collects what the store journals while the block runs: exactly one exchange is expected."""
    since, found = store.last_seq(), []
    yield found
    requests = store.records(kind="exchange.request", since=since)
    responses = store.records(kind="exchange.response", since=since)
    assert len(requests) == len(responses) == 1, f"journaled {len(requests)} request(s), {len(responses)} response(s)"
    payload = responses[0].payload
    found.append(Journaled(payload["outcome"], payload["status"], payload.get("notes") or {}))


def answered(store: EvidenceStore, send: Callable[[], httpx.Response], *,
             error_form: Callable[[httpx.Response], bool], soap: bool = False) -> httpx.Response:
    """Send one call and hold its answer to the property (see the module docstring); the answer."""
    with one_exchange(store) as journaled:
        started = time.monotonic()
        answer = send()
        elapsed = time.monotonic() - started
    assert elapsed < BOUND_SECONDS, f"answered in {elapsed:.1f} s"
    [entry] = journaled
    assert entry.outcome == "answered" and "exception" not in entry.notes, (entry, answer.text[:500])
    assert entry.status == answer.status_code
    assert answer.status_code < 500 or (soap and answer.status_code == 500 and soap_fault(answer)), answer.text[:500]
    if answer.status_code >= 400:
        assert error_form(answer), (answer.status_code, answer.headers.get("content-type"), answer.text[:500])
    return answer


def soap_fault(answer: httpx.Response) -> bool:
    """A SOAP envelope whose body is a Fault (possibly inside an MTOM package)."""
    content = answer.content
    if answer.headers.get("content-type", "").startswith("multipart/"):
        start = content.find(b"<")
        content = content[start:content.rfind(b">") + 1] if start >= 0 else content
    try:
        root = etree.fromstring(content)
    except etree.XMLSyntaxError:
        return False
    return any(root.find(f"{{{ns}}}Body/{{{ns}}}Fault") is not None for ns in (SOAP12_NS, SOAP11_NS))


def oauth_error(answer: httpx.Response) -> bool:
    """RFC 6749 section 5.2: a JSON object with an ``error`` code (an HTML page where a browser is answered)."""
    kind = answer.headers.get("content-type", "")
    if kind.startswith("text/html"):
        return "<html" in answer.text.lower()
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str)


def operation_outcome(answer: httpx.Response) -> bool:
    """FHIR's error form: an OperationOutcome with at least one issue."""
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" and bool(body.get("issue"))


def oauth_or_fhir(answer: httpx.Response) -> bool:
    return oauth_error(answer) or operation_outcome(answer)
