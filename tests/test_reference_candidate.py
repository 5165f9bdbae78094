"""The reference candidate against the INSi simulator (HTTPS, test PKI, client certificate optional).

One simulator serves the whole module; each test gets its own journal context and a clean fault list. The
first part shows the correct behaviour; the second shows that every named defect changes it as described.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from lxml import etree

from esante.harness.actions import load_actions
from esante.harness.driver import API_PREFIX, ActionOutcome, read_report
from esante.harness.kits import defects
from esante.harness.reference import Defects, create_reference_app
from esante.harness.reference.insi.client import AnsweredIns, InsiServiceFault, InsiUnavailable, read_answer
from esante.scenarios.insi.actions import patient_traits
from esante.scenarios.insi.models import InsiReport
from esante.simulators.core.app import create_app
from esante.simulators.core.pki import TestCA
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.insi import InsiSimulator
from esante.simulators.insi.protocol import OID_INS_NIR, OID_INS_NIR_TEST, answered_oid
from esante.simulators.insi.service import fault_response

DS = load_dataset()
VECTORS = Path(__file__).parent / "vectors"
UNKNOWN = {"birth_name": "INCONNU", "first_names": ["PERSONNE"], "sex": "M", "birth_date": "1950-01-01",
           "birth_place": None}


# -- fixtures -----------------------------------------------------------------------------------------------
@dataclass
class Sim:
    url: str
    token: str
    http: httpx.Client
    pki_dir: Path
    case_id: str = ""

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.url}/_admin{path}", json=body,
                                     headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code < 400, response.text
        return response.json() if response.content else None

    def faults(self, *rules: dict[str, Any]) -> None:
        self.admin("PUT", "/faults", list(rules))

    def calls(self) -> list[dict[str, Any]]:
        """This test's exchanges, as journaled."""
        return self.admin("GET", f"/journal?case_id={self.case_id}")["exchanges"]


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("insi")
    settings = SimulatorSettings(evidence_path=tmp / "ev.sqlite")
    app = create_app(InsiSimulator(DS), settings)
    pki_dir = tmp / "pki"
    with ServerHandle(app, tls=TlsSettings(pki_dir=pki_dir)) as server:
        verify = ssl.create_default_context(cadata=TestCA.load_or_create(pki_dir).ca_pem.decode())
        with httpx.Client(verify=verify, timeout=10) as http:
            yield Sim(server.url, settings.admin_token, http, pki_dir)


@pytest.fixture
def sim(simulator: Sim) -> Sim:
    """The shared simulator, with a fresh journal context and no faults."""
    simulator.case_id = uuid.uuid4().hex
    simulator.admin("PUT", "/context", {"run_id": None, "case_id": simulator.case_id})
    simulator.admin("DELETE", "/faults")
    return simulator


class Candidate:
    """The reference app driven through the driver contract, reset on the simulator."""

    def __init__(self, sim: Sim, defects: tuple[str, ...] = ()) -> None:
        self.app = create_reference_app(pki_dir=sim.pki_dir, defects=defects)
        self.http = TestClient(self.app)
        response = self.http.post(f"{API_PREFIX}/reset", json={"endpoints": {"insi": sim.url}})
        assert response.status_code == 204, response.text

    def act(self, action: str, **params: Any) -> InsiReport:
        response = self.http.post(f"{API_PREFIX}/actions/{action}", json={"params": params})
        assert response.status_code == 200, response.text
        return read_report(response.json(), InsiReport, action)

    def lookup(self, patient_id: str, *, document: bool = False) -> InsiReport:
        return self.act("insi.lookup_traits", traits=patient_traits(DS.patient(patient_id)).model_dump(),
                        id_document_checked=document)

    def vitale(self, patient_id: str) -> InsiReport:
        p = DS.patient(patient_id)
        assert p.vitale is not None
        card = {"nir": p.vitale.holder_nir, "key": p.vitale.holder_key, "birth_name": p.birth_name,
                "birth_date": p.birth_date, "rank": p.vitale.rank}
        return self.act("insi.lookup_vitale", card=card)

    def verify(self, patient_id: str, ins: dict[str, str], status: str = "RECUP") -> InsiReport:
        identity = {"local_id": patient_id, "status": status, "ins": ins,
                    "traits": patient_traits(DS.patient(patient_id)).model_dump()}
        return self.act("insi.verify", identity=identity)

    def close(self) -> None:
        self.app.state.reference.close()


