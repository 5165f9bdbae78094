"""DMP figures for ``benchmarks/bench.py dmp`` (loopback only):

* ``feeds_per_s`` — ITI-41 feeds (TD2.1) per second through ``esante sim dmp`` in its own process, each with
  a ~100 kB CDA (an N1 document: a PDF in a CDA), a signed VIHF verified against the test PKI, the rights
  matrix, the CI-SIS header, metadata, agreement and XAdES checks, storage and the journal;
* ``search_per_s_by_registry_size`` — FindDocuments (TD3.1) queries per second for one patient's 20
  documents while the registry holds 1,000, 10,000 and 100,000 documents (in process, through the ASGI app):
  flat figures show that the cost does not grow with the registry's size;
* ``memory_per_100k_documents_mb`` — what 100,000 stored documents take (entries parsed from their ebRIM
  XML, indexes, 1 kB of content each), measured with tracemalloc.
"""

from __future__ import annotations

import base64
import http.client
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from lxml import etree

from esante.harness.reference.dmp.documents import Feed, build_feed
from esante.harness.reference.dmp.parties import Parties, lab_parties
from esante.harness.reference.dmp.vihf import signed_vihf
from esante.harness.reference.pdf import minimal_pdf
from esante.simulators.core.pki import TestCA
from esante.simulators.dataset import Dataset, load_dataset
from esante.simulators.dmp.protocol import REGISTRY_PATH, REPOSITORY_PATH
from esante.simulators.kits.ihe_xds.ebrim import RIM
from esante.simulators.kits.ihe_xds.ebrs import FIND_DOCUMENTS, QUERY, XDSB
from esante.simulators.kits.soap import WSA_NS, WSSE_NS, envelope

LPS = {"id": "ESANTE-REF", "name": "esante-reference-candidate", "version": "1.0.0", "homologation": "ESANTE-REF-0001"}
FEEDS = 240
LOAD_THREADS = 2


def _envelope(action: str, body: etree._Element, vihf: etree._Element) -> bytes:
    headers = []
    for name, value in (("Action", action), ("MessageID", f"urn:uuid:{uuid.uuid4()}"), ("To", "http://dmp.test")):
        element = etree.Element(f"{{{WSA_NS}}}{name}")
        element.text = value
        headers.append(element)
    reply_to = etree.Element(f"{{{WSA_NS}}}ReplyTo")
    etree.SubElement(reply_to, f"{{{WSA_NS}}}Address").text = "http://www.w3.org/2005/08/addressing/anonymous"
    security = etree.Element(f"{{{WSSE_NS}}}Security")
    security.append(vihf)
    return envelope(body, [*headers, reply_to, security])


def _parties(ca: TestCA, dataset: Dataset) -> Parties:
    """A professional acting for their structure (INDIRECTE_RENFORCEE), and a patient."""
    return lab_parties(ca, dataset, professional_id="PS002")


def _vihf(parties: Parties) -> etree._Element:
    return signed_vihf(parties.professional, parties.ins, mode="INDIRECTE_RENFORCEE", lps=LPS, cps=None,
                       structure=parties.structure_signer)


def _feed(parties: Parties, kind: str, pdf: bytes | None = None) -> Feed:
    signer = parties.structure_certificate
    return build_feed(parties.patient, parties.professional, parties.structure, kind=kind,
                      title="Compte rendu (benchmark)", pdf=pdf, certificate=(signer.cert_pem, signer.key_pem))


def _patient_cx(parties: Parties) -> str:
    ins = parties.patient["ins"]
    return f"{ins['nir']}{ins['key']}^^^&{ins['oid']}&ISO^NH"


def feed_request(parties: Parties, pdf: bytes) -> tuple[bytes, int]:
    """One ITI-41 request (documents inline, base64) and the size of its CDA."""
    feed = _feed(parties, "N1", pdf)
    body = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={None: XDSB})
    body.append(feed.metadata_element)
    for entry_id, data in feed.documents.items():
        etree.SubElement(body, f"{{{XDSB}}}Document", id=entry_id).text = base64.b64encode(data).decode()
    return (_envelope("urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b", body, _vihf(parties)),
            len(feed.documents[feed.document_entry_id]))


def search_request(parties: Parties) -> bytes:
    query = etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={None: RIM, "q": QUERY})
    etree.SubElement(query, f"{{{QUERY}}}ResponseOption", returnComposedObjects="true", returnType="LeafClass")
    adhoc = etree.SubElement(query, f"{{{RIM}}}AdhocQuery", id=FIND_DOCUMENTS)
    for name, value in (("$XDSDocumentEntryPatientId", f"'{_patient_cx(parties)}'"),
                        ("$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')")):
        slot = etree.SubElement(adhoc, f"{{{RIM}}}Slot", name=name)
        etree.SubElement(etree.SubElement(slot, f"{{{RIM}}}ValueList"), f"{{{RIM}}}Value").text = value
    return _envelope("urn:ihe:iti:2007:RegistryStoredQuery", query, _vihf(parties))


