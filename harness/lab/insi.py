"""INSi requests for an editor's own tests, so that a test need not copy a message out of an evidence bundle.

Both are built from the official example request of the DMP editors' package (``insi_request.yaml`` beside this
module says which, and what was taken out): its header blocks are kept and filled afresh (new ids, the time,
the software), and its body is the search asked for. Nothing here comes from the simulator: what the test
sends is what a real client sends, and the simulator judges it as it judges any client::

    request = traits_request(patient="P001")             # a test patient of the data set, or traits by hand
    answer = esante_insi.http.post(request.path, content=request.body, headers=request.headers)

The requests carry no ``wsse:Security``: they are for the mutual-TLS endpoint, where the software is known by its
``INSI-AUTO`` certificate (``esante_insi.http`` presents one).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files

import yaml
from lxml import etree

from esante.simulators.dataset import load_dataset
from esante.simulators.insi.protocol import NS_CTXBAM, NS_CTXLPS, NS_RECSANS, NS_RECVIT, SERVICE_PATH, Operation

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
NS = {"soap": SOAP12, "bam": NS_CTXBAM, "lps": NS_CTXLPS, "wsa": WSA}


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A SOAP 1.2 request, ready to post: ``client.post(request.path, content=request.body,
    headers=request.headers)``."""

    path: str
    body: bytes
    headers: dict[str, str]
    operation: str


@dataclass(frozen=True, slots=True)
class Software:
    """Who sends the request, as ``ContexteLPS`` names it; the IDAM must be an authorised software of the data
    set (else the teleservice answers ``desir_550``): default, the first one there."""

    idam: str | None = None
    name: str = "esante-lab-request"
    version: str = "1.0.0"
    instance: str = "00000000-0000-4000-8000-000000000000"
    emitter: str = "899900063480"  # the official example's Emetteur

    def authorised_idam(self, dataset: str) -> str:
        return self.idam or next(lps.idam for lps in load_dataset(dataset).lps if lps.authorised)


@cache
def _template() -> bytes:
    text = files("esante.harness.lab").joinpath("insi_request.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["envelope"].encode("utf-8")


def traits_request(*, patient: str | None = None, birth_name: str | None = None,
                   first_names: Sequence[str] | str | None = None, sex: str | None = None,
                   birth_date: str | None = None, birth_place: str | None = None, software: Software | None = None,
                   dataset: str = "default", message_id: str | None = None) -> SoapRequest:
    """``rechercherInsAvecTraitsIdentite``: the traits given, or those of the data set's ``patient`` (its first
    first name, as a software asks first) with the traits given replacing theirs."""
    if patient is not None:
        known = load_dataset(dataset).patient(patient)
        birth_name = birth_name or known.birth_name
        first_names = first_names or known.first_names[:1]
        sex, birth_date = sex or known.sex, birth_date or known.birth_date
        birth_place = birth_place or known.birth_place
    if not (birth_name and first_names and sex and birth_date):
        raise ValueError("a traits search needs a birth name, a first name, the sex and the birth date "
                         "(or a patient of the data set)")
    body = etree.Element(Operation.TRAITS.body_tag, nsmap={"ins": NS_RECSANS})
    _add(body, NS_RECSANS, "NomNaissance", birth_name)
    for name in [first_names] if isinstance(first_names, str) else first_names:
        _add(body, NS_RECSANS, "Prenom", name)
    _add(body, NS_RECSANS, "Sexe", sex)
    _add(body, NS_RECSANS, "DateNaissance", birth_date)
    if birth_place:
        _add(body, NS_RECSANS, "LieuNaissance", birth_place)
    return _request(Operation.TRAITS, body, software or Software(), dataset, message_id)


def vitale_request(*, patient: str | None = None, nir: str | None = None, key: str | None = None,
                   birth_date: str | None = None, birth_name: str | None = None, rank: int | None = None,
                   software: Software | None = None, dataset: str = "default",
                   message_id: str | None = None) -> SoapRequest:
    """``rechercherInsAvecCarteVitale``: what a software reads on a carte Vitale (the holder's NIR and key, the
    beneficiary's birth date and rank), given, or from the data set's ``patient``."""
    if patient is not None:
        known = load_dataset(dataset).patient(patient)
        if known.vitale is None:
            raise ValueError(f"patient {patient} has no carte Vitale in the data set {dataset!r}")
        nir, key = nir or known.vitale.holder_nir, key or known.vitale.holder_key
        birth_date, rank = birth_date or known.birth_date, rank or known.vitale.rank
        birth_name = birth_name or known.birth_name
    if not (nir and birth_date):
        raise ValueError("a carte Vitale search needs the NIR and the birth date (or a patient of the data set)")
    body = etree.Element(Operation.VITALE.body_tag, nsmap={"vit": NS_RECVIT})
    matricule = _add(body, NS_RECVIT, "MatriculeIndividu")
    _add(matricule, NS_RECVIT, "NumIdentifiant", nir)
    if key:
        _add(matricule, NS_RECVIT, "Cle", key)
    if birth_name:
        _add(body, NS_RECVIT, "NomNaissance", birth_name)
    _add(body, NS_RECVIT, "DateNaissance", birth_date)
    _add(body, NS_RECVIT, "RangNaissance", str(rank or 1))
    return _request(Operation.VITALE, body, software or Software(), dataset, message_id,
                    beneficiary=(birth_date, rank or 1))


def _request(operation: Operation, body: etree._Element, software: Software, dataset: str, message_id: str | None,
             beneficiary: tuple[str, int] | None = None) -> SoapRequest:
    """The official envelope with its header filled for this call and ``body`` in place of its search."""
    envelope = etree.fromstring(_template(), etree.XMLParser(resolve_entities=False, no_network=True))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for context in ("bam:ContexteBAM", "lps:ContexteLPS"):
        _set(envelope, f"soap:Header/{context}/*[local-name()='Id']", str(uuid.uuid4()))
        _set(envelope, f"soap:Header/{context}/*[local-name()='Temps']", now)
        _set(envelope, f"soap:Header/{context}/*[local-name()='Emetteur']", software.emitter)
    _set(envelope, "soap:Header/wsa:MessageID", message_id or f"uuid:{uuid.uuid4()}")
    _set(envelope, "soap:Header/wsa:Action", operation.action)
    for field, value in (("IDAM", software.authorised_idam(dataset)), ("Version", software.version),
                         ("Instance", software.instance), ("Nom", software.name)):
        _set(envelope, f"soap:Header/lps:ContexteLPS/lps:LPS/lps:{field}", value)
    if beneficiary is not None:  # a carte Vitale search names the beneficiary in ContexteBAM's COUVERTURE
        block = _add(envelope.find("soap:Header/bam:ContexteBAM/bam:COUVERTURE", NS), NS_CTXBAM, "BENEFICIAIRE")
        _add(block, NS_CTXBAM, "DateNai", beneficiary[0])
        _add(block, NS_CTXBAM, "Rang", str(beneficiary[1]))
    holder = envelope.find("soap:Body", NS)
    holder[0] = body
    return SoapRequest(SERVICE_PATH, etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
                       {"Content-Type": CONTENT_TYPE}, operation.value)


def _add(parent: etree._Element | None, namespace: str, tag: str, text: str | None = None) -> etree._Element:
    assert parent is not None
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}")
    element.text = text
    return element


def _set(envelope: etree._Element, path: str, value: str) -> None:
    found = envelope.xpath(path, namespaces=NS)
    assert len(found) == 1, f"the official request has no single {path}"
    found[0].text = value
