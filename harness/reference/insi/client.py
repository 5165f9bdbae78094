"""A correct INSi client, as a software package would write it (plus the reference candidate's wire defects).

Requests are built with lxml, never by pasting values into a template, so a name with an apostrophe or an
angle bracket cannot break the envelope. Answers are read tolerantly, with a parser that resolves no entity
and reaches no network, and by local names, because real answers vary in prefixes, in whether ``RESULTAT``
uses a default namespace, and even in the order of ``INSHISTO`` children. (The client shares no code with the
simulator that judges it: a bug in one must not hide the same bug in the other.)

Retry discipline: a transient failure (a SOAP ``Receiver`` fault, an unreachable or silent service) is retried
once, 150 ms later; a ``Sender`` fault is the client's own mistake and retrying it would only repeat it.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from lxml import etree

from esante.harness.reference.defects import Defects
from esante.simulators.insi.protocol import NS_CTXBAM, NS_CTXLPS, NS_RECSANS, NS_RECVIT, Operation

SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA_NS = "http://www.w3.org/2005/08/addressing"
SOAP12_CONTENT_TYPE = "application/soap+xml; charset=utf-8"
MAX_ANSWER_BYTES = 2 * 1024 * 1024

#: IDAM sent by the ``wrong_idam`` defect: a real entry of the data set, whose authorisation was withdrawn.
REVOKED_IDAM = "ESANTE-REVOKED-0099"
RETRY_DELAY_S = 0.15
IMPATIENT_TIMEOUT_S = 0.25
HAMMERING_RETRIES = 6


class InsiServiceFault(Exception):
    """The teleservice answered a SOAP fault: ``code`` is Sender or Receiver, ``error_code`` the siram code."""

    def __init__(self, code: str, error_code: str | None, text: str) -> None:
        super().__init__(f"{code} fault {error_code or '(no siram:Erreur code)'}: {text}")
        self.code = code
        self.error_code = error_code
        self.text = text

    @property
    def transient(self) -> bool:
        return self.code == "Receiver"


class InsiUnavailable(Exception):
    """The teleservice could not be reached, did not answer in time, or answered something that is not SOAP."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AnsweredIns:
    """An INS as the teleservice returned it (kept as text: nothing is normalised on the way in)."""

    nir: str
    key: str
    oid: str


@dataclass(frozen=True, slots=True)
class InsiAnswer:
    """A RESULTAT: the CodeCR, and for 00 the active INS, the replaced ones and the reference traits (TIQ)."""

    code_cr: str
    active_ins: AnsweredIns | None = None
    history: list[AnsweredIns] = field(default_factory=list)
    tiq: dict[str, str] = field(default_factory=dict)


# -- reading answers ----------------------------------------------------------------------------------------
def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child(parent: etree._Element | None, name: str) -> etree._Element | None:
    """First child with this local name, whatever its namespace or prefix."""
    if parent is None:
        return None
    return next((c for c in parent if _local(c) == name), None)


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in parent if _local(c) == name]


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _descendant(parent: etree._Element, name: str) -> etree._Element | None:
    return next((e for e in parent.iter() if _local(e) == name), None)


def _answered_ins(block: etree._Element | None) -> AnsweredIns | None:
    """INSACTIF / INSHISTO, children looked up by name so their order does not matter."""
    if block is None:
        return None
    ident = _child(block, "IdIndividu")
    return AnsweredIns(nir=_text(_child(ident, "NumIdentifiant")), key=_text(_child(ident, "Cle")),
                       oid=_text(_child(block, "OID")))


def read_result(result: etree._Element) -> InsiAnswer:
    """Turn a RESULTAT element into an :class:`InsiAnswer`."""
    code = _text(_child(_child(result, "CR"), "CodeCR"))
    if not code:
        raise InsiUnavailable("the teleservice answered a RESULTAT without CR/CodeCR")
    individu = _child(result, "INDIVIDU")
    if individu is None:
        return InsiAnswer(code_cr=code)
    history = [ins for e in _children(individu, "INSHISTO") if (ins := _answered_ins(e)) is not None]
    tiq = _child(individu, "TIQ")
    traits = {_local(c): _text(c) for c in tiq if _local(c)} if tiq is not None else {}
    return InsiAnswer(code_cr=code, active_ins=_answered_ins(_child(individu, "INSACTIF")), history=history,
                      tiq=traits)


def read_fault(fault: etree._Element) -> InsiServiceFault:
    """A SOAP fault: the standard Code (``soap:Receiver`` -> Receiver) and the ``siram:Erreur`` detail."""
    value = _text(_child(_child(fault, "Code"), "Value")) or _text(_child(fault, "faultcode"))
    code = value.rpartition(":")[2] or "Receiver"
    code = {"Server": "Receiver", "Client": "Sender"}.get(code, code)  # SOAP 1.1 names, should one come back
    erreur = _descendant(fault, "Erreur")
    reason = _text(_descendant(fault, "Text")) or _text(_child(fault, "faultstring"))
    text = _text(erreur) or reason
    return InsiServiceFault(code, erreur.get("code") if erreur is not None else None, text)