def _post_all(port: int, bodies: list[bytes]) -> float:
    """Send every body once over LOAD_THREADS keep-alive connections; feeds per second. Each must succeed."""
    chunks = [bodies[i::LOAD_THREADS] for i in range(LOAD_THREADS)]
    failures: list[str] = []

    def worker(chunk: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for body in chunk:
            conn.request("POST", REPOSITORY_PATH, body=body, headers={"Content-Type": "application/soap+xml"})
            answer = conn.getresponse().read()
            if b"ResponseStatusType:Success" not in answer:
                failures.append(answer[:600].decode("utf-8", "replace"))
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} feed(s) refused; first: {failures[0]}")
    return len(bodies) / elapsed


def bench_feeds(tmp: Path, spawn: Any, free_port: Any, wait_healthy: Any) -> dict[str, float]:
    pki = tmp / "dmp-pki"
    ca = TestCA.load_or_create(pki)
    parties = _parties(ca, load_dataset())
    pdf = minimal_pdf("Compte rendu de benchmark. " * 2800)  # a CDA of about 100 kB once in base64
    requests = [feed_request(parties, pdf) for _ in range(FEEDS + 20)]
    esante = str(Path(sys.executable).with_name("esante"))
    port = free_port()
    sim = spawn([esante, "sim", "dmp", "--port", str(port), "--evidence", str(tmp / "dmp.sqlite"),
                 "--pki-dir", str(pki)])
    try:
        wait_healthy(port, "/_admin/health")
        _post_all(port, [body for body, _ in requests[:20]])  # warm-up
        rate = _post_all(port, [body for body, _ in requests[20:]])
    finally:
        sim.terminate()
        sim.wait()
    return {"feeds_per_s": round(rate, 1), "cda_bytes": requests[0][1], "feeds": FEEDS,
            "client_threads": LOAD_THREADS}


def _fill(simulator: Any, template: Any, total: int, patient_cx: str) -> None:
    """``total`` documents: 20 for the benchmark's patient, the others spread over other INS values."""
    registry = simulator.registry
    for i in range(total):
        owner = patient_cx if i < 20 else f"{100000000000 + i % 50000:013d}97^^^&1.2.250.1.213.1.4.10&ISO^NH"
        registry.add(replace(template, id=f"urn:uuid:{uuid.UUID(int=i)}", lid=f"urn:uuid:{uuid.UUID(int=i)}",
                             unique_id=f"2.25.{i}", patient_id=owner), b"", "bench")


def bench_search(tmp: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from esante.simulators.core.app import create_app
    from esante.simulators.core.evidence import EvidenceStore
    from esante.simulators.core.runtime import SimulatorSettings
    from esante.simulators.dmp import DmpSimulator
    from esante.simulators.kits.ihe_xds.ebrim import parse_submission

    pki = tmp / "dmp-pki"
    dataset = load_dataset()
    parties = _parties(TestCA.load_or_create(pki), dataset)
    patient_cx = _patient_cx(parties)
    template = parse_submission(_feed(parties, "N3").metadata_element).documents[0]
    body = search_request(parties)
    rates: dict[str, float] = {}
    for size in (1_000, 10_000, 100_000):
        simulator = DmpSimulator(dataset)
        settings = SimulatorSettings(evidence_path=tmp / f"search-{size}.sqlite", pki_dir=pki)
        app = create_app(simulator, settings, EvidenceStore(settings.evidence_path))
        _fill(simulator, template, size, patient_cx)
        with TestClient(app) as client:
            def once() -> None:
                answer = client.post(REGISTRY_PATH, content=body, headers={"content-type": "application/soap+xml"})
                if answer.text.count("ExtrinsicObject ") < 20:
                    raise RuntimeError(f"search did not find the 20 documents: {answer.text[600:2000]}")
            for _ in range(10):
                once()
            runs = []
            for _ in range(3):
                started, count = time.perf_counter(), 0
                while time.perf_counter() - started < 1.5:
                    once()
                    count += 1
                runs.append(count / (time.perf_counter() - started))
        rates[str(size)] = round(statistics.median(runs), 1)
    return {"per_s": rates, "documents_found": 20,
            "ratio_100k_over_1k": round(rates["100000"] / rates["1000"], 3)}


def bench_memory() -> dict[str, Any]:
    from esante.simulators.dmp.documents.registry import DocumentRegistry
    from esante.simulators.kits.ihe_xds.ebrim import document_entry_element, parse_document_entry, parse_submission

    feed = _feed(_parties(TestCA.create(), load_dataset()), "N3")
    xml = etree.tostring(document_entry_element(parse_submission(feed.metadata_element).documents[0]))
    total = 100_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    registry = DocumentRegistry()
    for i in range(total):
        data = xml.replace(b"Document01", f"urn:uuid:{uuid.UUID(int=i)}".encode())
        entry = parse_document_entry(etree.fromstring(data))
        registry.add(replace(entry, unique_id=f"2.25.{i}"), bytes(1024), "bench")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"documents": total, "total_mb": round(used / 2**20, 1), "content_bytes_each": 1024,
            "metadata_and_index_mb": round((used - total * 1024) / 2**20, 1)}


def run(tmp: Path, spawn: Any, free_port: Any, wait_healthy: Any) -> dict[str, Any]:
    return {"iti41": bench_feeds(tmp, spawn, free_port, wait_healthy), "iti18": bench_search(tmp),
            "memory_per_100k_documents": bench_memory()}


if __name__ == "__main__":  # pragma: no cover - run through bench.py
    subprocess.run([sys.executable, str(Path(__file__).with_name("bench.py")), "dmp"], check=True)
