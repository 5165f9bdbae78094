"""Shared fixtures: a simulator served from a thread, its admin client, and official INSi vectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lxml import etree

from simulators.core.app import SimulatorSettings, create_app
from simulators.core.evidence import EvidenceStore
from simulators.core.server import ServerHandle
from simulators.dataset import load_dataset
from simulators.insi import InsiSimulator
from simulators.insi.protocol import NS_CTXLPS, NS_RECSANS

VECTORS = Path(__file__).parent / "vectors"
SOAP12 = "application/soap+xml; charset=utf-8"
REF_IDAM = "ESANTE-REF-0001"


@dataclass
class RunningSimulator:
    url: str
    token: str
    store: EvidenceStore
    http: httpx.Client

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.http.request(method, f"{self.url}/_admin{path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def post_soap(self, body: bytes, content_type: str = SOAP12) -> httpx.Response:
        return self.http.post(f"{self.url}/lps", content=body, headers={"Content-Type": content_type})


@pytest.fixture
def insi(tmp_path: Path) -> Iterator[RunningSimulator]:
    """The INSi simulator over plain HTTP (CPS-assertion mode), journaling into a fresh store."""
    settings = SimulatorSettings(evidence_path=tmp_path / "evidence.sqlite", max_body_bytes=256 * 1024)
    store = EvidenceStore(settings.evidence_path)
    app = create_app(InsiSimulator(load_dataset()), settings, store)
    with ServerHandle(app) as server, httpx.Client(timeout=10) as http:
        yield RunningSimulator(server.url, settings.admin_token, store, http)


def official_request(*, idam: str = REF_IDAM, birth_name: str | None = None, first_names: list[str] | None = None,
                     sex: str | None = None, birth_date: str | None = None) -> bytes:
    """The official INSi example request, with the IDAM and traits replaced as asked."""
    root = etree.fromstring((VECTORS / "insi_official_request.xml").read_bytes())
    root.find(f".//{{{NS_CTXLPS}}}IDAM").text = idam
    body = root.find(f".//{{{NS_RECSANS}}}RECSANSVITALE")
    replacements = {"NomNaissance": birth_name, "Sexe": sex, "DateNaissance": birth_date}
    for name, value in replacements.items():
        if value is not None:
            body.find(f"{{{NS_RECSANS}}}{name}").text = value
    if first_names is not None:
        body.find(f"{{{NS_RECSANS}}}Prenom").text = " ".join(first_names)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
