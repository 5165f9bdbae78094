"""The reference candidate's DMP part against a running DMP simulator (HTTPS, test PKI).

One simulator serves the module; each test gets a clean DMP (records and registry), no faults and its own
journal context. The part is driven with the parameters the campaign's ``dmp.*`` actions build. The first
part shows the correct behaviour; the second shows each named defect as the simulator sees it.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from pydantic import BaseModel

from esante.harness.actions import load_actions
from esante.harness.campaign import Step
from esante.harness.driver import API_PREFIX, ActionOutcome, ActionReport, read_report
from esante.harness.environment import SimulatorClient
from esante.harness.kits import defects
from esante.harness.reference import create_reference_app
from esante.harness.reference.dmp import DmpPart
from esante.harness.reference.dmp import client as wire
from esante.harness.reference.parts import ReferenceContext
from esante.scenarios.dmp import actions as dmp_actions
from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.faults import FaultKind, FaultRule
from esante.simulators.core.journal import Exchange
from esante.simulators.core.pki import TestCA
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.dmp import DmpSimulator
from tests.dmp_examples import Answer, read_answer
from tests.dmp_schemas import ANNEX, answer_problems

ANNEX_PRESENT = (ANNEX / "readme.txt").is_file()

DS = load_dataset()
BUILDERS: dict[str, Callable[[Step, Any], BaseModel]] = {
    "dmp.test_existence": dmp_actions.test_existence, "dmp.authorise": dmp_actions.authorise,
    "dmp.read_admin": dmp_actions.read_admin, "dmp.feed": dmp_actions.feed, "dmp.search": dmp_actions.search,
    "dmp.retrieve": dmp_actions.retrieve, "dmp.update": dmp_actions.update,
    "dmp.search_patient": dmp_actions.search_patient,
}


@dataclass
class Lab:
    url: str
    pki_dir: Path
    simulator: DmpSimulator
    admin: SimulatorClient
    case_id: str = ""

    def exchanges(self) -> list[Exchange]:
        return self.admin.journal("dmpref", self.case_id)

    def tds(self) -> list[str | None]:
        return [e.notes.get("td") for e in self.exchanges()]

    def faults(self, *rules: FaultRule) -> None:
        self.admin.set_faults(list(rules))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("dmpref")
    pki_dir = tmp / "pki"
    settings = SimulatorSettings(evidence_path=tmp / "e.sqlite", pki_dir=pki_dir)
    simulator = DmpSimulator(DS)
    store = EvidenceStore(settings.evidence_path)
    with ServerHandle(create_app(simulator, settings, store), tls=TlsSettings(pki_dir=pki_dir)) as server:
        admin = SimulatorClient("dmp", server.url, settings.admin_token, ca_pem=TestCA.load_or_create(pki_dir).ca_pem)
        yield Lab(server.url, pki_dir, simulator, admin)
        admin.close()
    store.close()


@pytest.fixture
def lab(running: Lab) -> Iterator[Lab]:
    """A clean DMP; afterwards every answer it gave in the test is judged against the DMP's schemas and the
    reply actions of its WSDLs (``tests/dmp_schemas.py``), the reference candidate's requests, correct or
    broken by a defect, replaying every transaction it makes."""
    running.case_id = uuid.uuid4().hex
    running.admin.reset()
    running.admin.set_context("dmpref", running.case_id)
    yield running
    if ANNEX_PRESENT:
        judged = {f"{e.notes.get('td')} #{i}": answer_problems(_answer(e), e.notes.get("action"))
                  for i, e in enumerate(running.exchanges()) if _soap(e)}
        assert {k: v for k, v in judged.items() if v} == {}


def _content_type(exchange: Exchange) -> str:
    return next((v for k, v in exchange.response_headers if k.lower() == "content-type"), "")


def _soap(exchange: Exchange) -> bool:
    """An answer of the DMP itself (not one the harness injected: a dropped call, an HTTP error page)."""
    return exchange.outcome == "answered" and _content_type(exchange).startswith(
        ("application/soap+xml", "text/xml", "multipart/related"))


def _answer(exchange: Exchange) -> Answer:
    return read_answer(exchange.response_body, _content_type(exchange), exchange.status or 0)


class Software:
    """The DMP part as the reference app holds it, with ``defects`` (a plain set of names)."""

    def __init__(self, lab: Lab, defects: tuple[str, ...] = ()) -> None:
        self.part = DmpPart(ReferenceContext(lab.pki_dir, frozenset(defects), "ESANTE-REF-0001",
                                             "esante-reference-candidate", "1.0.0"))
        self.part.reset({"dmp": lab.url})

    def act(self, action: str, patient: str, professional: str = "PS001", **with_: Any) -> ActionReport:
        step = Step.model_validate({"action": action, "patient": patient, "professional": professional,
                                    "with": with_})
        return self.part.act(action, BUILDERS[action](step, DS).model_dump(mode="json"), "http://127.0.0.1")


@pytest.fixture
def software(lab: Lab) -> Iterator[Callable[..., Software]]:
    made: list[Software] = []

    def factory(*defects: str) -> Software:
        made.append(Software(lab, defects))
        return made[-1]

    yield factory
    for made_one in made:
        made_one.part.close()


def _doctor(**with_: Any) -> dict[str, Any]:
    return {"professional": "PS001", "auth": "DIRECTE", **with_}


def _sent_document(exchange: Exchange, number: int = 0) -> bytes:
    """The bytes of the ``number``-th document part of an ITI-41 request, as the DMP received it."""
    content_type = exchange.header("content-type") or ""
    message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                       + exchange.request_body, policy=email.policy.HTTP)
    return message.get_payload()[1 + number].get_payload(decode=True)


# -- correct behaviour --------------------------------------------------------------------------------------
def test_existence_test_reports_open_closed_and_absent_records(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    open_, closed, absent = (s.act("dmp.test_existence", p) for p in ("P001", "P005", "P010"))
    assert open_.outcome == ActionOutcome.FOUND and open_.record is not None
    assert (open_.record.status, open_.record.authorisation, open_.record.treating_doctor) == ("open", "VALIDE", True)
    assert closed.outcome == ActionOutcome.FOUND and closed.record and closed.record.status == "closed"
    assert absent.outcome == ActionOutcome.NOT_FOUND and absent.record and absent.record.status == "absent"
    exchanges = lab.exchanges()
    assert [e.notes["td"] for e in exchanges] == ["TD0.2"] * 3
    first = exchanges[0]
    assert first.header("content-type").startswith("application/soap+xml")
    assert first.notes["vihf"]["mode"] == "INDIRECTE_RENFORCEE" and first.notes["vihf"]["structure"].startswith("1")
    assert first.notes["vihf"]["lps"] == "esante-reference-candidate"


def test_authorise_then_the_existence_test_says_valide(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    before = s.act("dmp.test_existence", "P003", "PS002", auth="DIRECTE")
    assert before.record and before.record.authorisation == "NON_EXISTANTE"
    report = s.act("dmp.authorise", "P003", "PS002", auth="DIRECTE")
    assert report.outcome == ActionOutcome.COMPLETED and report.record and report.record.authorisation == "VALIDE"
    after = s.act("dmp.test_existence", "P003", "PS002", auth="DIRECTE")
    assert after.record and after.record.authorisation == "VALIDE"
    assert lab.tds() == ["TD0.2", "TD0.3", "TD0.2"]
    assert "OU=RPPS" in lab.exchanges()[1].notes["vihf"]["signer"]  # DIRECTE: signed by the CPS


def test_feed_n3_and_n1_then_search_and_retrieve(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    n3 = s.act("dmp.feed", "P001", kind="N3", title="CR N3", **_doctor())
    n1 = s.act("dmp.feed", "P001", kind="N1", title="CR PDF", **_doctor())
    for report, title in ((n3, "CR N3"), (n1, "CR PDF")):
        assert report.outcome == ActionOutcome.COMPLETED, report.message
        assert report.documents and report.documents[0].title == title
        assert report.documents[0].status == "approved" and report.documents[0].confidentiality == ["N"]
    assert lab.tds() == ["TD0.2", "TD2.1", "TD2.1"]  # the existence test once, before the first feed
    feeds = [e for e in lab.exchanges() if e.notes["td"] == "TD2.1"]
    assert all(e.header("content-type").startswith("multipart/related") and e.notes["mtom"] for e in feeds)
    assert [e.notes["stored"][0] for e in feeds] == [n3.documents[0].unique_id, n1.documents[0].unique_id]
    found = s.act("dmp.search", "P001", **_doctor())
    assert found.outcome == ActionOutcome.FOUND and found.documents is not None
    assert [d.unique_id for d in found.documents] == [n3.documents[0].unique_id, n1.documents[0].unique_id]
    opened = s.act("dmp.retrieve", "P001", **_doctor())
    assert opened.outcome == ActionOutcome.COMPLETED and opened.documents
    stored = lab.simulator.registry.by_unique(n1.documents[0].unique_id)
    assert stored is not None and opened.documents[0].sha1 == hashlib.sha1(stored.content).hexdigest()
    assert stored.content == _sent_document(feeds[1])
    assert b"application/pdf" in stored.content and b"JVBERi0" in stored.content  # the PDF, base64 in the CDA


def test_search_filters_by_status(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    s.act("dmp.feed", "P001", title="A", **_doctor())
    assert s.act("dmp.update", "P001", operation="archive", **_doctor()).outcome == ActionOutcome.COMPLETED
    assert s.act("dmp.search", "P001", **_doctor()).outcome == ActionOutcome.NOT_FOUND
    archived = s.act("dmp.search", "P001", statuses=["archived"], **_doctor())
    assert archived.documents and archived.documents[0].status == "archived"
    query = etree.fromstring(lab.exchanges()[-1].request_body)
    values = [v.text for v in query.iter("{*}Value")]
    assert "('urn:asip:ci-sis:2010:StatusType:Archived')" in values


def test_replacement_carries_rplc(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    first = s.act("dmp.feed", "P002", title="v1", **_doctor())
    second = s.act("dmp.feed", "P002", title="v2", replaces="last", **_doctor())
    assert second.outcome == ActionOutcome.COMPLETED, second.message
    assert lab.exchanges()[-1].notes["replaced"] == [first.documents[0].unique_id]
    everything = s.act("dmp.search", "P002", statuses=["approved", "deprecated"], **_doctor())
    assert {(d.title, d.status) for d in everything.documents or []} == {("v1", "deprecated"), ("v2", "approved")}


def test_mask_unmask_hide_show(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    fed = s.act("dmp.feed", "P001", title="CR", **_doctor())
    unique_id = fed.documents[0].unique_id
    expected = {"mask": ["N", "MASQUE_PS"], "unmask": ["N"], "hide_from_patient": ["N", "INVISIBLE_PATIENT"],
                "show_to_patient": ["N"]}
    for operation, codes in expected.items():
        report = s.act("dmp.update", "P001", operation=operation, **_doctor())
        assert report.outcome == ActionOutcome.COMPLETED, report.message
        assert report.documents and report.documents[0].confidentiality == codes
        stored = lab.simulator.registry.by_unique(unique_id)
        assert stored is not None and sorted(c.code for c in stored.entry.confidentiality_codes) == sorted(codes)
    tds = lab.tds()
    assert tds == ["TD0.2", "TD2.1", "TD3.1", "TD3.3a", "TD3.1", "TD3.3a", "TD3.1", "TD3.3b", "TD3.1", "TD3.3b"]
    assert lab.simulator.registry.by_unique(unique_id).entry.version_name == "5"


def test_masked_document_is_hidden_from_another_professional(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    s.act("dmp.feed", "P001", title="secret", confidentiality=["MASQUE_PS"], **_doctor())
    other = s.act("dmp.search", "P001", professional="PS002", auth="DIRECTE")
    assert other.outcome == ActionOutcome.NOT_FOUND, other.message
    mine = s.act("dmp.search", "P001", **_doctor())
    assert mine.documents and mine.documents[0].confidentiality == ["N", "MASQUE_PS"]


def test_archive_unarchive_delete(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    fed = s.act("dmp.feed", "P001", title="CR", **_doctor())
    for operation, status in (("archive", "archived"), ("unarchive", "approved"), ("delete", "deleted")):
        report = s.act("dmp.update", "P001", operation=operation, **_doctor())
        assert report.outcome == ActionOutcome.COMPLETED and report.documents[0].status == status, report.message
    assert lab.tds()[-2:] == ["TD3.1", "TD3.3c"]
    assert lab.simulator.registry.by_unique(fed.documents[0].unique_id).content == b""
    gone = s.act("dmp.search", "P001", statuses=["approved", "archived"], **_doctor())
    assert gone.outcome == ActionOutcome.NOT_FOUND


def test_provisional_identity_is_never_sent(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    for action, extra in (("dmp.feed", {}), ("dmp.search", {}), ("dmp.test_existence", {})):
        report = s.act(action, "P001", identity_status="PROV", **extra)
        assert report.outcome == ActionOutcome.REFUSED and "PROV" in report.message
    assert lab.exchanges() == []


def test_closed_or_absent_dmp_is_not_fed(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    for patient, state in (("P005", "closed"), ("P010", "absent")):
        report = s.act("dmp.feed", patient, title="CR")
        assert report.outcome == ActionOutcome.REFUSED and state in report.message
        assert s.act("dmp.feed", patient, title="CR again").outcome == ActionOutcome.REFUSED
    assert lab.tds() == ["TD0.2", "TD0.2"]  # one existence test each, nothing more


def test_emergency_modes_declare_their_purpose(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    allowed = s.act("dmp.search", "P004", mode="bris_de_glace", **_doctor())
    assert allowed.outcome == ActionOutcome.NOT_FOUND, allowed.message  # no document, but access granted
    opposed = s.act("dmp.search", "P007", mode="bris_de_glace", **_doctor())
    assert opposed.outcome == ActionOutcome.ERROR and opposed.error_code == "DMPAccessDeniedByPatient"
    assert {e.notes["vihf"]["purpose"] for e in lab.exchanges()} == {"bris_de_glace"}


def test_search_patient_without_ins(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    found = s.act("dmp.search_patient", "P003", mode="centre_15", **_doctor())
    assert found.outcome == ActionOutcome.FOUND and DS.patient("P003").ins.nir in found.message
    none = s.act("dmp.search_patient", "P003", mode="centre_15", family_name="PERSONNE", **_doctor())
    assert none.outcome == ActionOutcome.NOT_FOUND
    normal = s.act("dmp.search_patient", "P003", **_doctor())
    assert normal.outcome == ActionOutcome.ERROR and normal.error_code == "DMPAccessDeniedByRightsService"
    first = lab.exchanges()[0]
    assert first.notes["td"] == "TD0.5" and first.notes["vihf"]["ins"] is None  # no resource-id


@pytest.mark.parametrize(("action", "patient", "professional", "code"), [
    ("dmp.read_admin", "P005", "PS001", "DMPClosed"),                    # HL7v3 acknowledgement AE
    ("dmp.authorise", "P006", "PS002", "DMPAccessDeniedByPatient"),      # habilitation status
    ("dmp.search", "P003", "PS001", "DMPAccessNotAuthorized"),           # XDS Failure
    ("dmp.feed", "P001", "PS019", "VIHF_UNKNOWN_PROFESSIONAL"),         # SOAP fault subcode
])
def test_dmp_errors_are_reported_with_their_code(lab: Lab, software: Callable[..., Software], action: str,
                                                 patient: str, professional: str, code: str) -> None:
    if professional == "PS019":  # a professional the DMP does not know: take one and change their number
        s = software()
        step = Step.model_validate({"action": action, "patient": patient, "professional": "PS001", "with": {}})
        params = BUILDERS[action](step, DS).model_dump(mode="json")
        params["professional"]["national_id"] = "899999999999"
        report = s.part.act(action, params, "http://127.0.0.1")
    else:
        report = software().act(action, patient, professional, auth="DIRECTE")
    assert report.outcome == ActionOutcome.ERROR and report.error_code == code, report.message


def test_unavailable_after_three_attempts_and_no_retry_of_a_fault(lab: Lab, software: Callable[..., Software]) -> None:
    s = software()
    lab.faults(FaultRule(kind=FaultKind.HTTP_ERROR, status=503))
    report = s.act("dmp.test_existence", "P001")
    assert report.outcome == ActionOutcome.UNAVAILABLE and len(lab.exchanges()) == 3
    lab.faults(FaultRule(kind=FaultKind.DROP, count=2))
    assert s.act("dmp.test_existence", "P001").outcome == ActionOutcome.FOUND  # third attempt answered
    lab.faults(FaultRule(kind=FaultKind.SERVICE_FAULT, fault_code="unavailable"))
    before = len(lab.exchanges())
    fault = s.act("dmp.test_existence", "P001")
    assert fault.outcome == ActionOutcome.ERROR and fault.error_code == "DMPServiceUnavailable"
    assert len(lab.exchanges()) == before + 1


def test_no_answer_in_time_is_unavailable(lab: Lab, software: Callable[..., Software],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "TIMEOUT_S", 0.3)
    s = software()
    lab.faults(FaultRule(kind=FaultKind.LATENCY, latency_ms=800, count=3))
    assert s.act("dmp.test_existence", "P001").outcome == ActionOutcome.UNAVAILABLE


def test_the_reference_app_serves_the_dmp_actions(lab: Lab) -> None:
    app = create_reference_app(pki_dir=lab.pki_dir)
    client = TestClient(app)
    assert "dmp.feed" in client.get(f"{API_PREFIX}/info").json()["actions"]
    client.post(f"{API_PREFIX}/reset", json={"endpoints": {"dmp": lab.url}})
    step = Step.model_validate({"action": "dmp.test_existence", "patient": "P002", "professional": "PS001"})
    answer = client.post(f"{API_PREFIX}/actions/dmp.test_existence",
                         json={"params": dmp_actions.test_existence(step, DS).model_dump(mode="json")}).json()
    assert answer["outcome"] == "found" and answer["record"]["treating_doctor"] is True
    app.state.reference.close()


# -- named defects ------------------------------------------------------------------------------------------
def test_every_defect_of_the_dmp_catalogue_is_one_the_software_knows() -> None:
    """The catalogue (``scenarios/dmp/defects.yaml``) is the one list; the software refers to each by name."""
    package = Path(wire.__file__).parent
    source = "".join(path.read_text(encoding="utf-8") for path in package.glob("*.py"))
    names = [name for name, defect in defects().items() if defect.campaign == "dmp"]
    assert names and [name for name in names if f'"{name}"' not in source] == []


def test_dmp_no_existence_test(lab: Lab, software: Callable[..., Software]) -> None:
    assert software("dmp_no_existence_test").act("dmp.feed", "P001", title="CR").outcome == ActionOutcome.COMPLETED
    assert lab.tds() == ["TD2.1"]


def test_dmp_feeds_provisional_identity(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_feeds_provisional_identity").act("dmp.feed", "P001", title="CR", identity_status="PROV")
    assert report.outcome == ActionOutcome.COMPLETED
    assert lab.tds() == ["TD0.2", "TD2.1"]


def test_dmp_search_without_status(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_search_without_status").act("dmp.search", "P001", **_doctor())
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "XDSStoredQueryMissingParam"
    search = lab.exchanges()[-1]
    assert b"$XDSDocumentEntryStatus" not in search.request_body and "required" in search.notes["error"]["message"]


def test_dmp_soap11(lab: Lab, software: Callable[..., Software]) -> None:
    s = software("dmp_soap11", "dmp_no_existence_test")
    report = s.act("dmp.test_existence", "P001")
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "VersionMismatch"  # read in SOAP 1.1
    assert s.act("dmp.feed", "P001", title="CR").outcome == ActionOutcome.COMPLETED  # MTOM tolerates SOAP 1.1
    first = lab.exchanges()[0]
    assert first.notes["fault"] == "version_mismatch" and first.header("content-type").startswith("text/xml")


def test_dmp_non_anonymous_reply_to(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_non_anonymous_reply_to").act("dmp.test_existence", "P001")
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "InvalidAddressingHeader"
    assert lab.exchanges()[0].notes["fault"] == "addressing_header_invalid"
    assert b"OnlyAnonymousAddressSupported" in lab.exchanges()[0].response_body


def test_dmp_must_understand_extension(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_must_understand_extension").act("dmp.test_existence", "P001")
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "MustUnderstand"
    exchange = lab.exchanges()[0]
    assert exchange.notes["fault"] == "must_understand" and exchange.status == 500
    assert b"NotUnderstood" in exchange.response_body


def test_dmp_ignores_query_status(lab: Lab, software: Callable[..., Software]) -> None:
    s = software("dmp_ignores_query_status")
    report = s.act("dmp.search", "P006", "PS002", auth="DIRECTE")  # P006 blocked PS002: the DMP refuses
    assert report.outcome == ActionOutcome.NOT_FOUND
    assert lab.exchanges()[-1].notes["error"]["code"] == "DMPAccessDeniedByPatient"


def test_dmp_wrong_action(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_wrong_action").act("dmp.search", "P001", **_doctor())
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "ActionNotSupported"
    assert lab.exchanges()[-1].notes["fault"] == "action_not_supported"


def test_dmp_ignores_closed(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_ignores_closed").act("dmp.feed", "P005", title="CR")
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "DMPClosed"
    assert lab.tds() == ["TD0.2", "TD2.1"]


@pytest.mark.parametrize("defects", [(), ("dmp_claims_success_on_error",)])
def test_dmp_claims_success_on_error(lab: Lab, software: Callable[..., Software], defects: tuple[str, ...]) -> None:
    s = software(*defects)
    s.act("dmp.test_existence", "P001")
    lab.faults(FaultRule(kind=FaultKind.BEHAVIOUR, fault_code="dmp_closed"))
    report = s.act("dmp.feed", "P001", title="CR")
    assert lab.exchanges()[-1].notes["error"]["code"] == "DMPClosed"
    if defects:
        assert report.outcome == ActionOutcome.COMPLETED
    else:
        assert report.outcome == ActionOutcome.ERROR and report.error_code == "DMPClosed"


def test_dmp_retries_forever(lab: Lab, software: Callable[..., Software]) -> None:
    lab.faults(FaultRule(kind=FaultKind.HTTP_ERROR, status=503))
    assert software("dmp_retries_forever").act("dmp.test_existence", "P001").outcome == ActionOutcome.UNAVAILABLE
    assert len(lab.exchanges()) == 7


def test_dmp_normal_mode_in_emergency(lab: Lab, software: Callable[..., Software]) -> None:
    report = software("dmp_normal_mode_in_emergency").act("dmp.search", "P004", mode="bris_de_glace", **_doctor())
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "DMPAccessNotAuthorized"
    assert {e.notes["vihf"]["purpose"] for e in lab.exchanges()} == {"normal"}


def test_dmp_no_rplc(lab: Lab, software: Callable[..., Software]) -> None:
    s = software("dmp_no_rplc")
    s.act("dmp.feed", "P002", title="v1")
    assert s.act("dmp.feed", "P002", title="v2", replaces="last").outcome == ActionOutcome.COMPLETED
    assert lab.exchanges()[-1].notes["replaced"] == []


def test_dmp_update_wrong_version(lab: Lab, software: Callable[..., Software]) -> None:
    s = software("dmp_update_wrong_version")
    s.act("dmp.feed", "P001", title="CR", **_doctor())
    report = s.act("dmp.update", "P001", operation="mask", **_doctor())
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "XDSMetadataVersionError"


def test_dmp_retrieve_wrong_repository(lab: Lab, software: Callable[..., Software]) -> None:
    s = software("dmp_retrieve_wrong_repository")
    s.act("dmp.feed", "P001", title="CR", **_doctor())
    report = s.act("dmp.retrieve", "P001", **_doctor())
    assert report.outcome == ActionOutcome.ERROR and report.error_code == "XDSUnknownRepositoryId"


@pytest.mark.parametrize(("defect", "auth", "code"), [
    ("vihf_unsigned", "INDIRECTE", None), ("vihf_wrong_mode", "DIRECTE", "VIHF_SIGNER_MISMATCH"),
    ("vihf_stale", "INDIRECTE", "VIHF_EXPIRED"),
])
def test_vihf_defects_flow_through(lab: Lab, software: Callable[..., Software], defect: str, auth: str,
                                   code: str | None) -> None:
    report = software(defect).act("dmp.test_existence", "P001", auth=auth)
    assert report.outcome == ActionOutcome.ERROR and report.error_code
    assert lab.exchanges()[0].notes["fault"] == "vihf"
    if code:
        assert report.error_code == code


@pytest.mark.parametrize("defect", ["no_signature_document", "xds_bad_hash", "cda_missing_template"])
def test_document_defects_flow_through(lab: Lab, software: Callable[..., Software], defect: str) -> None:
    report = software(defect).act("dmp.feed", "P001", title="CR")
    assert report.outcome == ActionOutcome.ERROR and report.error_code, report.message
    assert any(f["severity"] == "error" for f in lab.exchanges()[-1].notes["findings"])


# -- operator mode ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("action", "answers", "expected"), [
    ("dmp.test_existence", ["closed", "VALIDE"], {"record": {"status": "closed", "authorisation": "VALIDE"}}),
    ("dmp.retrieve", ["2.25.1", "ab12"], {"documents": [{"unique_id": "2.25.1", "sha1": "ab12"}]}),
])
def test_a_person_reports_what_a_driver_would(action: str, answers: list[str], expected: dict[str, Any]) -> None:
    spec = load_actions()[action]
    step = Step.model_validate({"action": action, "patient": "P001", "professional": "PS001"})
    asked = iter(answers)
    assert spec.operator_questions is not None
    fields = spec.operator_questions(lambda question, default, field=None: next(asked), spec.parameters(step, DS),
                                     "found")
    report = read_report({"outcome": "found", **fields}, spec.report, action)
    assert report.model_dump(include=set(expected), exclude_defaults=True) == expected
