"""``esante proxy`` (mitmproxy) between the reference candidate and the simulators, ``esante judge`` on what it
captured, and record and replay: the "real upstream" here is one of our simulators, everything on loopback.

mitmproxy runs as ``mitmdump`` from an environment of its own (on Python 3.11 it cannot share this one: see
``esante.harness.proxy.process``); these tests find it through ``ESANTE_MITMDUMP`` or the PATH, and skip saying so
when it is not installed.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from esante.harness.campaign import load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.cli import app
from esante.harness.driver import API_PREFIX, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.judge import JudgeOutput, JudgeRequest, judge
from esante.harness.proxy import (
    EXPLICIT,
    PROXY,
    REVERSE,
    ProxiedEnvironment,
    ProxyHandle,
    ProxySettings,
    ProxyUnavailable,
    Upstream,
    find_mitmdump,
)
from esante.harness.reference import create_reference_app
from esante.harness.runner import CampaignRunner
from esante.harness.session import RunRequest, play
from esante.reports import verify_bundle
from esante.reports.model import RunResult, Verdict
from esante.simulators.core.app import build_simulator, create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import Exchange, load_exchanges
from esante.simulators.core.pki import CA_CERT_FILE, TestCA, client_ssl_context, server_ssl_context
from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
from esante.simulators.core.server import ServerHandle, free_port
from tests.conftest import official_request
from tests.insi_official import require_official

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SOAP = {"Content-Type": "application/soap+xml; charset=utf-8"}


@pytest.fixture(scope="module")
def mitmdump() -> str:
    try:
        return find_mitmdump()
    except ProxyUnavailable as exc:
        pytest.skip(str(exc))


# -- playing a campaign, directly or through the proxy -----------------------------------------------------------
@dataclass
class Played:
    result: RunResult
    store: EvidenceStore
    tmp: Path


@contextmanager
def reference_candidate(pki: Path, defects: list[str], proxy_url: str | None) -> Iterator[str]:
    """The reference candidate's driver URL: served here, or (explicit mode) as a process of its own whose HTTP
    client uses the proxy (``HTTPS_PROXY``), as an editor's software is configured."""
    if proxy_url is None:
        with ServerHandle(create_reference_app(pki_dir=pki, defects=defects)) as server:
            yield server.url + API_PREFIX
        return
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "all_proxy")}
    env |= {"HTTPS_PROXY": proxy_url, "ESANTE_PKI_DIR": str(pki)}
    command = [sys.executable, "-m", "esante.harness.cli", "reference", "--port", str(port),
               *(a for d in defects for a in ("--defect", d))]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{API_PREFIX}"
    try:
        _wait_for(f"{url}/info", process)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: a server may wait on a keep-alive TLS connection a client of this process left open."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1, verify=False, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def play_campaign(campaign: str, tmp: Path, *, defects: list[str] = (), mode: str | None = None,  # type: ignore[assignment]
                  mitmdump: str | None = None, record: Path | None = None, cases: set[str] | None = None) -> Played:
    """Play ``campaign`` against the reference candidate on local simulators, through the proxy when ``mode``."""
    loaded = load_campaign(resolve_campaign(campaign), known_checks=load_checks())
    pki = tmp / "pki"
    store = EvidenceStore(tmp / "evidence.sqlite")
    with ExitStack() as stack:
        env = stack.enter_context(LocalEnvironment(loaded.campaign.campaign.simulators, store=store, pki_dir=pki))
        proxy_url = None
        if mode is not None:
            settings = ProxySettings([Upstream(n, url) for n, url in env.endpoints.items()], mode=mode, pki_dir=pki,
                                     upstream_ca=pki / CA_CERT_FILE, client_certs=pki / "reference",
                                     record_dir=record, mitmdump=mitmdump)
            proxy = stack.enter_context(ProxyHandle(settings, store))
            env = stack.enter_context(ProxiedEnvironment(env, proxy))
            proxy_url = proxy.proxy_url if mode == EXPLICIT else None
        driver = stack.enter_context(DriverClient(stack.enter_context(reference_candidate(pki, list(defects),
                                                                                          proxy_url))))
        result = CampaignRunner(loaded, env, driver=driver, case_ids=cases).run()
    return Played(result, store, tmp)


