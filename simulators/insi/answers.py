"""Writing INSi answers, shaped like the live teleservice's.

The model is the CNAM qualification platform's answers (``../shared/research/insi-official/answers/
qualification/``, recorded byte for byte by padoa/tlsi-ins's integration tests against
``qualiflps-services-ps-tlsm.ameli.fr``):

* no SOAP Header; ``RESULTAT`` in the default namespace, the two request namespaces declared beside it
  (``CR00_ADRTROIS_TOUSSAINT.xml``: ``<RESULTAT xmlns="…INSiResultat" xmlns:ns0="…INSiRecVit"
  xmlns:ns1="…INSiRecSans">``);
* ``INSACTIF`` carries ``IdIndividu`` and ``OID`` only, never ``DateDeb``/``DateFin``: no real answer (live,
  CNDA kit, DMP package) has dates on it; ``INSHISTO`` entries carry them when known, in the XSD order
  (``CR00_ECETINSI_PIERRE-ALAIN_history.xml``: IdIndividu, OID, DateDeb, DateFin);
* ``TIQ`` carries ``ListePrenom`` (every first name, space-separated) and no ``Prenom``
  (``CR00_TCHITCHI_CATARINA.xml``: ``<ListePrenom>CATARINA BELLA</ListePrenom>``). The CNDA kit's canned files
  also carry ``Prenom`` (the first first name) before it: ``tiq_prenom=True`` writes that older shape, for a
  client that must also read the CNDA files it is given at homologation.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from esante.simulators.dataset import InsRecord
from esante.simulators.insi.protocol import NS_RECSANS, NS_RECVIT, NS_RESULTAT, CodeCR
from esante.simulators.kits.soap import envelope

#: The namespaces the live answers declare on RESULTAT (the default one is RESULTAT's own).
RESULT_NSMAP = {None: NS_RESULTAT, "ns0": NS_RECVIT, "ns1": NS_RECSANS}


@dataclass(slots=True)
class Individual:
    """An identity as the teleservice returns it: INS already carrying the OID it answers (its domain's)."""

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


def _ins(parent: etree._Element, name: str, ins: InsRecord, *, dated: bool) -> None:
    block = _r(parent, name)
    ident = _r(block, "IdIndividu")
    _r(ident, "NumIdentifiant", ins.nir)
    _r(ident, "Cle", ins.key)
    _r(block, "OID", ins.oid)
    if dated and ins.start:
        _r(block, "DateDeb", ins.start.isoformat())
    if dated and ins.end:
        _r(block, "DateFin", ins.end.isoformat())


def _tiq(parent: etree._Element, individual: Individual, *, tiq_prenom: bool) -> None:
    tiq = _r(parent, "TIQ")
    _r(tiq, "NomNaissance", individual.birth_name)
    if tiq_prenom:
        _r(tiq, "Prenom", individual.first_names[0])
    _r(tiq, "ListePrenom", " ".join(individual.first_names))
    _r(tiq, "Sexe", individual.sex)
    _r(tiq, "DateNaissance", individual.birth_date)
    _r(tiq, "LieuNaissance", individual.birth_place)


def result(code: CodeCR, individual: Individual | None = None, *, tiq_prenom: bool = False) -> etree._Element:
    """The RESULTAT element: CR, and for 00 the INDIVIDU (INSACTIF, INSHISTO*, TIQ)."""
    root = etree.Element(f"{{{NS_RESULTAT}}}RESULTAT", nsmap=RESULT_NSMAP)
    cr = _r(root, "CR")
    _r(cr, "CodeCR", code.value)
    _r(cr, "LibelleCR", code.label)
    if individual is not None:
        block = _r(root, "INDIVIDU")
        _ins(block, "INSACTIF", individual.active, dated=False)
        for old in individual.history:
            _ins(block, "INSHISTO", old, dated=True)
        _tiq(block, individual, tiq_prenom=tiq_prenom)
    return root


def result_envelope(code: CodeCR, individual: Individual | None = None, *, tiq_prenom: bool = False) -> bytes:
    """The whole answer: a SOAP 1.2 envelope with no Header around :func:`result`."""
    return envelope(result(code, individual, tiq_prenom=tiq_prenom))
