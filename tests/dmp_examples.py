"""The official DMP example messages (shared/research/dmp-examples, copied under tests/vectors/dmp/) as
test vectors: where they are and how to read them."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from lxml import etree

from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import Exchange, load_exchanges
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.dataset import load_dataset
from esante.simulators.dmp import DmpSimulator
from esante.simulators.dmp.protocol import TRANSACTIONS
from esante.simulators.kits.ihe_xds.ebrim import RIM, parse_document_entry
from esante.simulators.kits.mtom import content_id, parse_related

EXAMPLES = Path(__file__).parent / "vectors" / "dmp"
VIHF_SAMPLES = sorted(path.name for path in EXAMPLES.glob("VIHF_*.xml"))
TD_REQUESTS = sorted(path.name for path in EXAMPLES.glob("TD*_requete.xml"))
PATHS = {t.action: t.paths[0] for t in TRANSACTIONS.values()}
TD_ACTIONS = {t.td: t.action for t in TRANSACTIONS.values()}


def example_bytes(name: str) -> bytes:
    """The message as XML bytes. Two VIHF samples are published in ISO-8859-1 with no encoding declaration
    (not well-formed as UTF-8): they are read as Latin-1. The TD2.1 request is a MIME part: its envelope is
    cut out."""
    data = (EXAMPLES / name).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")
    if data.startswith(b"--"):
        data = data[data.index(b"<soap:Envelope"):data.rindex(b"</soap:Envelope>") + len(b"</soap:Envelope>")]
    return data


def example(name: str) -> etree._Element:
    return etree.fromstring(example_bytes(name))


# -- replaying the examples on a running simulator -------------------------------------------------------
SOAP12 = "application/soap+xml; charset=utf-8"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSA_NS = "http://www.w3.org/2005/08/addressing"
XOP_NS = "http://www.w3.org/2004/08/xop/include"
TD21_CONTENT_TYPE = ('multipart/related; type="application/xop+xml"; start="<rootpart@soapui.org>"; '
                     'start-info="application/soap+xml"; boundary="----=_Part_9_20030738.1554380517598"')
#: Replay order: the existence test first, closing (TD1.4) last, archiving (TD3.3d) before deleting the
#: archived document (TD3.3c), as the official examples were taken in sequence.
ORDER = [name for name in TD_REQUESTS if not name.startswith(("TD1.4", "TD3.3"))] + \
    [name for name in TD_REQUESTS if name.startswith("TD3.3d")] + \
    [name for name in TD_REQUESTS if name.startswith("TD3.3c")] + \
    [name for name in TD_REQUESTS if name.startswith("TD1.4")]


@dataclass
class Answer:
    """An answer as a client reads it: the envelope, its first body element, its MTOM parts by Content-ID."""

    status: int
    envelope: etree._Element
    body: etree._Element
    parts: dict[str, bytes]

    @property
    def action(self) -> str | None:
        return self.envelope.findtext(f"{{{SOAP12_NS}}}Header/{{{WSA_NS}}}Action")

    def inlined(self) -> etree._Element:
        """The body with each ``xop:Include`` replaced by its part in base64, as the schema sees it (XOP)."""
        body = copy.deepcopy(self.body)
        for include in list(body.iter(f"{{{XOP_NS}}}Include")):
            parent = include.getparent()
            parent.remove(include)
            parent.text = base64.b64encode(self.parts[content_id(include.get("href", ""))]).decode()
        return body


def read_answer(content: bytes, content_type: str, status: int = 200) -> Answer:
    parts: dict[str, bytes] = {}
    if content_type.startswith("multipart/related"):
        related = parse_related(content, content_type)
        content, parts = related.root, related.parts
    envelope = etree.fromstring(content)
    body = envelope.find(f"{{{etree.QName(envelope).namespace}}}Body")
    return Answer(status, envelope, next(child for child in body if isinstance(child.tag, str)), parts)


def official_answer(request_name: str) -> Answer:
    raw = (EXAMPLES / request_name.replace("_requete.xml", "_reponse.xml")).read_bytes()
    return read_answer(raw, "application/soap+xml")


def seed_official_documents(simulator: DmpSimulator) -> None:
    """The official TD3.1 answer's documents, as the DMP that answered the TD3.x examples held them."""
    response = etree.parse(str(EXAMPLES / "td31_response.xml")).getroot()
    for element in response.iter(f"{{{RIM}}}ExtrinsicObject"):
        simulator.registry.add(parse_document_entry(element), b"<ClinicalDocument/>", "899900063480")


@dataclass
class Dmp:
    """A DMP simulator answering through a test client, with its evidence store."""

    simulator: DmpSimulator
    http: TestClient
    store: EvidenceStore

    def post(self, raw: bytes, *, path: str | None = None, content_type: str | None = None) -> etree._Element:
        """Send a request as the official example does (pinning the clock to its VIHF); the answer's body."""
        return self.answer(raw, path=path, content_type=content_type).body

    def answer(self, raw: bytes, *, path: str | None = None, content_type: str | None = None) -> Answer:
        response = self.send(raw, path=path, content_type=content_type)
        return read_answer(response.content, response.headers["content-type"], response.status_code)

    def send(self, raw: bytes, *, path: str | None = None, content_type: str | None = None) -> httpx.Response:
        issued = re.search(rb'IssueInstant="([^"]+)"', raw)
        if issued:
            moment = datetime.fromisoformat(issued.group(1).decode().replace("Z", "+00:00"))
            self.simulator.clock = moment + timedelta(minutes=1)
        action = re.search(rb"Action[^>]*>([^<]+)<", raw)
        path = path or (PATHS[action.group(1).decode().strip()] if action else PATHS[TD_ACTIONS["TD0.2"]])
        multipart = raw.startswith(b"------")
        return self.http.post(path, content=raw,
                              headers={"content-type": content_type or (TD21_CONTENT_TYPE if multipart else SOAP12)})

    def journal(self) -> list[Exchange]:
        return load_exchanges(self.store)


@contextmanager
def running_dmp(tmp_path: Path, **options: object) -> Iterator[Dmp]:
    """The DMP simulator accepting the official examples' VIHFs, holding the official TD3.1 documents."""
    simulator = DmpSimulator(load_dataset(), accept_example_vectors=True, **options)  # type: ignore[arg-type]
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    app = create_app(simulator, SimulatorSettings(evidence_path=tmp_path / "evidence.sqlite"), store)
    seed_official_documents(simulator)
    with TestClient(app) as http:
        yield Dmp(simulator, http, store)