def verdicts(result: RunResult) -> dict[str, Verdict]:
    return {case.id: case.verdict for case in result.cases}


def check_verdicts(result: RunResult) -> dict[tuple[str, str], Verdict]:
    return {(case.id, check.check): check.verdict for case in result.cases for check in case.checks}


def seen_twice(played: Played) -> list[tuple[Exchange, Exchange]]:
    """Every exchange of the run as the proxy journaled it and as the simulator did, paired in order per case;
    their request and response bodies are equal."""
    exchanges = load_exchanges(played.store, run_id=played.result.run_id)
    pairs = []
    for case in played.result.cases:
        proxied = [e for e in exchanges if e.case_id == case.id and e.simulator == PROXY]
        direct = [e for e in exchanges if e.case_id == case.id and e.simulator != PROXY]
        assert len(proxied) == len(direct), case.id
        pairs += list(zip(proxied, direct, strict=True))
    for captured, journaled in pairs:
        assert (captured.method, captured.path, captured.query) == (journaled.method, journaled.path, journaled.query)
        assert captured.request_body == journaled.request_body
        assert captured.response_body == journaled.response_body
        assert captured.status == journaled.status, (captured.case_id, captured.outcome, journaled.outcome)
        assert captured.client_cert_subject == journaled.client_cert_subject  # the candidate's own, presented on
    return pairs


def judged(played: Played) -> JudgeOutput:
    return judge(JudgeRequest(played.result.campaign.id.split("-")[0].lower(), played.tmp / "evidence.sqlite",
                              out_dir=played.tmp / "judged", signing_key=played.tmp / "key.pem"))


def assert_judged_like(judgement: JudgeOutput, direct: RunResult) -> set[tuple[str, str]]:
    """The judgement agrees with the direct run on every check it could apply; the others say why they could
    not. Returns the checks it applied."""
    expected = check_verdicts(direct)
    applied = set()
    for case in judgement.result.cases:
        for check in case.checks:
            if check.verdict is Verdict.SKIPPED:
                assert check.message.startswith("not applicable: "), check.message
                continue
            assert check.verdict == expected[(case.id, check.check)], (case.id, check.check, check.message)
            applied.add((case.id, check.check))
    return applied


# -- INSi and the DMP, through the proxy --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def insi_direct(tmp_path_factory: pytest.TempPathFactory) -> Played:
    return play_campaign("insi", tmp_path_factory.mktemp("insi-direct"), defects=["wrong_oid"])


@pytest.fixture(scope="module")
def insi_reverse(tmp_path_factory: pytest.TempPathFactory, mitmdump: str) -> Played:
    return play_campaign("insi", tmp_path_factory.mktemp("insi-reverse"), defects=["wrong_oid"], mode=REVERSE,
                         mitmdump=mitmdump)


def test_insi_through_the_reverse_proxy_gets_the_direct_verdicts_and_every_exchange_twice(
        insi_direct: Played, insi_reverse: Played) -> None:
    assert verdicts(insi_reverse.result) == verdicts(insi_direct.result)
    assert Verdict.FAILED in verdicts(insi_direct.result).values()  # the defect bites: the comparison means something
    pairs = seen_twice(insi_reverse)
    assert len(pairs) >= len(insi_reverse.result.cases)
    assert {c.outcome for c, _ in pairs} >= {"answered", "dropped"}  # INSI-16's dropped connection, mirrored
    assert all(c.client_cert_subject and "CN=INSI-AUTO" in c.client_cert_subject for c, _ in pairs)
    assert not insi_reverse.store.verify()


