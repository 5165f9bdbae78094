"""Reading INSi requests and writing INSi answers.

:func:`read_request` turns a parsed SOAP envelope into an :class:`InsiRequest`, or raises :class:`InsiFault`
naming the first rule broken, in the order the service checks them: addressing, contexts (BAM, LPS),
security, then the body. Structure is validated against our XSDs (``schemas/``) with libxml2; business rules
(mandatory traits, characters allowed in names, NIR key) are checked in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

from lxml import etree

from esante.simulators.dataset import InsRecord
from esante.simulators.dataset.identifiers import is_valid_nir
from esante.simulators.insi.protocol import (
    NS_CTXBAM,
    NS_CTXLPS,
    NS_RECSANS,
    NS_RECVIT,
    NS_RESULTAT,
    NS_SAML2,
    CodeCR,
    Operation,
)
from esante.simulators.kits.soap import WSSE_NS, SoapMessage, envelope
from esante.simulators.kits.xml import text_of

# Characters the INS referential allows in names once accents are folded; lower case and accents are
# tolerated on input (the service folds them), digits and other punctuation are not.
_NAME_RE = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿŒœÆæ]+(?:(?:--?|['’ ])[A-Za-zÀ-ÖØ-öø-ÿŒœÆæ]+)*$")


class InsiFault(Exception):
    """A request the service refuses; ``key`` names the fault in ``faults.yaml``."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail


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
    cps_assertion: bool = False
    notes: dict[str, str] = field(default_factory=dict)


@cache
def _schema(name: str) -> etree.XMLSchema:
    source = files("esante.simulators.insi").joinpath("schemas", name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source))


def _validate(element: etree._Element, schema: str, fault: str) -> None:
    xsd = _schema(schema)
    if not xsd.validate(element):
        error = xsd.error_log.last_error
        where = etree.QName(element).localname
        raise InsiFault(fault, f"{where}: {error.message if error else 'invalid structure'}")


def read_request(message: SoapMessage) -> InsiRequest:
    """Check a SOAP request the way the teleservice does and extract what it asks."""
    operation = _operation(message)
    bam = _required_header(message, NS_CTXBAM, "ContexteBAM")
    _validate(bam, "ctxbam.xsd", "header_invalid")
    lps = _required_header(message, NS_CTXLPS, "ContexteLPS")
    _validate(lps, "ctxlps.xsd", "header_invalid")
    security = _required_header(message, WSSE_NS, "Security")
    request = InsiRequest(
        operation=operation, message_id=message.message_id or "",
        idam=text_of(lps.find(f"{{{NS_CTXLPS}}}LPS/{{{NS_CTXLPS}}}IDAM")) or "",
        software_name=text_of(lps.find(f"{{{NS_CTXLPS}}}LPS/{{{NS_CTXLPS}}}Nom")) or "",
        software_version=text_of(lps.find(f"{{{NS_CTXLPS}}}LPS/{{{NS_CTXLPS}}}Version")) or "",
        cps_assertion=security.find(f"{{{NS_SAML2}}}Assertion") is not None)
    body = message.body
    if body is None or body.tag != operation.body_tag:
        found = etree.QName(body).localname if body is not None else "nothing"
        expected = etree.QName(operation.body_tag).localname
        raise InsiFault("action_unknown", f"action {operation.value} expects {expected} in the body, found {found}")
    if operation is Operation.TRAITS:
        _validate(body, "recsans.xsd", "body_invalid")
        request.traits = _read_traits(body)
    else:
        _validate(body, "recvit.xsd", "body_invalid")
        request.vitale = _read_vitale(body, bam)
    return request


def _operation(message: SoapMessage) -> Operation:
    if not message.action:
        raise InsiFault("header_missing", "wsa:Action")
    if not message.message_id:
        raise InsiFault("header_missing", "wsa:MessageID")
    operation = Operation.from_action(message.action)
    if operation is None:
        raise InsiFault("action_unknown", f"unknown wsa:Action {message.action!r}")
    return operation


def _required_header(message: SoapMessage, namespace: str, name: str) -> etree._Element:
    element = message.header(namespace, name)
    if element is None:
        raise InsiFault("header_missing", name)
    return element


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
        if not _NAME_RE.match(name):
            raise InsiFault("body_invalid", f"characters not allowed in name {name!r}")
    _check_lunar_date(traits.birth_date)
    return traits