def _soap_body(content: bytes) -> etree._Element | None:
    """The first element of a SOAP (1.2, or 1.1 should one come back) envelope's Body; ValueError otherwise."""
    if len(content) > MAX_ANSWER_BYTES:
        raise ValueError(f"{len(content)} bytes, over {MAX_ANSWER_BYTES}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML: {exc.msg}") from None
    if _local(root) != "Envelope" or etree.QName(root).namespace not in (SOAP12_NS, SOAP11_NS):
        raise ValueError(f"root element {_local(root) or root.tag!r} is not a SOAP Envelope")
    body = _child(root, "Body")
    if body is None:
        raise ValueError("the envelope has no Body")
    return next((c for c in body if isinstance(c.tag, str)), None)


def read_answer(response: httpx.Response) -> InsiAnswer:
    """A RESULTAT, or raise the fault it carries, or :class:`InsiUnavailable` when it is not SOAP at all."""
    try:
        body = _soap_body(response.content)
    except ValueError as exc:
        raise InsiUnavailable(f"HTTP {response.status_code}, not a SOAP answer: {exc}") from None
    if body is not None and _local(body) == "Fault":
        raise read_fault(body)
    if body is None or _local(body) != "RESULTAT":
        found = _local(body) if body is not None else "an empty Body"
        raise InsiUnavailable(f"HTTP {response.status_code}: expected RESULTAT, found {found}")
    return read_result(body)


# -- writing requests ---------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def fix_lunar_date(value: str) -> str:
    """What the ``fixes_lunar_date`` defect does: turn an unknown day or month (00) into 01."""
    year, month, day = value.split("-")
    return f"{year}-{'01' if month == '00' else month}-{'01' if day == '00' else day}"


@dataclass(frozen=True, slots=True)
class Beneficiary:
    """ContexteBAM COUVERTURE/BENEFICIAIRE for a carte Vitale search."""

    birth_date: str
    rank: int