def test_judging_the_insi_capture_gives_the_direct_verdicts(insi_direct: Played, insi_reverse: Played) -> None:
    judgement = judged(insi_reverse)
    applied = assert_judged_like(judgement, insi_direct.result)
    assert applied == set(check_verdicts(insi_direct.result))  # INSi's checks read bytes and reports only
    assert verdicts(judgement.result) == verdicts(insi_direct.result)
    exchanges = [e for case in judgement.result.cases for e in case.exchanges]
    assert exchanges and all(e.notes["origin"].startswith("captured by esante proxy (reverse)") for e in exchanges)
    assert verify_bundle(judgement.reports.bundle).ok


def test_a_capture_without_the_candidates_reports_is_judged_on_the_bytes_alone(tmp_path: Path,
                                                                            insi_reverse: Played) -> None:
    """A person captured the traffic by hand: no step records. Checks of the messages still apply; checks of what
    the candidate reported say they cannot."""
    source = EvidenceStore(tmp_path / "hand.sqlite")
    for record in insi_reverse.store.records():
        if record.kind.startswith("exchange.") and record.payload["simulator"] == PROXY:
            blobs = {k[:-7]: insi_reverse.store.blob(v) or b"" for k, v in record.payload.items()
                     if k.endswith("_sha256")}
            payload = {k: v for k, v in record.payload.items() if not k.endswith(("_sha256", "_size"))}
            source.append(record.kind, payload, run_id="by-hand", case_id=record.case_id, ref=record.ref, blobs=blobs)
    judgement = judge(JudgeRequest("insi", source.path, out_dir=tmp_path / "out", signing_key=tmp_path / "k.pem",
                                   case_ids={"INSI-01"}))
    checks = {c.check: c for c in judgement.result.cases[0].checks}
    assert checks["insi.soap12_envelope"].verdict is Verdict.PASSED
    assert checks["identity.status_after_retrieval"].verdict is Verdict.SKIPPED
    assert "what the candidate reported" in checks["identity.status_after_retrieval"].message


def test_dmp_through_the_reverse_proxy(tmp_path_factory: pytest.TempPathFactory, mitmdump: str) -> None:
    direct = play_campaign("dmp", tmp_path_factory.mktemp("dmp-direct"))
    proxied = play_campaign("dmp", tmp_path_factory.mktemp("dmp-reverse"), mode=REVERSE, mitmdump=mitmdump)
    assert verdicts(proxied.result) == verdicts(direct.result)
    assert seen_twice(proxied)
    judgement = judged(proxied)
    assert_judged_like(judgement, direct.result)
    reasons = {c.message for case in judgement.result.cases for c in case.checks if c.verdict is Verdict.SKIPPED}
    assert any("what the simulator noted" in r for r in reasons)  # the DMP's checks read its notes (VIHF, rights)


@pytest.mark.parametrize("campaign", ["insi", "dmp"])
def test_through_the_explicit_proxy(campaign: str, tmp_path_factory: pytest.TempPathFactory, mitmdump: str,
                                    insi_direct: Played) -> None:
    """The candidate keeps the services' URLs and uses the proxy (HTTPS_PROXY), mutual TLS included."""
    defects = ["wrong_oid"] if campaign == "insi" else []
    direct = insi_direct if campaign == "insi" else play_campaign("dmp", tmp_path_factory.mktemp("dmp-direct2"))
    proxied = play_campaign(campaign, tmp_path_factory.mktemp(f"{campaign}-explicit"), defects=defects,
                            mode=EXPLICIT, mitmdump=mitmdump)
    assert verdicts(proxied.result) == verdicts(direct.result)
    assert seen_twice(proxied)
    assert_judged_like(judged(proxied), direct.result)


