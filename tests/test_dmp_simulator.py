"""The DMP simulator against the official example messages: every example request is accepted and answered in
the shape of the official answer; each one broken in one field is refused with the DMP's error for that field.

The examples' VIHFs are from 2019 and unsigned or edited after signing: the simulator accepts them only as
known test vectors (``accept_example_vectors``) with its clock pinned to each VIHF's IssueInstant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.dataset import load_dataset
from esante.simulators.dmp import DmpSimulator
from esante.simulators.dmp.notes import DmpNotes
from esante.simulators.kits.ihe_xds.ebrim import RIM
from esante.simulators.kits.soap import SOAP11_NS, SOAP12_NS
from tests.dmp_examples import EXAMPLES, ORDER, PATHS, SOAP12, TD_REQUESTS, Dmp, official_answer, running_dmp


@pytest.fixture
def dmp(tmp_path: Path) -> Iterator[Dmp]:
    with running_dmp(tmp_path, legacy_patient_access=True) as running:
        yield running


def _official_answer(request_name: str) -> etree._Element:
    return official_answer(request_name).body


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _success(body: etree._Element) -> str | None:
    """What says "done" in an answer: HL7 acknowledgement, service status or ebRS status (None if none)."""
    for element in body.iter():
        if not isinstance(element.tag, str):
            continue
        name = _local(element)
        if name == "acknowledgement":
            code = element.get("typeCode") or (element.find("{urn:hl7-org:v3}typeCode").get("code"))
            return code
        if name == "status" and element.text:
            return element.text
        if name in ("RegistryResponse", "AdhocQueryResponse") and element.get("status"):
            return element.get("status").rsplit(":", 1)[-1]
    return None


def test_every_official_example_request_is_answered_like_the_official_answer(dmp: Dmp) -> None:
    assert len(ORDER) == len(TD_REQUESTS) == 16
    for name in ORDER:
        raw = (EXAMPLES / name).read_bytes()
        body = dmp.post(raw)
        official = _official_answer(name)
        assert _local(body) == _local(official), name
        if name.startswith("TD0.5"):  # the 2019 example predates matrix v1.8: TD0.5 is régulation only now
            assert _success(body) == "AE" and "DMPAccessDeniedByRightsService" in etree.tostring(body).decode()
            continue
        assert _success(body) == _success(official), (name, etree.tostring(body)[:1500])
    closed = dmp.simulator.records.get("207058575627097")
    assert closed is not None and closed.status == "closed"  # TD1.4 closed it, and the state stays


def test_the_official_feed_is_stored_then_found_and_retrieved(dmp: Dmp) -> None:
    dmp.post((EXAMPLES / "TD2.1 - Alimentation_requete.xml").read_bytes())
    feed = [notes for e in dmp.journal() if (notes := DmpNotes.read(e)).td == "TD2.1"][-1]
    assert feed.error is None and feed.stored and feed.findings is not None
    assert all(f.severity != "error" for f in feed.findings)
    stored = dmp.simulator.registry.by_unique(feed.stored[0])
    assert stored is not None and b"ClinicalDocument" in stored.content
    found = dmp.post((EXAMPLES / "TD3.1 - Recherche de document_requete.xml").read_bytes())
    ids = [e.get("id") for e in found.iter(f"{{{RIM}}}ExtrinsicObject")]
    assert stored.entry.id in ids


# -- one field broken, one error -------------------------------------------------------------------------
WSA = "http://www.w3.org/2005/08/addressing"
TD02 = "TD0.2 - Test d'existence_requete.xml"


def _without(raw: bytes, pattern: bytes) -> bytes:
    changed = re.sub(pattern, b"", raw, count=1, flags=re.S)
    assert changed != raw, pattern
    return changed


def _fault(dmp: Dmp, raw: bytes, **kwargs: str) -> tuple[str, str]:
    response = dmp.send(raw, **kwargs)
    assert response.status_code == 400, response.text[:500]  # a Sender fault (SOAP 1.2 HTTP binding)
    envelope = etree.fromstring(response.content)
    subcode = envelope.findtext(f".//{{{SOAP12_NS}}}Subcode/{{{SOAP12_NS}}}Value")
    return subcode.rsplit(":", 1)[-1], envelope.findtext(f".//{{{SOAP12_NS}}}Text")


@pytest.mark.parametrize("header", ["MessageID", "Action"])
def test_a_missing_required_addressing_header_is_a_fault(dmp: Dmp, header: str) -> None:
    broken = _without((EXAMPLES / TD02).read_bytes(), _header_pattern(header))
    subcode, text = _fault(dmp, broken, path=PATHS["urn:hl7-org:v3:PRPA_IN201307UV02"])
    assert subcode == "MessageAddressingHeaderRequired" and header in text


def _header_pattern(header: str) -> bytes:
    name = header.encode()
    return rb"<" + name + rb"[ >].*?</" + name + rb">|<" + name + rb"[^>]*/>"


@pytest.mark.parametrize("header", ["To", "ReplyTo"])
def test_an_optional_addressing_header_may_be_left_out(dmp: Dmp, header: str) -> None:
    """WS-Addressing 1.0 defaults both to anonymous; ANS's own client DRIMbox sends no ReplyTo."""
    body = dmp.post(_without((EXAMPLES / TD02).read_bytes(), _header_pattern(header)))
    assert _success(body) == "AA"


