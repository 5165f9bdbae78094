"""The replay simulator and its recordings, without mitmproxy: the file format a person edits (read back with
PyYAML), the matching rules, secrets flagged and masked, which recording answers which request, and the replay
served over the test PKI's TLS with the core's admin API, faults, journal and hostile-input handling.

Recording through ``esante proxy`` and replaying a whole campaign is in ``tests/test_proxy.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from lxml import etree

from esante.harness.proxy.recorder import Recorder
from esante.simulators.core.app import build_simulator, create_app
from esante.simulators.core.evidence import EvidenceStore, Record
from esante.simulators.core.journal import load_exchanges
from esante.simulators.core.pki import CA_CERT_FILE, client_ssl_context
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.replay.protocol import MASKED
from esante.simulators.replay.recordings import (
    Library,
    MatchRule,
    RecordedRequest,
    RecordedResponse,
    Recording,
    match_keys,
    read_recording,
)
from esante.simulators.replay.secrets import flag_secrets
from tests.conftest import SOAP12, official_request

VECTORS = Path(__file__).parent / "vectors"
FOUND = (VECTORS / "insi_official_request.xml").read_bytes()  # any SOAP body serves as an answer here
ASSERTION = b"""<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
 xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><s:Header><wsse:Security><saml:Assertion ID="_1">