# -- record and replay ----------------------------------------------------------------------------------------------
def test_record_the_insi_campaign_then_replay_it(tmp_path: Path, mitmdump: str) -> None:
    recordings = tmp_path / "recordings"
    recorded = play_campaign("insi", tmp_path / "record", mode=REVERSE, mitmdump=mitmdump, record=recordings)
    assert set(verdicts(recorded.result).values()) == {Verdict.PASSED}
    files = sorted((recordings / "insi").glob("*.yaml"))
    assert files and yaml.safe_load(files[0].read_text())["match"]["operation"] in ("RECSANSVITALE", "RECVITALE")
    # the simulator is gone: the campaign plays against the recordings
    with replay_process(recordings, tmp_path) as (url, token):
        config = tmp_path / "simulators.yaml"
        config.write_text(yaml.safe_dump({"simulators": {"insi": url}, "ca": str(tmp_path / "record" / "pki" /
                                                                                   CA_CERT_FILE)}))
        os.environ["ESANTE_ADMIN_TOKEN"] = token
        try:
            replayed = play(RunRequest(campaign="insi", simulators=str(config), pki_dir=tmp_path / "record" / "pki",
                                       out_dir=tmp_path / "replayed", signing_key=tmp_path / "key.pem"))
        finally:
            del os.environ["ESANTE_ADMIN_TOKEN"]
        assert verdicts(replayed.result) == verdicts(recorded.result)
        # a request never recorded: the service's fault, and an evidence entry listing it
        tls = client_ssl_context((tmp_path / "record" / "pki" / CA_CERT_FILE).read_bytes())
        answer = httpx.post(f"{url}/lps", content=official_request(birth_name="NEVERSEEN"), headers=SOAP, verify=tls)
    assert answer.status_code == 500 and b"siram" in answer.content and b"Fault" in answer.content
    [unmatched] = [e for e in load_exchanges(EvidenceStore(tmp_path / "replay.sqlite"))
                   if e.notes.get("unmatched")]
    assert unmatched.notes["match"]["values"]["NomNaissance"] == "NEVERSEEN"