MESSAGE_ID = rb"<MessageID[^>]*>[^<]*</MessageID>"
ADDRESSING: dict[str, tuple[Callable[[bytes], bytes], list[str]]] = {
    "Action twice": (lambda r: re.sub(rb"(<Action[^>]*>[^<]*</Action>)", rb"\1\1", r, count=1),
                     ["InvalidAddressingHeader", "InvalidCardinality"]),
    "MessageID empty": (lambda r: re.sub(MESSAGE_ID, b'<MessageID xmlns="http://www.w3.org/2005/08/addressing"/>', r,
                                         count=1), ["InvalidAddressingHeader"]),
    "ReplyTo not anonymous": (lambda r: r.replace(b"<Address>http://www.w3.org/2005/08/addressing/anonymous<",
                                                  b"<Address>https://client.example/replies<"),
                              ["InvalidAddressingHeader", "OnlyAnonymousAddressSupported"]),
    "ReplyTo without Address": (lambda r: re.sub(rb"<Address>[^<]*</Address>", b"", r, count=1),
                                ["InvalidAddressingHeader", "MissingAddressInEPR"]),
}


@pytest.mark.parametrize("case", list(ADDRESSING))
def test_an_invalid_addressing_header_is_the_ws_addressing_fault(dmp: Dmp, case: str) -> None:
    breaks, subcodes = ADDRESSING[case]
    response = dmp.send(breaks((EXAMPLES / TD02).read_bytes()))
    assert response.status_code == 400
    envelope = etree.fromstring(response.content)
    values = [v.text.rsplit(":", 1)[-1] for v in envelope.iter(f"{{{SOAP12_NS}}}Value")]
    assert values == ["Sender", *subcodes], values
    assert envelope.findtext(f".//{{{WSA}}}ProblemHeaderQName").startswith("wsa:")
    assert envelope.findtext(f"{{{SOAP12_NS}}}Header/{{{WSA}}}Action") == f"{WSA}/fault"


def test_an_unknown_header_block_that_must_be_understood_is_a_must_understand_fault(dmp: Dmp) -> None:
    extension = (b'<x:Tracking xmlns:x="urn:example:tracking" soap:mustUnderstand="true">1</x:Tracking>'
                 b'<x:Hint xmlns:x="urn:example:tracking" soap:mustUnderstand="true" '
                 b'soap:role="http://www.w3.org/2003/05/soap-envelope/role/none">2</x:Hint>'
                 b'<x:Note xmlns:x="urn:example:tracking" soap:mustUnderstand="false">3</x:Note>')
    raw = (EXAMPLES / TD02).read_bytes().replace(b"<soap:Header>", b"<soap:Header>" + extension, 1)
    response = dmp.send(raw)
    assert response.status_code == 500  # SOAP 1.2 HTTP binding: env:MustUnderstand
    envelope = etree.fromstring(response.content)
    assert envelope.findtext(f".//{{{SOAP12_NS}}}Code/{{{SOAP12_NS}}}Value") == "soap:MustUnderstand"
    not_understood = envelope.findall(f"{{{SOAP12_NS}}}Header/{{{SOAP12_NS}}}NotUnderstood")
    assert len(not_understood) == 1  # the block for role "none" and the optional one are not processed
    prefix, _, local = not_understood[0].get("qname").partition(":")
    assert (not_understood[0].nsmap[prefix], local) == ("urn:example:tracking", "Tracking")
    # the same blocks without mustUnderstand are ignored, as SOAP 1.2 says
    assert _success(dmp.post(raw.replace(b'soap:mustUnderstand="true"', b""))) == "AA"


