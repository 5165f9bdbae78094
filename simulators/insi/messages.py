"""Reading INSi requests.

:func:`read_request` turns a parsed SOAP envelope into an :class:`InsiRequest`, or raises :class:`InsiFault`
naming the first rule broken, in the order the service checks them: addressing, contexts (BAM, LPS), the
optional ``wsse:Security`` block, then the body. Every header block and body is validated against the
official XSDs of the WSDL DESIR_ICIR_EXP_1.5.0 (``schemas/``, see its README) with libxml2; those XSDs are
loose (every trait optional, every type a plain string), so the business rules the service applies on top
(mandatory traits, characters allowed in names, lunar dates, NIR key) are checked in code.

``wsse:Security`` is not required here: what authenticates a call depends on the endpoint (the certificate on
the mutual-TLS one, whose real requests carry no Security block; the CPS assertion on the other), and
:mod:`esante.simulators.insi.service` decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import as_file, files

from lxml import etree

from esante.simulators.dataset.identifiers import is_valid_nir
from esante.simulators.insi.protocol import NS_CTXBAM, NS_CTXLPS, NS_RECSANS, NS_RECVIT, NS_SAML2, Operation
from esante.simulators.kits.soap import (
    WSA_HEADERS,
    WSSE_NS,
    SoapFault,
    SoapMessage,
    check_addressing,
    check_understood,
)
from esante.simulators.kits.xml import text_of

# Characters the INS referential allows in names once accents are folded; lower case and accents are
# tolerated on input (the service folds them), digits and other punctuation are not.
_NAME_RE = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿŒœÆæ]+(?:(?:--?|['’ ])[A-Za-zÀ-ÖØ-öø-ÿŒœÆæ]+)*$")
_NAME_MAX = 100
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # DateLunaire, the pattern of the RESULTAT and CTXBAM XSDs
_COG_RE = re.compile(r"^[0-9AB]{5}$")  # a COG code; Corsica 2A/2B
_NIR_RE = re.compile(r"^\d{6}[0-9AB]\d{6}$")
_KEY_RE = re.compile(r"^\d{2}$")
_RANK_RE = re.compile(r"^\d{1,2}$")
#: The official XSDs' entry point: the WSDL's <wsdl:types>, WS-Addressing read locally (schemas/README.md).
OFFICIAL_SCHEMA = "wsdl-types.xsd"
#: The header blocks the teleservice understands (a mustUnderstand one outside them is a MustUnderstand fault).
UNDERSTOOD = WSA_HEADERS | {f"{{{NS_CTXBAM}}}ContexteBAM", f"{{{NS_CTXLPS}}}ContexteLPS", f"{{{WSSE_NS}}}Security"}


class InsiFault(Exception):
    """A request the service refuses; ``key`` names the fault in ``faults.yaml``; ``standard`` is the SOAP 1.2
    fault (VersionMismatch, MustUnderstand) to answer with the entry's ``siram:Erreur`` as its detail."""

    def __init__(self, key: str, detail: str = "", *, standard: SoapFault | None = None) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail
        self.standard = standard


@dataclass(slots=True)
class Traits:
    birth_name: str
    first_names: list[str]
    sex: str
    birth_date: str
    birth_place: str | None = None


@dataclass(slots=True)
class VitaleQuery:
    nir: str
    key: str | None
    birth_date: str
    rank: int
    birth_name: str | None = None


@dataclass(slots=True)
class InsiRequest:
    operation: Operation
    message_id: str
    idam: str
    software_name: str
    software_version: str
    traits: Traits | None = None
    vitale: VitaleQuery | None = None
    security: bool = False       # a wsse:Security block was sent
    cps_assertion: bool = False  # ... holding a SAML assertion (the CPS "assertion PS")