@pytest.fixture
def make(sim: Sim) -> Iterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def factory(*defects: str) -> Candidate:
        made.append(Candidate(sim, defects))
        return made[-1]

    yield factory
    for candidate in made:
        candidate.close()


# -- helpers ------------------------------------------------------------------------------------------------
def ins_of(patient_id: str, history: int | None = None) -> dict[str, str]:
    """The patient's INS as INSi returns it: the data set's test OID answered as its domain's (INS-NIR)."""
    p = DS.patient(patient_id)
    ins = p.ins if history is None else p.ins_history[history]
    return {"nir": ins.nir, "key": ins.key, "oid": answered_oid(ins.oid)}


def sent(exchange: dict[str, Any]) -> etree._Element:
    return etree.fromstring(base64.b64decode(exchange["request_body"]))


def sent_text(exchange: dict[str, Any], local_name: str) -> str | None:
    found = [e.text for e in sent(exchange).iter() if isinstance(e.tag, str) and etree.QName(e).localname
             == local_name]
    return found[0] if found else None


def header(exchange: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in exchange["request_headers"] if k.lower() == name), None)


def stored_ins(report: InsiReport) -> dict[str, str] | None:
    return report.identity.ins.model_dump() if report.identity and report.identity.ins else None


# -- correct behaviour ---------------------------------------------------------------------------------------
def test_info_declares_the_actions_and_the_active_defects(sim: Sim, make: Callable[..., Candidate]) -> None:
    info = make().http.get(f"{API_PREFIX}/info").json()
    assert sorted(info["actions"]) == sorted(load_actions())  # every shipped action, nothing else
    assert info["version"] == "1.0.0" and info["vendor"] == "esante-conformance"
    assert make("wrong_oid", "soap11_envelope").http.get(f"{API_PREFIX}/info").json()["version"] == \
        "1.0.0+defects:soap11_envelope,wrong_oid"