<saml:Subject><saml:NameID>899900063480</saml:NameID></saml:Subject></saml:Assertion></wsse:Security></s:Header>
<s:Body><op xmlns="urn:x"><a>1</a></op></s:Body></s:Envelope>"""


def _request_record(body: bytes, *, service: str = "insi", case: str | None = "INSI-01",
                    content_type: str = SOAP12, path: str = "/lps", headers: list | None = None) -> Record:
    payload = {"method": "POST", "path": path, "query": "", "service": service, "upstream": "https://up.example",
               "headers": [["Content-Type", content_type], *(headers or [])]}
    return Record(1, "exchange.request", "run", case, "x", "t", payload, "d", "c")


def _record(folder: Path, body: bytes, answer: bytes, *, status: int = 200, case: str | None = "INSI-01",
            mask: bool = False, **request: object) -> Path:
    recorder = Recorder(folder, mask=mask)
    return recorder.keep(_request_record(body, case=case, **request), body, status,  # type: ignore[arg-type]
                         [("Content-Type", SOAP12)], answer)


# -- the file a person reads and edits ------------------------------------------------------------------------------
def test_a_recording_is_one_readable_yaml_file_with_its_matching_keys(tmp_path: Path) -> None:
    path = _record(tmp_path, official_request(birth_name="MARTIN"), FOUND)
    text = path.read_text()
    assert path.parent.name == "insi" and path.name.startswith("0001-INSI-01-RECSANSVITALE")
    assert text.startswith("# Recorded by esante proxy") and "body: |" in text  # bodies as literal blocks
    data = yaml.safe_load(text)
    assert data["match"]["operation"] == "RECSANSVITALE" and data["match"]["values"]["NomNaissance"] == "MARTIN"
    assert read_recording(path).response.content() == FOUND
    assert _record(tmp_path, FOUND, FOUND).name.startswith("0002-")  # numbered in recording order


def test_a_person_edits_the_match_and_the_answer(tmp_path: Path) -> None:
    path = _record(tmp_path, official_request(birth_name="MARTIN"), FOUND)
    data = yaml.safe_load(path.read_text())
    data["match"]["values"]["NomNaissance"] = "DURAND"
    data["response"]["status"] = 500
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    library = Library.load(tmp_path, "insi")
    keys = library.keys("POST", "/lps", "", SOAP12, official_request(birth_name="DURAND"))
    name, recording = library.answer(keys, "INSI-01") or ("", None)
    assert name == path.name and recording is not None and recording.response.status == 500


def test_a_malformed_recording_is_named(tmp_path: Path) -> None:
    (tmp_path / "insi").mkdir()
    (tmp_path / "insi" / "0001-bad.yaml").write_text("match: [unclosed")
    with pytest.raises(ValueError, match=r"0001-bad\.yaml"):
        Library.load(tmp_path, "insi")


# -- matching ---------------------------------------------------------------------------------------------------------
def test_soap_keys_are_the_operation_and_the_body_values_not_the_headers() -> None:
    rule = MatchRule(soap=True)
    first = match_keys(rule, "POST", "/lps", "", SOAP12, official_request())
    again = match_keys(rule, "post", "/lps", "", SOAP12, official_request(idam="ANOTHER-IDAM"))  # a header differs
    assert first == again and first["operation"] == "RECSANSVITALE"
    assert match_keys(rule, "POST", "/lps", "", SOAP12, official_request(sex="M")) != first
    assert "body_sha256" in match_keys(rule, "POST", "/lps", "", SOAP12, b"<not-soap")


def test_rules_pick_values_by_xpath_and_http_parameters(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "insi: {soap: true, values: {name: \"//*[local-name()='NomNaissance']\"}}\n"
        "psc: {params: [grant_type]}\n")
    library = Library.load(tmp_path, "insi")
    keys = library.keys("POST", "/lps", "", SOAP12, official_request(birth_name="DUPONT", sex="F"))
    assert keys["values"] == {"name": ["DUPONT"]}  # the sex is not a key under these rules
    psc = Library.load(tmp_path, "psc")
    keys = psc.keys("POST", "/token", "", "application/x-www-form-urlencoded",
                    b"grant_type=authorization_code&code=abc&code_verifier=x")
    assert keys == {"method": "POST", "path": "/token", "params": {"grant_type": "authorization_code"}}


def test_the_same_request_replays_its_case_answers_in_order(tmp_path: Path) -> None:
    """INSI-14 was answered a fault then a result; INSI-01 a result: each case gets its own, in order."""
    body = official_request()
    _record(tmp_path, body, b"<fault/>", status=500, case="INSI-14")
    _record(tmp_path, body, b"<result/>", case="INSI-14")
    _record(tmp_path, body, b"<other/>", case="INSI-01")
    library = Library.load(tmp_path, "insi")
    keys = library.keys("POST", "/lps", "", SOAP12, body)

    def answers(case: str, n: int) -> list[bytes]:
        return [library.answer(keys, case)[1].response.content() for _ in range(n)]  # type: ignore[index]

    assert answers("INSI-14", 3) == [b"<fault/>", b"<result/>", b"<result/>"]  # the last one repeats
    assert answers("INSI-01", 2) == [b"<other/>", b"<other/>"]
    assert answers("INSI-99", 1) == [b"<fault/>"]  # no recording of this case: the first recorded
    library.rewind()
    assert answers("INSI-14", 1) == [b"<fault/>"]
    assert library.answer(library.keys("POST", "/lps", "", SOAP12, official_request(sex="M")), "INSI-01") is None


# -- secrets ---------------------------------------------------------------------------------------------------------
def test_secrets_are_flagged_always_and_masked_on_request(tmp_path: Path) -> None:
    token = json.dumps({"access_token": "eyJ.secret", "token_type": "Bearer", "nested": [{"id_token": "x"}]})
    recording = Recording(
        service="psc", match={}, request=RecordedRequest.carrying(
            [("Authorization", "Bearer abc"), ("Content-Type", "application/soap+xml")], ASSERTION, method="POST",
            path="/lps"),
        response=RecordedResponse.carrying([("Content-Type", "application/json")], token.encode(), status=200))
    flagged = flag_secrets(recording, mask=False)
    assert flagged.secrets == ["request header Authorization", "request body: Assertion",
                               "response body: access_token", "response body: id_token"]
    assert not flagged.masked and flagged.request.content() == ASSERTION
    masked = flag_secrets(recording, mask=True)
    assert masked.masked and masked.request.header("authorization") == MASKED
    root = etree.fromstring(masked.request.content())  # still well formed, the assertion emptied
    assertion = root.find(".//{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
    assert assertion is not None and assertion.text == MASKED and len(assertion) == 0
    assert json.loads(masked.response.content())["access_token"] == MASKED
    assert json.loads(masked.response.content())["token_type"] == "Bearer"


def test_the_recorder_masks_a_form_and_flags_what_it_cannot_rewrite(tmp_path: Path) -> None:
    form = _record(tmp_path, b"grant_type=authorization_code&client_secret=s3cr3t", b"{}", mask=True, service="psc",
                   case=None, content_type="application/x-www-form-urlencoded", path="/token")
    data = yaml.safe_load(form.read_text())
    assert "s3cr3t" not in form.read_text() and data["masked"] and data["secrets"] == ["request body: client_secret"]
    mtom = _record(tmp_path, b"--b\r\n\r\n" + ASSERTION + b"\r\n--b--", b"{}", mask=True, service="dmp",
                   content_type="multipart/related; boundary=b")
    assert "not masked" in yaml.safe_load(mtom.read_text())["secrets"][0]


# -- the replay simulator ----------------------------------------------------------------------------------------------
@pytest.fixture
def replay(tmp_path: Path) -> Iterator[tuple[str, EvidenceStore, httpx.Client, httpx.Client]]:
    _record(tmp_path / "recordings", official_request(birth_name="MARTIN"), FOUND)
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    settings = SimulatorSettings(evidence_path=store.path, pki_dir=tmp_path / "pki", max_body_bytes=64 * 1024,
                                 options={"recordings": str(tmp_path / "recordings")})
    app = create_app(build_simulator("replay", settings), settings, store)
    with ServerHandle(app, tls=TlsSettings(pki_dir=tmp_path / "pki")) as server:
        tls = client_ssl_context((tmp_path / "pki" / CA_CERT_FILE).read_bytes())
        with httpx.Client(base_url=server.url, verify=tls) as http, \
                httpx.Client(base_url=f"{server.url}/_admin", verify=tls,
                             headers={"Authorization": f"Bearer {settings.admin_token}"}) as admin:
            yield server.url, store, http, admin


def test_the_replay_answers_recorded_requests_over_tls_as_the_service(replay: tuple) -> None:
    _, store, http, admin = replay
    assert admin.get("/health").json()["simulator"] == "insi"  # it stands for the service it replays
    answer = http.post("/lps", content=official_request(birth_name="MARTIN"), headers={"Content-Type": SOAP12})
    assert answer.status_code == 200 and answer.content == FOUND
    missing = http.post("/lps", content=official_request(birth_name="NEVERSEEN"), headers={"Content-Type": SOAP12})
    assert missing.status_code == 500 and b"siram" in missing.content  # the INSi fault, as its simulator writes it
    found, unmatched = load_exchanges(store, simulator="insi")
    assert found.notes["recording"].startswith("0001-") and not found.notes.get("unmatched")
    assert unmatched.notes["unmatched"] and unmatched.notes["match"]["values"]["NomNaissance"] == "NEVERSEEN"


def test_the_replay_takes_the_services_named_faults(replay: tuple) -> None:
    _, _, http, admin = replay
    assert admin.put("/faults", json=[{"kind": "service_fault", "fault_code": "unavailable", "count": 1}]) \
        .status_code == 200
    faulted = http.post("/lps", content=official_request(birth_name="MARTIN"), headers={"Content-Type": SOAP12})
    assert faulted.status_code == 500 and b"siram" in faulted.content
    assert admin.put("/faults", json=[{"kind": "service_fault", "fault_code": "no_such_fault"}]).status_code == 422


def test_a_misbehaviour_asked_of_a_replay_is_noted_as_not_played(tmp_path: Path) -> None:
    _record(tmp_path / "recordings", ASSERTION, b"<answer/>", service="dmp", path="/si-dmp-server/v2/services/patient")
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite", options={"recordings": str(tmp_path /
                                                                                                  "recordings")})
    with ServerHandle(create_app(build_simulator("replay", settings), settings)) as server:
        admin = {"Authorization": f"Bearer {settings.admin_token}"}
        assert httpx.put(f"{server.url}/_admin/faults", headers=admin,
                         json=[{"kind": "behaviour", "fault_code": "dmp_closed"}]).status_code == 200
        answer = httpx.post(f"{server.url}/si-dmp-server/v2/services/patient", content=ASSERTION,
                            headers={"Content-Type": SOAP12})
        [exchange] = httpx.get(f"{server.url}/_admin/journal", headers=admin).json()["exchanges"]
    assert answer.content == b"<answer/>" and exchange["simulator"] == "dmp"
    assert exchange["notes"]["ignored_behaviours"] == ["dmp_closed"]


def test_hostile_input_gets_the_services_fault_not_a_crash(replay: tuple) -> None:
    _, store, http, _ = replay
    hostile = [path.read_bytes() for path in sorted((VECTORS / "hostile").glob("*.xml"))]
    assert hostile
    for body in [*hostile, b"\xff\xfe" * 10, b"<a>" * 5000]:
        answer = http.post("/lps", content=body, headers={"Content-Type": SOAP12})
        assert answer.status_code == 500 and b"Fault" in answer.content  # the unmatched fault, the service's form
    oversized = http.post("/lps", content=b"<x>" + b"A" * (128 * 1024) + b"</x>", headers={"Content-Type": SOAP12})
    assert oversized.status_code in (413, 500) and b"Fault" in oversized.content
    assert http.post("/lps", content=official_request(birth_name="MARTIN"),
                     headers={"Content-Type": SOAP12}).content == FOUND  # still serving
    assert all(e.outcome == "answered" for e in load_exchanges(store))


def test_a_replay_without_recordings_starts_and_answers_nothing(tmp_path: Path) -> None:
    """As ``esante lab`` and the compose file start every registered simulator, with no option."""
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite")
    simulator = build_simulator("replay", settings)
    assert simulator.name == "replay" and not simulator.library.recordings
    with ServerHandle(create_app(simulator, settings)) as server:
        assert httpx.get(f"{server.url}/anything").status_code == 500
        assert httpx.get(f"{server.url}/_admin/health").json()["simulator"] == "replay"