@cache
def official_schema() -> etree.XMLSchema:
    """The WSDL's XSDs as one schema, read from the package with no network access."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    with as_file(files("esante.simulators.insi").joinpath("schemas", OFFICIAL_SCHEMA)) as path:
        return etree.XMLSchema(etree.parse(str(path), parser))


def _validate(element: etree._Element, fault: str) -> None:
    xsd = official_schema()
    if not xsd.validate(element):
        error = xsd.error_log.last_error
        where = etree.QName(element).localname
        raise InsiFault(fault, f"{where}: {error.message if error else 'invalid structure'}")


def read_request(message: SoapMessage) -> InsiRequest:
    """Check a SOAP request the way the teleservice does and extract what it asks."""
    operation = _operation(message)
    bam = _required_header(message, NS_CTXBAM, "ContexteBAM")
    _validate(bam, "header_invalid")
    lps = _required_header(message, NS_CTXLPS, "ContexteLPS")
    _validate(lps, "header_invalid")
    request = InsiRequest(operation=operation, message_id=message.message_id or "", **_software(lps))
    security = message.header(WSSE_NS, "Security")
    if security is not None:
        _validate(security, "header_invalid")
        request.security = True
        request.cps_assertion = security.find(f"{{{NS_SAML2}}}Assertion") is not None
    body = _body(message, operation)
    _validate(body, "body_invalid")
    if operation is Operation.TRAITS:
        request.traits = _read_traits(body)
    else:
        request.vitale = _read_vitale(body, bam)
    return request


def _operation(message: SoapMessage) -> Operation:
    try:
        check_understood(message, UNDERSTOOD)
        check_addressing(message)
    except SoapFault as exc:
        if exc.code == "MustUnderstand":
            raise InsiFault("header_invalid", exc.reason, standard=exc) from None
        raise InsiFault("header_missing" if exc.missing_header else "header_invalid", exc.reason) from None
    operation = Operation.from_action(message.action)
    if operation is None:
        raise InsiFault("action_unknown", f"unknown wsa:Action {message.action!r}")
    return operation


def _required_header(message: SoapMessage, namespace: str, name: str) -> etree._Element:
    element = message.header(namespace, name)
    if element is None:
        raise InsiFault("header_missing", name)
    return element


def _software(lps: etree._Element) -> dict[str, str]:
    """ContexteLPS/LPS: the XSD makes every child optional; the service needs the IDAM, name and version."""
    n = f"{{{NS_CTXLPS}}}"
    found = {"idam": text_of(lps.find(f"{n}LPS/{n}IDAM")), "software_name": text_of(lps.find(f"{n}LPS/{n}Nom")),
             "software_version": text_of(lps.find(f"{n}LPS/{n}Version"))}
    missing = [name for name, key in (("IDAM", "idam"), ("Nom", "software_name"), ("Version", "software_version"))
               if not found[key]]
    if missing:
        raise InsiFault("header_invalid", f"ContexteLPS/LPS lacks {', '.join(missing)}")
    return {key: value or "" for key, value in found.items()}


def _body(message: SoapMessage, operation: Operation) -> etree._Element:
    body = message.body
    if body is None or body.tag != operation.body_tag:
        found = etree.QName(body).localname if body is not None else "nothing"
        expected = etree.QName(operation.body_tag).localname
        raise InsiFault("action_unknown", f"action {operation.value} expects {expected} in the body, found {found}")
    return body


def _read_traits(body: etree._Element) -> Traits:
    def one(name: str) -> str | None:
        return text_of(body.find(f"{{{NS_RECSANS}}}{name}"))

    first_names = [t for e in body.findall(f"{{{NS_RECSANS}}}Prenom") if (t := text_of(e))]
    traits = Traits(birth_name=one("NomNaissance") or "", first_names=first_names, sex=one("Sexe") or "",
                    birth_date=one("DateNaissance") or "", birth_place=one("LieuNaissance"))
    missing = [label for label, value in (("NomNaissance", traits.birth_name), ("Prenom", first_names),
                                          ("Sexe", traits.sex), ("DateNaissance", traits.birth_date)) if not value]
    if missing:
        raise InsiFault("body_invalid", f"mandatory identity traits missing: {', '.join(missing)}")
    for name in [traits.birth_name, *first_names]:
        if len(name) > _NAME_MAX or not _NAME_RE.match(name):
            raise InsiFault("body_invalid", f"characters not allowed in name {name!r}")
    if traits.sex not in ("M", "F"):
        raise InsiFault("body_invalid", f"Sexe {traits.sex!r} is neither M nor F")
    if traits.birth_place is not None and not _COG_RE.match(traits.birth_place):
        raise InsiFault("body_invalid", f"LieuNaissance {traits.birth_place!r} is not a COG code")
    _check_lunar_date(traits.birth_date)
    return traits


def _check_lunar_date(value: str) -> None:
    if not _DATE_RE.match(value):
        raise InsiFault("body_invalid", f"DateNaissance {value!r} is not YYYY-MM-DD")
    year, month, day = (int(part) for part in value.split("-"))
    if not (1800 <= year <= 2100 and 0 <= month <= 12 and 0 <= day <= 31):
        raise InsiFault("body_invalid", f"DateNaissance {value!r} is not a valid (lunar) date")


def _read_vitale(body: etree._Element, bam: etree._Element) -> VitaleQuery:
    v = f"{{{NS_RECVIT}}}"
    matricule = body.find(f"{v}MatriculeIndividu")
    if matricule is None:
        raise InsiFault("body_invalid", "MatriculeIndividu missing: the NIR read from the carte Vitale is required")
    nir = text_of(matricule.find(f"{v}NumIdentifiant")) or ""
    key = text_of(matricule.find(f"{v}Cle"))
    if not _NIR_RE.match(nir) or (key is not None and not _KEY_RE.match(key)):
        raise InsiFault("body_invalid", f"MatriculeIndividu {nir!r} key {key!r} is not a NIR and its key")
    if key is not None and not is_valid_nir(nir, key):
        raise InsiFault("body_invalid", f"NIR {nir} key {key} is not valid")
    birth_date = text_of(body.find(f"{v}DateNaissance"))
    rank = text_of(body.find(f"{v}RangNaissance"))
    if not birth_date or not rank:
        raise InsiFault("body_invalid", "DateNaissance and RangNaissance of the beneficiary are required")
    if not _RANK_RE.match(rank):
        raise InsiFault("body_invalid", f"RangNaissance {rank!r} is not a birth rank")
    _check_lunar_date(birth_date)
    _check_beneficiary(bam, birth_date, int(rank))
    return VitaleQuery(nir=nir, key=key, birth_date=birth_date, rank=int(rank),
                       birth_name=text_of(body.find(f"{v}NomNaissance")))


def _check_beneficiary(bam: etree._Element, birth_date: str, rank: int) -> None:
    """ContexteBAM/COUVERTURE/BENEFICIAIRE must be there for a carte Vitale search, and agree with the body."""
    beneficiary = bam.find(f"{{{NS_CTXBAM}}}COUVERTURE/{{{NS_CTXBAM}}}BENEFICIAIRE")
    if beneficiary is None:
        raise InsiFault("header_invalid", "ContexteBAM/COUVERTURE/BENEFICIAIRE is required for a carte Vitale search")
    bam_rank = text_of(beneficiary.find(f"{{{NS_CTXBAM}}}Rang"))
    bam_date = text_of(beneficiary.find(f"{{{NS_CTXBAM}}}DateNai"))
    if (bam_rank and int(bam_rank) != rank) or (bam_date and bam_date != birth_date):
        raise InsiFault("header_invalid", "ContexteBAM BENEFICIAIRE disagrees with the body (rank or birth date)")
