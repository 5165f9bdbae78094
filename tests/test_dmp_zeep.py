"""An independent SOAP client, zeep, driven by the DMP's own registry WSDL (annex v2.01.04,
``XDS.b_DocumentRegistry.wsdl`` and the ebRS schemas it imports) against the DMP simulator: ITI-18 as a
client generated from the WSDL sends it (zeep's WS-Addressing: Action, MessageID and To, no ReplyTo), its
answers parsed with the WSDL's types (strict), a refusal's ``AdhocQueryResponse`` too, and the SOAP 1.2 faults
(MustUnderstand, the WS-Addressing fault of a non-anonymous ReplyTo) read as zeep reads a fault.

The VIHF is the official TD3.1 example's, accepted as a known test vector with the simulator's clock pinned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from lxml import etree

from esante.simulators.core.app import create_app
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.dmp import DmpSimulator
from esante.simulators.dmp.protocol import REGISTRY_ALIAS, REGISTRY_PATH
from esante.simulators.kits.ihe_xds.ebrs import FIND_DOCUMENTS
from tests.dmp_examples import EXAMPLES, seed_official_documents
from tests.dmp_schemas import ANNEX, require_annex

zeep = pytest.importorskip("zeep", reason="zeep is a test dependency (pip install -e '.[test]')")
requests = pytest.importorskip("requests")
from zeep.exceptions import Fault  # noqa: E402
from zeep.transports import Transport  # noqa: E402

WSDL = ANNEX / "wsdl" / "XDS.b_DocumentRegistry.wsdl"
BINDING = "{urn:ihe:iti:xds-b:2007}DocumentRegistry_Binding_Soap12"
TD31 = EXAMPLES / "TD3.1 - Recherche de document_requete.xml"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSA = "http://www.w3.org/2005/08/addressing"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
PATIENT = "'207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH'"
APPROVED = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"


class OfflineTransport(Transport):
    """zeep's transport reading the WSDL's schemas from disk only (the annex's xml.xsd names W3C URLs it need
    not fetch)."""

    def load(self, url: str) -> bytes:
        if url.startswith(("http:", "https:")):
            raise AssertionError(f"the WSDL made zeep fetch {url}")
        return super().load(url)


@dataclass
class Registry:
    service: Any
    security: etree._Element
    history: Any

    def query(self, *slots: tuple[str, str], headers: list[etree._Element] | None = None) -> Any:
        return self.service.DocumentRegistry_RegistryStoredQuery(
            ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
            AdhocQuery={"id": FIND_DOCUMENTS, "Slot": [{"name": name, "ValueList": {"_value_1": [{"Value": value}]}}
                                                       for name, value in slots]},
            _soapheaders=[self.security, *(headers or [])])


def _official_security() -> tuple[etree._Element, datetime]:
    raw = TD31.read_bytes()
    security = etree.fromstring(raw).find(f".//{{{WSSE}}}Security")
    issued = re.search(rb'IssueInstant="([^"]+)"', raw)
    assert security is not None and issued is not None
    return security, datetime.fromisoformat(issued.group(1).decode().replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DmpSimulator]]:
    require_annex()
    tmp = tmp_path_factory.mktemp("dmpzeep")
    simulator = DmpSimulator(load_dataset(), accept_example_vectors=True)
    with ServerHandle(create_app(simulator, SimulatorSettings(evidence_path=tmp / "e.sqlite"))) as handle:
        yield handle.url, simulator


@pytest.fixture
def registry(server: tuple[str, DmpSimulator]) -> Registry:
    url, simulator = server
    simulator.reset()
    seed_official_documents(simulator)
    security, issued = _official_security()
    simulator.clock = issued + timedelta(minutes=1)
    session = requests.Session()
    session.trust_env = False
    # The WSDL declares wsaw:Action, so zeep writes WS-Addressing itself (adding its plugin too would send
    # every header twice, which the DMP refuses: wsa:InvalidCardinality). zeep reads no substitution group
    # (rim:Identifiable → rim:ExtrinsicObject) in strict mode: the entries are counted on the envelope.
    history = zeep.plugins.HistoryPlugin()
    client = zeep.Client(str(WSDL), transport=OfflineTransport(session=session), plugins=[history],
                         settings=zeep.Settings(strict=False))
    return Registry(client.create_service(BINDING, f"{url}{REGISTRY_PATH}"), security, history)


def test_a_find_documents_of_a_generated_client_is_answered_and_read(registry: Registry) -> None:
    answer = registry.query(("$XDSDocumentEntryPatientId", PATIENT), ("$XDSDocumentEntryStatus", APPROVED))
    assert answer.status.endswith(":Success") and answer.totalResultCount == 21
    received = registry.history.last_received["envelope"]
    assert len(received.findall(".//{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}ExtrinsicObject")) == 21


def test_the_drimbox_service_name_serves_the_registry_too(registry: Registry, server: tuple[str, DmpSimulator]) -> None:
    registry.service._binding_options["address"] = f"{server[0]}{REGISTRY_ALIAS}"
    answer = registry.query(("$XDSDocumentEntryPatientId", PATIENT), ("$XDSDocumentEntryStatus", APPROVED))
    assert answer.status.endswith(":Success")


def test_a_refused_query_is_read_with_its_error_code(registry: Registry) -> None:
    answer = registry.query(("$XDSDocumentEntryPatientId", PATIENT))
    assert answer.status.endswith(":Failure")
    errors = answer.RegistryErrorList.RegistryError
    assert [e.errorCode for e in errors] == ["XDSStoredQueryMissingParam"]


def _fault_of(registry: Registry, header: etree._Element) -> Fault:
    with pytest.raises(Fault) as raised:
        registry.query(("$XDSDocumentEntryPatientId", PATIENT), ("$XDSDocumentEntryStatus", APPROVED),
                       headers=[header])
    return raised.value


def test_a_header_block_the_dmp_must_but_cannot_understand_is_a_must_understand_fault(registry: Registry) -> None:
    header = etree.Element("{urn:example:trace}Trace", {f"{{{SOAP12}}}mustUnderstand": "true"},
                           nsmap={"t": "urn:example:trace"})
    fault = _fault_of(registry, header)
    assert fault.code is not None and fault.code.endswith("MustUnderstand")


def test_a_reply_address_other_than_anonymous_is_the_ws_addressing_fault(registry: Registry) -> None:
    reply_to = etree.Element(f"{{{WSA}}}ReplyTo", nsmap={"wsa": WSA})
    etree.SubElement(reply_to, f"{{{WSA}}}Address").text = "https://client.example/replies"
    fault = _fault_of(registry, reply_to)
    assert fault.code is not None and fault.code.endswith("Sender")
    assert [s.localname if hasattr(s, "localname") else str(s).rsplit(":", 1)[-1] for s in fault.subcodes or []] == \
        ["InvalidAddressingHeader", "OnlyAnonymousAddressSupported"]


def test_zeep_sends_no_reply_to_and_the_dmp_accepts_it(registry: Registry) -> None:
    """What a generated client sends: WS-Addressing Action, MessageID and To only (as DRIMbox does)."""
    registry.query(("$XDSDocumentEntryPatientId", PATIENT), ("$XDSDocumentEntryStatus", APPROVED))
    sent = registry.history.last_sent["envelope"]
    assert sent.find(f".//{{{WSA}}}MessageID") is not None and sent.find(f".//{{{WSA}}}ReplyTo") is None
    assert registry.history.last_received["envelope"].findtext(f".//{{{WSA}}}Action") == \
        "urn:ihe:iti:2007:RegistryStoredQueryResponse"