class InsiClient:
    """One software instance talking to one INSi endpoint over a keep-alive HTTPS connection."""

    def __init__(self, endpoint: str, *, ca_pem: bytes | None = None, cert_file: Path | None = None,
                 key_file: Path | None = None, idam: str, software_name: str, software_version: str,
                 emitter: str, timeout: float = 2.0, defects: Defects | None = None) -> None:
        self.endpoint = endpoint
        self.defects = defects or Defects()
        self.idam = REVOKED_IDAM if self.defects.on("wrong_idam") else idam
        self.software_name = software_name
        self.software_version = software_version
        self.emitter = emitter
        self.instance = str(uuid.uuid4())  # the LPS instance: one per installed software, stable across calls
        self.timeout = IMPATIENT_TIMEOUT_S if self.defects.on("impatient_timeout") else timeout
        self._http = httpx.Client(verify=_tls_context(ca_pem, cert_file, key_file), timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    # -- operations -----------------------------------------------------------------------------------------
    def search_traits(self, birth_name: str, first_names: list[str], sex: str, birth_date: str,
                      birth_place: str | None) -> InsiAnswer:
        """rechercherInsAvecTraitsIdentite; the first names go in ONE Prenom element, space-separated."""
        def body() -> etree._Element:
            root = etree.Element(f"{{{NS_RECSANS}}}RECSANSVITALE", nsmap={"ins": NS_RECSANS})
            _sub(root, f"{{{NS_RECSANS}}}NomNaissance", birth_name)
            _sub(root, f"{{{NS_RECSANS}}}Prenom", " ".join(first_names))
            if not self.defects.on("missing_traits"):
                _sub(root, f"{{{NS_RECSANS}}}Sexe", sex)
            _sub(root, f"{{{NS_RECSANS}}}DateNaissance", self._date(birth_date))
            if birth_place:
                _sub(root, f"{{{NS_RECSANS}}}LieuNaissance", birth_place)
            return root

        return self._call(Operation.TRAITS, body, None)

    def search_vitale(self, nir: str, key: str | None, birth_name: str | None, birth_date: str,
                      rank: int) -> InsiAnswer:
        """rechercherInsAvecCarteVitale: the card's NIR, the beneficiary's birth date and rank."""
        date = self._date(birth_date)

        def body() -> etree._Element:
            root = etree.Element(f"{{{NS_RECVIT}}}RECVITALE", nsmap={"vit": NS_RECVIT})
            matricule = _sub(root, f"{{{NS_RECVIT}}}MatriculeIndividu")
            _sub(matricule, f"{{{NS_RECVIT}}}NumIdentifiant", nir)
            if key:
                _sub(matricule, f"{{{NS_RECVIT}}}Cle", key)
            if birth_name:
                _sub(root, f"{{{NS_RECVIT}}}NomNaissance", birth_name)
            _sub(root, f"{{{NS_RECVIT}}}DateNaissance", date)
            if not self.defects.on("vitale_without_rank"):
                _sub(root, f"{{{NS_RECVIT}}}RangNaissance", str(rank))
            return root

        return self._call(Operation.VITALE, body, Beneficiary(date, rank))

    def _date(self, birth_date: str) -> str:
        """Lunar dates (00 day or month) are sent exactly as known, except under the defect."""
        return fix_lunar_date(birth_date) if self.defects.on("fixes_lunar_date") else birth_date

    # -- one user action: the call and its retries ----------------------------------------------------------
    def _call(self, operation: Operation, body: Callable[[], etree._Element],
              beneficiary: Beneficiary | None) -> InsiAnswer:
        """Send, retrying transient failures; every attempt is a new message (new MessageID and Temps)."""
        hammering = self.defects.on("hammering_retries")
        retries, delay = (HAMMERING_RETRIES, 0.0) if hammering else (1, RETRY_DELAY_S)
        for attempt in range(retries + 1):
            try:
                return self._send(operation, self._envelope(operation, body(), beneficiary))
            except InsiServiceFault as fault:
                if not fault.transient or attempt == retries:
                    raise
            except InsiUnavailable:
                if attempt == retries:
                    raise
            if delay:
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _send(self, operation: Operation, envelope: bytes) -> InsiAnswer:
        headers = {"Content-Type": SOAP12_CONTENT_TYPE}
        if self.defects.on("soap11_envelope"):
            headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{operation.action}"'}
        try:
            response = self._http.post(self.endpoint, content=envelope, headers=headers)
        except httpx.TimeoutException as exc:
            raise InsiUnavailable(f"no answer within {self.timeout:g} s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise InsiUnavailable(f"teleservice unreachable: {type(exc).__name__}: {exc}") from None
        return read_answer(response)

    # -- the envelope ---------------------------------------------------------------------------------------
    def _envelope(self, operation: Operation, body: etree._Element, beneficiary: Beneficiary | None) -> bytes:
        soap_ns = SOAP11_NS if self.defects.on("soap11_envelope") else SOAP12_NS
        env = etree.Element(f"{{{soap_ns}}}Envelope", nsmap={
            "soap": soap_ns, "wsa": WSA_NS, "ctxbam": NS_CTXBAM, "ctxlps": NS_CTXLPS})
        header = _sub(env, f"{{{soap_ns}}}Header")
        header.append(self._contexte_bam(beneficiary))
        _sub(header, f"{{{WSA_NS}}}Action", operation.action)
        if not self.defects.on("no_message_id"):
            _sub(header, f"{{{WSA_NS}}}MessageID", f"uuid:{uuid.uuid4()}")
        if not self.defects.on("no_security_context"):
            header.append(self._contexte_lps())
        # No wsse:Security: this software authenticates by its INSI-AUTO certificate on the mutual-TLS endpoint,
        # where real clients send none (the Security block holds a CPS assertion, on the CPS endpoint).
        _sub(env, f"{{{soap_ns}}}Body").append(body)
        return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

    def _contexte_bam(self, beneficiary: Beneficiary | None) -> etree._Element:
        bam = etree.Element(f"{{{NS_CTXBAM}}}ContexteBAM", {"Version": "01_02"})
        _sub(bam, f"{{{NS_CTXBAM}}}Id", str(uuid.uuid4()))
        _sub(bam, f"{{{NS_CTXBAM}}}Temps", _now())
        _sub(bam, f"{{{NS_CTXBAM}}}Emetteur", self.emitter)
        couverture = _sub(bam, f"{{{NS_CTXBAM}}}COUVERTURE")
        if beneficiary is not None:
            block = _sub(couverture, f"{{{NS_CTXBAM}}}BENEFICIAIRE")
            _sub(block, f"{{{NS_CTXBAM}}}DateNai", beneficiary.birth_date)
            _sub(block, f"{{{NS_CTXBAM}}}Rang", str(beneficiary.rank))
        return bam

    def _contexte_lps(self) -> etree._Element:
        lps = etree.Element(f"{{{NS_CTXLPS}}}ContexteLPS", {"Nature": "CTXLPS", "Version": "01_00"})
        _sub(lps, f"{{{NS_CTXLPS}}}Id", str(uuid.uuid4()))
        _sub(lps, f"{{{NS_CTXLPS}}}Temps", _now())
        _sub(lps, f"{{{NS_CTXLPS}}}Emetteur", self.emitter)
        block = _sub(lps, f"{{{NS_CTXLPS}}}LPS")
        _sub(block, f"{{{NS_CTXLPS}}}IDAM", self.idam, R="4")
        _sub(block, f"{{{NS_CTXLPS}}}Version", self.software_version)
        _sub(block, f"{{{NS_CTXLPS}}}Instance", self.instance)
        _sub(block, f"{{{NS_CTXLPS}}}Nom", self.software_name)
        return lps


def _tls_context(ca_pem: bytes | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | bool:
    """Trust the test CA only (not the system store) and present the client certificate for mutual TLS."""
    if ca_pem is None:
        return True
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return context