def _check_lunar_date(value: str) -> None:
    year, month, day = (int(part) for part in value.split("-"))
    if not (1800 <= year <= 2100 and 0 <= month <= 12 and 0 <= day <= 31):
        raise InsiFault("body_invalid", f"DateNaissance {value!r} is not a valid (lunar) date")


def _read_vitale(body: etree._Element, bam: etree._Element) -> VitaleQuery:
    matricule = body.find(f"{{{NS_RECVIT}}}MatriculeIndividu")
    if matricule is None:
        raise InsiFault("body_invalid", "MatriculeIndividu missing: the NIR read from the carte Vitale is required")
    nir = text_of(matricule.find(f"{{{NS_RECVIT}}}NumIdentifiant")) or ""
    key = text_of(matricule.find(f"{{{NS_RECVIT}}}Cle"))
    if key is not None and not is_valid_nir(nir, key):
        raise InsiFault("body_invalid", f"NIR {nir} key {key} is not valid")
    birth_date = text_of(body.find(f"{{{NS_RECVIT}}}DateNaissance"))
    rank = text_of(body.find(f"{{{NS_RECVIT}}}RangNaissance"))
    if not birth_date or not rank:
        raise InsiFault("body_invalid", "DateNaissance and RangNaissance of the beneficiary are required")
    _check_lunar_date(birth_date)
    beneficiary = bam.find(f"{{{NS_CTXBAM}}}COUVERTURE/{{{NS_CTXBAM}}}BENEFICIAIRE")
    if beneficiary is None:
        raise InsiFault("header_invalid", "ContexteBAM/COUVERTURE/BENEFICIAIRE is required for a carte Vitale search")
    bam_rank = text_of(beneficiary.find(f"{{{NS_CTXBAM}}}Rang"))
    bam_date = text_of(beneficiary.find(f"{{{NS_CTXBAM}}}DateNai"))
    if (bam_rank and int(bam_rank) != int(rank)) or (bam_date and bam_date != birth_date):
        raise InsiFault("header_invalid", "ContexteBAM BENEFICIAIRE disagrees with the body (rank or birth date)")
    return VitaleQuery(nir=nir, key=key, birth_date=birth_date, rank=int(rank),
                       birth_name=text_of(body.find(f"{{{NS_RECVIT}}}NomNaissance")))


# -- answers -----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Individual:
    active: InsRecord
    history: list[InsRecord]
    birth_name: str
    first_names: list[str]
    sex: str
    birth_date: str
    birth_place: str


def _r(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS_RESULTAT}}}{name}")
    if text is not None:
        element.text = text
    return element


def _ins(parent: etree._Element, name: str, ins: InsRecord) -> None:
    block = _r(parent, name)
    ident = _r(block, "IdIndividu")
    _r(ident, "NumIdentifiant", ins.nir)
    _r(ident, "Cle", ins.key)
    _r(block, "OID", ins.oid)
    if ins.start:
        _r(block, "DateDeb", str(ins.start))
    if ins.end:
        _r(block, "DateFin", str(ins.end))


def result_envelope(code: CodeCR, individual: Individual | None = None) -> bytes:
    """The RESULTAT answer, shaped like the service's: no SOAP header, ``ns2`` prefix on RESULTAT."""
    root = etree.Element(f"{{{NS_RESULTAT}}}RESULTAT",
                         nsmap={"ns2": NS_RESULTAT, "ns3": NS_RECVIT, None: NS_RECSANS})
    cr = _r(root, "CR")
    _r(cr, "CodeCR", code.value)
    _r(cr, "LibelleCR", code.label)
    if individual is not None:
        block = _r(root, "INDIVIDU")
        _ins(block, "INSACTIF", individual.active)
        for old in individual.history:
            _ins(block, "INSHISTO", old)
        tiq = _r(block, "TIQ")
        _r(tiq, "NomNaissance", individual.birth_name)
        _r(tiq, "Prenom", individual.first_names[0])
        _r(tiq, "ListePrenom", " ".join(individual.first_names))
        _r(tiq, "Sexe", individual.sex)
        _r(tiq, "DateNaissance", individual.birth_date)
        _r(tiq, "LieuNaissance", individual.birth_place)
    return envelope(root)