def test_found_takes_the_ins_and_the_reference_traits(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P006")  # typed LEVEQUE HELENE, civil status LÉVÊQUE HÉLÈNE
    assert report.outcome is ActionOutcome.FOUND
    assert stored_ins(report) == ins_of("P006")
    assert report.identity is not None and report.identity.status.value == "RECUP"
    assert report.identity.traits.model_dump() == {"birth_name": "LEVEQUE", "first_names": ["HELENE"], "sex": "F",
                                                   "birth_date": "1958-07-19", "birth_place": "35238"}
    assert stored_ins(report)["oid"] == OID_INS_NIR  # type: ignore[index]
    (call,) = sim.calls()
    assert call["client_cert_subject"] and "CN=INSI-AUTO" in call["client_cert_subject"]
    assert sent_text(call, "Security") is None  # mTLS: the certificate authenticates, as real clients do
    assert header(call, "content-type") == "application/soap+xml; charset=utf-8"
    assert sent_text(call, "IDAM") == "ESANTE-REF-0001" and sent_text(call, "MessageID").startswith("uuid:")


def test_identity_document_checked_gives_a_qualified_identity(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P001", document=True)
    assert report.identity is not None and report.identity.status.value == "QUAL"


def test_not_found_leaves_a_provisional_identity(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().act("insi.lookup_traits", traits=UNKNOWN)
    assert report.outcome is ActionOutcome.NOT_FOUND
    assert report.identity is not None and report.identity.ins is None and report.identity.status.value == "PROV"
    assert report.identity.traits.birth_name == "INCONNU"


def test_namesakes_are_reported_as_several(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P022")
    assert report.outcome is ActionOutcome.SEVERAL
    assert report.identity is not None and report.identity.ins is None and report.identity.status.value == "PROV"


def test_twin_is_found_by_trying_first_names_one_at_a_time(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P020")  # JEAN -> 02 (both twins), LUC -> 00
    assert report.outcome is ActionOutcome.FOUND and stored_ins(report) == ins_of("P020")
    calls = sim.calls()
    assert [sent_text(c, "Prenom") for c in calls] == ["JEAN", "LUC"]
    assert len({sent_text(c, "MessageID") for c in calls}) == 2


def test_whole_first_name_list_is_the_last_attempt(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().act("insi.lookup_traits", traits={**UNKNOWN, "first_names": ["PAUL", "PIERRE"]})
    assert report.outcome is ActionOutcome.NOT_FOUND
    assert [sent_text(c, "Prenom") for c in sim.calls()] == ["PAUL", "PIERRE", "PAUL PIERRE"]


def test_lunar_date_is_sent_as_known(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P019")
    assert report.outcome is ActionOutcome.FOUND
    assert sent_text(sim.calls()[0], "DateNaissance") == "1969-00-00"


def test_corsican_ins_key_is_checked_with_the_2a_substitution(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().lookup("P028")  # NIR 280092A004061: key 86 computed with 2A -> 19
    assert report.outcome is ActionOutcome.FOUND and stored_ins(report) == ins_of("P028")


def test_verify_confirms_the_held_ins(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().verify("P001", ins_of("P001"), status="QUAL")
    assert report.outcome is ActionOutcome.VERIFIED and stored_ins(report) == ins_of("P001")
    assert report.identity is not None and report.identity.status.value == "QUAL"


def test_verify_mismatch_removes_the_ins(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().verify("P001", ins_of("P002"))
    assert report.outcome is ActionOutcome.MISMATCH
    assert report.identity is not None and report.identity.ins is None and report.identity.status.value == "PROV"
    assert report.identity.local_id == "P001" and ins_of("P002")["nir"] in report.message


def test_verify_replaced_ins_is_updated(sim: Sim, make: Callable[..., Candidate]) -> None:
    report = make().verify("P027", ins_of("P027", history=0))
    assert report.outcome is ActionOutcome.UPDATED and stored_ins(report) == ins_of("P027")
    assert report.identity is not None and report.identity.status.value == "RECUP"


@pytest.mark.parametrize(("patient", "rank"), [("P001", "1"), ("P021", "2")])
def test_carte_vitale(sim: Sim, make: Callable[..., Candidate], patient: str, rank: str) -> None:
    report = make().vitale(patient)  # P021: a twin on the parent's card, rank 2
    assert report.outcome is ActionOutcome.FOUND and stored_ins(report) == ins_of(patient)
    (call,) = sim.calls()
    assert sent_text(call, "RangNaissance") == rank and sent_text(call, "Rang") == rank


def test_receiver_fault_is_retried_once_then_reported(sim: Sim, make: Callable[..., Candidate]) -> None:
    sim.faults({"kind": "service_fault", "fault_code": "unavailable"})
    report = make().lookup("P001")
    assert report.outcome is ActionOutcome.ERROR and report.error_code == "insi_500"
    assert report.identity is None and "indisponible" in report.message
    first, second = sim.calls()
    gap = datetime.fromisoformat(second["received_at"]) - datetime.fromisoformat(first["received_at"])
    assert gap.total_seconds() >= 0.1


def test_dropped_connection_is_unavailable(sim: Sim, make: Callable[..., Candidate]) -> None:
    sim.faults({"kind": "drop"})
    report = make().lookup("P001")
    assert report.outcome is ActionOutcome.UNAVAILABLE and report.identity is None
    assert len(sim.calls()) == 2


def test_slow_answer_is_waited_for(sim: Sim, make: Callable[..., Candidate]) -> None:
    sim.faults({"kind": "latency", "latency_ms": 600})
    assert make().lookup("P001").outcome is ActionOutcome.FOUND
    assert len(sim.calls()) == 1


def test_driver_errors(sim: Sim, make: Callable[..., Candidate], tmp_path: Path) -> None:
    http = make().http
    assert http.post(f"{API_PREFIX}/actions/insi.nope", json={"params": {}}).status_code == 404
    assert http.post(f"{API_PREFIX}/actions/insi.lookup_traits", json={"params": {"traits": {}}}).status_code == 422
    held = {"local_id": "X", "status": "PROV", "traits": UNKNOWN}
    assert http.post(f"{API_PREFIX}/actions/insi.verify", json={"params": {"identity": held}}).status_code == 422
    unset = TestClient(create_reference_app(pki_dir=tmp_path))
    response = unset.post(f"{API_PREFIX}/actions/insi.lookup_traits", json={"params": {"traits": UNKNOWN}})
    assert response.status_code == 409 and "reset" in response.text


def test_unknown_defect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no_such_defect"):
        create_reference_app(pki_dir=tmp_path, defects=["wrong_oid", "no_such_defect"])
    assert Defects(["wrong_oid"]).on("wrong_oid") and not Defects().on("wrong_oid")


# -- reading answers tolerantly -----------------------------------------------------------------------------
ODD_ANSWER = b"""<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body>
  <RESULTAT xmlns="http://www.cnamts.fr/INSiResultat"><CR><LibelleCR>OK</LibelleCR><CodeCR>00</CodeCR></CR>
    <INDIVIDU>
      <TIQ><NomNaissance>PEREIRA</NomNaissance><ListePrenom>INES MARIA</ListePrenom><Sexe>F</Sexe>
        <DateNaissance>1991-06-07</DateNaissance><LieuNaissance>99139</LieuNaissance></TIQ>
      <INSHISTO><DateDeb>2010-09-01</DateDeb><OID>1.2.250.1.213.1.4.10</OID>
        <IdIndividu><Cle>20</Cle><NumIdentifiant>8910699139014</NumIdentifiant></IdIndividu></INSHISTO>
      <INSACTIF><IdIndividu><NumIdentifiant>2910699139265</NumIdentifiant><Cle>69</Cle></IdIndividu>
        <OID>1.2.250.1.213.1.4.10</OID></INSACTIF>
    </INDIVIDU></RESULTAT></S:Body></S:Envelope>"""


def test_answers_are_read_whatever_the_prefixes_and_child_order() -> None:
    official = read_answer(httpx.Response(200, content=(VECTORS / "insi_official_response.xml").read_bytes()))
    assert official.code_cr == "00" and official.active_ins == AnsweredIns("2070585756270", "97", "1.2.250.1.213.1.4.8")
    odd = read_answer(httpx.Response(200, content=ODD_ANSWER))
    assert odd.active_ins == AnsweredIns("2910699139265", "69", "1.2.250.1.213.1.4.10")
    assert odd.history == [AnsweredIns("8910699139014", "20", "1.2.250.1.213.1.4.10")]
    assert odd.tiq["ListePrenom"] == "INES MARIA"


def test_faults_and_non_soap_answers_are_told_apart() -> None:
    with pytest.raises(InsiServiceFault) as fault:
        read_answer(httpx.Response(500, content=fault_response("desir_550").body))
    assert (fault.value.code, fault.value.error_code) == ("Sender", "desir_550")
    assert "autorisation" in fault.value.text
    with pytest.raises(InsiUnavailable, match="HTTP 503"):
        read_answer(httpx.Response(503, content=b"HTTP 503 (injected fault)"))


# -- each defect changes the behaviour as described ---------------------------------------------------------
def _sender_fault(error_code: str) -> Callable[[InsiReport, list[dict[str, Any]]], None]:
    def check(report: InsiReport, calls: list[dict[str, Any]]) -> None:
        assert report.outcome is ActionOutcome.ERROR and report.error_code == error_code, report
        assert len(calls) == 1  # a Sender fault is never retried

    return check


def soap11_envelope(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P001")
    (call,) = sim.calls()
    _sender_fault("insi_101")(report, [call])
    assert header(call, "content-type").startswith("text/xml") and header(call, "soapaction")
    assert etree.QName(sent(call)).namespace == "http://schemas.xmlsoap.org/soap/envelope/"


def no_message_id(c: Candidate, sim: Sim) -> None:
    _sender_fault("insi_110")(c.lookup("P001"), calls := sim.calls())
    assert sent_text(calls[0], "MessageID") is None


def no_security_context(c: Candidate, sim: Sim) -> None:
    _sender_fault("insi_110")(c.lookup("P001"), calls := sim.calls())
    assert sent_text(calls[0], "ContexteLPS") is None


def wrong_idam(c: Candidate, sim: Sim) -> None:
    _sender_fault("desir_550")(c.lookup("P001"), calls := sim.calls())
    assert sent_text(calls[0], "IDAM") == "ESANTE-REVOKED-0099"


def wrong_certificate(c: Candidate, sim: Sim) -> None:
    _sender_fault("desir_560")(c.lookup("P001"), calls := sim.calls())
    assert "CN=750000001" in calls[0]["client_cert_subject"]


def missing_traits(c: Candidate, sim: Sim) -> None:
    _sender_fault("insi_120")(c.lookup("P001"), calls := sim.calls())
    assert sent_text(calls[0], "Sexe") is None


def fixes_lunar_date(c: Candidate, sim: Sim) -> None:
    assert c.lookup("P018").outcome is ActionOutcome.NOT_FOUND
    assert {sent_text(call, "DateNaissance") for call in sim.calls()} == {"1978-05-01"}


def single_attempt(c: Candidate, sim: Sim) -> None:
    assert c.lookup("P017").outcome is ActionOutcome.NOT_FOUND  # typed SOPHIE ANNE MARIE; SOPHIE alone finds her
    assert [sent_text(call, "Prenom") for call in sim.calls()] == ["SOPHIE ANNE MARIE"]


def wrong_oid(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P001")
    assert report.outcome is ActionOutcome.FOUND and stored_ins(report) == {**ins_of("P001"),
                                                                             "oid": OID_INS_NIR_TEST}


def tiq_prenom_only(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P007")  # ListePrenom FRANCOIS GABRIEL; no Prenom in a live-shaped TIQ
    assert report.outcome is ActionOutcome.FOUND and report.identity is not None
    assert report.identity.traits.first_names == []


def naive_nir_key(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P028")
    assert report.outcome is ActionOutcome.ERROR and report.identity is None and "invalid key" in report.message


def keeps_local_traits(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P016")  # typed PAUL ANTOINE ÉMILE, reference ANTOINE PAUL EMILE
    assert report.outcome is ActionOutcome.FOUND and report.identity is not None
    assert report.identity.traits.first_names == ["PAUL", "ANTOINE", "ÉMILE"]


def qualifies_without_document(c: Candidate, sim: Sim) -> None:
    report = c.lookup("P001")
    assert report.identity is not None and report.identity.status.value == "QUAL"


def ignores_several_matches(c: Candidate, sim: Sim) -> None:
    assert c.lookup("P022").outcome is ActionOutcome.NOT_FOUND


def not_found_as_error(c: Candidate, sim: Sim) -> None:
    report = c.act("insi.lookup_traits", traits=UNKNOWN)
    assert report.outcome is ActionOutcome.ERROR and report.identity is None


def trusts_unverified_ins(c: Candidate, sim: Sim) -> None:
    report = c.verify("P001", ins_of("P002"))
    assert report.outcome is ActionOutcome.VERIFIED and stored_ins(report) == ins_of("P002")


def ignores_ins_history(c: Candidate, sim: Sim) -> None:
    report = c.verify("P027", ins_of("P027", history=0))
    assert report.outcome is ActionOutcome.MISMATCH and stored_ins(report) == ins_of("P027", history=0)
    assert report.identity is not None and report.identity.status.value == "RECUP"


def vitale_without_rank(c: Candidate, sim: Sim) -> None:
    _sender_fault("insi_120")(c.vitale("P001"), calls := sim.calls())
    assert sent_text(calls[0], "RangNaissance") is None


def swallows_faults(c: Candidate, sim: Sim) -> None:
    sim.faults({"kind": "service_fault", "fault_code": "unavailable"})
    assert c.lookup("P001").outcome is ActionOutcome.NOT_FOUND
    assert len(sim.calls()) == 2


def hammering_retries(c: Candidate, sim: Sim) -> None:
    sim.faults({"kind": "service_fault", "fault_code": "unavailable"})
    assert c.lookup("P001").error_code == "insi_500"
    assert len(sim.calls()) == 7


def impatient_timeout(c: Candidate, sim: Sim) -> None:
    sim.faults({"kind": "latency", "latency_ms": 600})
    assert c.lookup("P001").outcome is ActionOutcome.UNAVAILABLE


DEFECT_SCENARIOS: dict[str, Callable[[Candidate, Sim], None]] = {f.__name__: f for f in (
    soap11_envelope, no_message_id, no_security_context, wrong_idam, wrong_certificate, missing_traits,
    fixes_lunar_date, single_attempt, wrong_oid, tiq_prenom_only, naive_nir_key, keeps_local_traits,
    qualifies_without_document,
    ignores_several_matches, not_found_as_error, trusts_unverified_ins, ignores_ins_history, vitale_without_rank,
    swallows_faults, hammering_retries, impatient_timeout)}


def test_every_insi_defect_has_a_scenario_and_names_a_rule() -> None:
    """INSi defects, one unit scenario each; PSC defects are held to their cases end to end (test_defects.py)."""
    insi = {name: d for name, d in defects().items() if d.campaign == "insi"}
    assert set(DEFECT_SCENARIOS) == set(insi)
    assert all(d.rule.startswith(("insi.", "identity.")) and d.description for d in insi.values())
    assert all(d.rule.startswith("psc.") and d.description for d in defects().values() if d.campaign == "psc")


@pytest.mark.parametrize("defect", list(DEFECT_SCENARIOS))
def test_defect_changes_the_behaviour(sim: Sim, make: Callable[..., Candidate], defect: str) -> None:
    DEFECT_SCENARIOS[defect](make(defect), sim)