@contextmanager
def replay_process(recordings: Path, tmp: Path) -> Iterator[tuple[str, str]]:
    """``esante sim replay DIR --tls`` in a process of its own, with the recording run's test PKI."""
    port, token = free_port(), "replay-admin-token"
    env = {**os.environ, "ESANTE_ADMIN_TOKEN": token, "ESANTE_PKI_DIR": str(tmp / "record" / "pki")}
    command = [sys.executable, "-m", "esante.harness.cli", "sim", "replay", str(recordings), "--tls",
               "--port", str(port), "--evidence", str(tmp / "replay.sqlite")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/_admin/health", process)
        yield url, token
    finally:
        _stop(process)


# -- mutual TLS towards the upstream -------------------------------------------------------------------------------
@pytest.fixture
def mtls_insi(tmp_path: Path) -> Iterator[tuple[ServerHandle, EvidenceStore, Path]]:
    """The INSi simulator on its mutual-TLS endpoint (a client certificate of the test CA is required)."""
    pki = tmp_path / "pki"
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    settings = SimulatorSettings(evidence_path=store.path, pki_dir=pki)
    app_ = create_app(build_simulator("insi", settings), settings, store)
    with ServerHandle(app_, tls=TlsSettings(pki_dir=pki, require_client_cert=True)) as server:
        yield server, store, pki


def test_mutual_tls_upstream_with_the_candidates_certificate(mtls_insi: tuple[ServerHandle, EvidenceStore, Path],
                                                             mitmdump: str) -> None:
    server, store, pki = mtls_insi
    cert = TestCA.load_or_create(pki).issue_client("INSI-AUTO").write(pki / "candidate", "insi-auto")
    settings = ProxySettings([Upstream("insi", server.url)], pki_dir=pki, upstream_ca=pki / CA_CERT_FILE,
                             client_certs=pki / "candidate", mitmdump=mitmdump)
    with ProxyHandle(settings, store) as proxy:
        tls = client_ssl_context((pki / CA_CERT_FILE).read_bytes(), cert)
        answer = httpx.post(proxy.endpoints({})["insi"] + "/lps", content=official_request(), headers=SOAP,
                            verify=tls)
    assert answer.status_code == 200 and b"<CodeCR>00</CodeCR>" in answer.content.replace(b"ns0:", b"")
    captured, journaled = load_exchanges(store)
    assert captured.simulator == PROXY and journaled.simulator == "insi"
    assert captured.client_cert_subject == journaled.client_cert_subject == "CN=INSI-AUTO,O=ESANTE TEST,C=FR"
    [upstream] = [r.payload["capture"]["upstream"] for r in store.records(kind="exchange.response")
                  if r.payload["simulator"] == PROXY]
    assert upstream["client_certificate"] == journaled.client_cert_subject
    assert upstream["certificate"]["subject"].startswith("CN=localhost")


def test_a_wrong_certificate_is_recorded_as_a_tls_failure(mtls_insi: tuple[ServerHandle, EvidenceStore, Path],
                                                          mitmdump: str, tmp_path: Path) -> None:
    server, store, pki = mtls_insi
    wrong, _ = TestCA.create("ANOTHER CA").issue_client("INSI-AUTO").write(tmp_path / "wrong", "insi-auto")
    settings = ProxySettings([Upstream("insi", server.url)], pki_dir=pki, upstream_ca=pki / CA_CERT_FILE,
                             client_cert=wrong, mitmdump=mitmdump)
    with ProxyHandle(settings, store) as proxy:
        admin = httpx.Client(base_url=f"{proxy.admin_url}/_admin", trust_env=False,
                             headers={"Authorization": f"Bearer {settings.admin_token}"})
        assert admin.put("/context", json={"run_id": "r1", "case_id": "MTLS-1"}).status_code == 200
        with pytest.raises(httpx.HTTPError):  # no answer upstream: none to the candidate either
            httpx.post(proxy.endpoints({})["insi"] + "/lps", content=official_request(), headers=SOAP,
                       verify=client_ssl_context((pki / CA_CERT_FILE).read_bytes()))
        with pytest.raises(httpx.ConnectError):  # a candidate that does not trust the test CA: a TLS failure too
            httpx.get(proxy.endpoints({})["insi"] + "/lps", verify=ssl.create_default_context())
        admin.close()
        deadline = time.monotonic() + 10  # the proxy learns of the candidate's refusal after the candidate left
        while len(failed := load_exchanges(store, run_id="r1", case_id="MTLS-1")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [(e.method, e.outcome) for e in failed] == [("POST", "tls_failed"), ("TLS", "tls_failed")]
    errors = [r.payload["capture"]["error"] for r in store.records(kind="exchange.response", case_id="MTLS-1")]
    assert "candidate: " in errors[1] and errors[0]
    assert not load_exchanges(store, simulator="insi")  # the upstream never received the request


# -- the commands ----------------------------------------------------------------------------------------------------
def test_esante_proxy_and_esante_judge(tmp_path: Path, mitmdump: str, insi_reverse: Played) -> None:
    """``esante proxy`` in the foreground journals what it relays; ``esante judge`` writes the reports of a capture."""
    listener = socket.create_server(("127.0.0.1", 0))
    ca = TestCA.load_or_create(tmp_path / "pki")
    context = server_ssl_context(ca.issue_server(), ca.ca_pem)
    threading.Thread(target=_answer_once, args=(listener, context), daemon=True).start()
    port, admin = free_port(), free_port()
    env = {**os.environ, "ESANTE_PKI_DIR": str(tmp_path / "pki"), "ESANTE_MITMDUMP": mitmdump,
           "ESANTE_ADMIN_TOKEN": "t0ken"}
    command = [sys.executable, "-m", "esante.harness.cli", "proxy", "--upstream",
               f"echo=https://127.0.0.1:{listener.getsockname()[1]}", "--service-port", f"echo={port}",
               "--admin-port", str(admin), "--evidence", str(tmp_path / "capture.sqlite"),
               "--upstream-ca", str(tmp_path / "pki" / CA_CERT_FILE)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{admin}/_admin/health", process)
        deadline = time.monotonic() + 60  # the admin API answers first; mitmproxy is ready when its addons say so
        while httpx.get(f"http://127.0.0.1:{admin}/_admin/health", trust_env=False).json()["status"] != "ok":
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        answer = httpx.get(f"https://127.0.0.1:{port}/hello?x=1", verify=client_ssl_context(ca.ca_pem))
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    listener.close()
    assert answer.text == "hello" and "reverse mode" in output and f"127.0.0.1:{port}" in output
    [exchange] = load_exchanges(EvidenceStore(tmp_path / "capture.sqlite"))
    assert (exchange.method, exchange.path, exchange.query, exchange.response_body) == ("GET", "/hello", "x=1",
                                                                                         b"hello")
    result = CliRunner().invoke(app, ["judge", "insi", "--evidence", str(insi_reverse.tmp), "--out",
                                      str(tmp_path / "judged"), "--signing-key", str(tmp_path / "k.pem")])
    assert result.exit_code == 1, result.output  # the wrong_oid defect fails cases, as in the direct run
    assert (tmp_path / "judged" / "report.html").is_file() and (tmp_path / "judged" / "report.pdf").is_file()
    refused = CliRunner().invoke(app, ["judge", "insi", "--evidence", str(tmp_path / "nothing")])
    assert refused.exit_code == 4 and "no evidence store" in refused.output


def _answer_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.recv(65536)
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                    b"hello")


# -- an outsider: zeep, from the official WSDL alone --------------------------------------------------------------
def test_zeep_through_the_proxy_then_against_the_replay(tmp_path: Path, mitmdump: str) -> None:
    """An independent SOAP client generated from the official INSi WSDL reads the same answers through the proxy
    (mutual TLS with its own certificate) and from the replay of what the proxy recorded; and the replay's fault
    for a request never recorded parses as the WSDL's ``siram:Erreur``."""
    require_official()
    from zeep.exceptions import Fault

    from tests.test_insi_zeep import InsiZeep, _assert_found, requests

    pki, recordings = tmp_path / "pki", tmp_path / "recordings"
    with LocalEnvironment(["insi"], store=EvidenceStore(tmp_path / "e.sqlite"), pki_dir=pki) as env:
        cert, key = TestCA.load_or_create(pki).issue_client("INSI-AUTO").write(pki / "zeep", "insi-auto")
        session = requests.Session()
        session.verify, session.cert = str(pki / CA_CERT_FILE), (str(cert), str(key))
        settings = ProxySettings([Upstream("insi", env.endpoints["insi"])], pki_dir=pki,
                                 upstream_ca=pki / CA_CERT_FILE, client_certs=pki / "zeep", record_dir=recordings,
                                 mitmdump=mitmdump)
        with ProxyHandle(settings, env.store) as proxy:
            found = InsiZeep(proxy.endpoints({})["insi"] + "/lps", session).traits("NOËL", ["FRANÇOIS"], "M",
                                                                                   "1971-12-25")
    _assert_found(found, "1711244109063", "96", "FRANCOIS GABRIEL")
    replay_settings = SimulatorSettings(evidence_path=tmp_path / "replay.sqlite", pki_dir=pki,
                                        options={"recordings": str(recordings)})
    replay_app = create_app(build_simulator("replay", replay_settings), replay_settings)
    with ServerHandle(replay_app, tls=TlsSettings(pki_dir=pki)) as replay:
        client = InsiZeep(f"{replay.url}/lps", session)
        _assert_found(client.traits("NOËL", ["FRANÇOIS"], "M", "1971-12-25"), "1711244109063", "96",
                      "FRANCOIS GABRIEL")
        with pytest.raises(Fault) as fault:
            client.traits("NEVERSEEN", ["X"], "M", "1971-12-25")
    assert client.erreur(fault.value).code and fault.value.code


def test_without_mitmproxy_the_proxy_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_MITMDUMP", str(tmp_path / "absent"))
    with pytest.raises(ProxyUnavailable, match=r"mitmproxy==11\.0\.2"):
        find_mitmdump()
    result = CliRunner().invoke(app, ["proxy", "--upstream", "insi=https://127.0.0.1:1", "--evidence",
                                      str(tmp_path / "capture.sqlite")])
    assert result.exit_code == 4 and "ESANTE_MITMDUMP" in result.output
    wrong = CliRunner().invoke(app, ["proxy", "--upstream", "insi", "--evidence", str(tmp_path / "capture.sqlite")])
    assert wrong.exit_code == 4 and "SERVICE=URL" in wrong.output