def test_a_soap11_envelope_is_a_version_mismatch_in_soap11(dmp: Dmp) -> None:
    """SOAP 1.2 Part 1, Appendix A: the answer is a SOAP 1.1 fault naming SOAP 1.2 in an Upgrade block."""
    raw = (EXAMPLES / TD02).read_bytes().replace(SOAP12_NS.encode(), SOAP11_NS.encode())
    response = dmp.send(raw)
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/xml")
    envelope = etree.fromstring(response.content)
    assert etree.QName(envelope).namespace == SOAP11_NS
    assert envelope.findtext(f"{{{SOAP11_NS}}}Body/{{{SOAP11_NS}}}Fault/faultcode") == "soap:VersionMismatch"
    supported = envelope.find(f"{{{SOAP11_NS}}}Header/{{{SOAP12_NS}}}Upgrade/{{{SOAP12_NS}}}SupportedEnvelope")
    prefix, _, local = supported.get("qname").partition(":")
    assert (supported.nsmap[prefix], local) == (SOAP12_NS, "Envelope")


BROKEN: dict[str, tuple[str, Callable[[bytes], bytes], dict[str, str], str]] = {
    "unknown action": (TD02, lambda r: r.replace(b"urn:hl7-org:v3:PRPA_IN201307UV02", b"urn:ihe:iti:2007:Nothing"),
                       {"path": "/si-dmp-server/v2/services/patient"}, "ActionNotSupported"),
    "wrong service path": (TD02, lambda r: r, {"path": "/si-dmp-server/v2/services/DocumentRegistry_Service"},
                           "ActionNotSupported"),
    "text/xml": (TD02, lambda r: r, {"content_type": "text/xml"}, "DMPInvalidMessage"),
    "no VIHF": (TD02, lambda r: _without(r, rb"<wsse:Security.*?</wsse:Security>"), {}, "VIHF_NOT_FOUND"),
    "VIHF edited": (TD02, lambda r: r.replace(b">SA07^", b">SA01^", 1), {}, "VIHF_UNSIGNED"),
    "reasonCode unknown": (TD02, lambda r: r.replace(b'code="TEST_EXST"', b'code="OTHER"'), {}, "DMPInvalidRequest"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_request_broken_in_one_field_is_a_fault_naming_it(dmp: Dmp, case: str) -> None:
    name, breaks, kwargs, expected = BROKEN[case]
    subcode, text = _fault(dmp, breaks((EXAMPLES / name).read_bytes()), **kwargs)
    assert subcode == expected, text


def test_vihf_examples_are_refused_when_not_known_vectors(tmp_path: Path) -> None:
    simulator = DmpSimulator(load_dataset())  # accept_example_vectors off: the real service's behaviour
    app = create_app(simulator, SimulatorSettings(evidence_path=tmp_path / "e.sqlite"))
    with TestClient(app) as http:
        dmp = Dmp(simulator, http, EvidenceStore(tmp_path / "e.sqlite"))
        subcode, _ = _fault(dmp, (EXAMPLES / TD02).read_bytes())
    assert subcode in ("VIHF_UNSIGNED", "VIHF_SIGNER_UNTRUSTED")


BUSINESS: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "TD0.2 patient is not the VIHF's": (TD02, lambda r: r.replace(b'extension="207058575627097"/>\n',
                                                                   b'extension="285046938321480"/>\n'),
                                        "DMPPatientIdDoesNotMatch"),
    "TD3.1 without status": ("TD3.1 - Recherche de document_requete.xml",
                             lambda r: _without(r, rb'<Slot name="\$XDSDocumentEntryStatus">.*?</Slot>'),
                             "XDSStoredQueryMissingParam"),
    "TD3.1 unknown stored query": ("TD3.1 - Recherche de document_requete.xml",
                                   lambda r: r.replace(b"14d4debf-8f97-4251-9a74-a90016b0af0d",
                                                       b"00000000-0000-0000-0000-000000000000"),
                                   "XDSUnknownStoredQuery"),
    "TD3.2 another repository": ("TD3.2 - Consultation d'un document_requete.xml",
                                 lambda r: r.replace(b"<RepositoryUniqueId>1.2.250.1.213.4.1.1.1.2<",
                                                     b"<RepositoryUniqueId>1.2.3<"), "XDSUnknownRepositoryId"),
    "TD3.2 unknown document": ("TD3.2 - Consultation d'un document_requete.xml",
                               lambda r: r.replace(b"995657292</", b"1</"), "XDSDocumentUniqueIdError"),
    "TD3.3c status is not the document's": ("TD3.3c - Supprimer un document_requete.xml", lambda r: r,
                                            "XDSMetadataUpdateError"),
    "TD0.3 unknown action": ("TD0.3 - Mise a jour de l'autorisation_requete.xml",
                             lambda r: r.replace(b"<action>AJOUT</action>", b"<action>AUTRE</action>"),
                             "DMPInvalidRequest"),
}


@pytest.mark.parametrize("case", list(BUSINESS))
def test_a_business_error_is_answered_in_the_transactions_own_form(dmp: Dmp, case: str) -> None:
    name, breaks, code = BUSINESS[case]
    body = dmp.post(breaks((EXAMPLES / name).read_bytes()))
    text = etree.tostring(body).decode()
    assert code in text, text[:1500]
    assert _success(body) in ("AE", "Failure", "PartialSuccess", code), text[:500]


# -- hostile input ---------------------------------------------------------------------------------------
HOSTILE = Path(__file__).parent / "vectors" / "hostile"


@pytest.mark.parametrize("vector", ["xxe.xml", "billion_laughs.xml", "external_dtd.xml"])
def test_hostile_xml_is_a_clear_fault(dmp: Dmp, vector: str) -> None:
    response = dmp.http.post(PATHS["urn:hl7-org:v3:PRPA_IN201307UV02"], content=(HOSTILE / vector).read_bytes(),
                             headers={"content-type": SOAP12})
    assert response.status_code == 400 and "DMPInvalidMessage" in response.text


def test_a_multipart_body_with_too_many_parts_is_refused(dmp: Dmp) -> None:
    parts = b"".join(b"--b\r\nContent-ID: <p%d>\r\n\r\nx\r\n" % i for i in range(200)) + b"--b--\r\n"
    response = dmp.http.post(PATHS["urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"], content=parts,
                             headers={"content-type": 'multipart/related; boundary="b"; type="application/xop+xml"'})
    assert response.status_code == 400 and "parts" in response.text


# -- the private link of Mon espace santé ----------------------------------------------------------------
def test_a_peer_files_a_document_in_an_open_dmp_with_the_admin_token(tmp_path: Path) -> None:
    import base64

    simulator = DmpSimulator(load_dataset())
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite")
    body = {"ins": "285046938321480", "title": "Mesures", "mime_type": "application/pdf",
            "content_b64": base64.b64encode(b"%PDF-1.4").decode(), "creation_time": "20261123101500",
            "type_code": {"code": "11488-4", "system": "2.16.840.1.113883.6.1", "display": "Note"}, "source": "mes"}
    with TestClient(create_app(simulator, settings)) as http:
        assert http.post("/_peer/documents", json=body).status_code == 401
        auth = {"Authorization": f"Bearer {settings.admin_token}"}
        filed = http.post("/_peer/documents", json=body, headers=auth)
        assert filed.status_code == 201
        stored = simulator.registry.by_unique(filed.json()["unique_id"])
        assert stored is not None and stored.content == b"%PDF-1.4"
        closed = http.post("/_peer/documents", json={**body, "ins": "294025935031191"}, headers=auth)  # P005
        assert closed.status_code == 404
        assert http.post("/_peer/documents", json={**body, "ins": "12"}, headers=auth).status_code == 422
