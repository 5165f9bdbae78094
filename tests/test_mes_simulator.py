"""The Mon espace santé simulator: pairing (PKCE, state, consent, revocation), measures, documents (and their
filing in the DMP), agenda, paging, rate limits, hostile JSON, each error as an OperationOutcome."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from lxml import html
from starlette.responses import JSONResponse

from esante.harness.lab import mes as mes_fhir
from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import load_exchanges
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.mes import MesSimulator
from esante.simulators.mes.measures import catalogue
from esante.simulators.mes.protocol import mes_patient_id

CLIENT, SECRET = "esante-reference-mes", "reference-mes-partner-secret-0001"
REDIRECT = "http://127.0.0.1:8766/mes/callback"
SCOPES = "patient/Observation.read patient/Observation.write patient/DocumentReference.write " \
         "patient/Appointment.read patient/Appointment.write offline_access"
FHIR = {"Content-Type": "application/fhir+json"}


@dataclass
class Mes:
    url: str
    token: str
    store: EvidenceStore
    http: httpx.Client

    def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        return self.http.request(method, f"{self.url}/_admin{path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def behaviour(self, name: str, **when: Any) -> None:
        assert self.admin("PUT", "/faults", [{"kind": "behaviour", "fault_code": name, **when}]).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mes]:
    tmp = tmp_path_factory.mktemp("mes")
    settings = SimulatorSettings(evidence_path=tmp / "evidence.sqlite", max_body_bytes=2 * 1024 * 1024)
    store = EvidenceStore(settings.evidence_path)
    app = create_app(MesSimulator(load_dataset(), rate_limit=50), settings, store)
    with ServerHandle(app) as handle, httpx.Client(timeout=10) as http:
        yield Mes(handle.url, settings.admin_token, store, http)


@pytest.fixture
def mes(server: Mes, request: pytest.FixtureRequest) -> Mes:
    assert server.admin("POST", "/reset").status_code == 200
    assert server.admin("PUT", "/faults", []).status_code == 200
    assert server.admin("PUT", "/context", {"case_id": request.node.name}).status_code == 200
    return server


# -- pairing helpers -------------------------------------------------------------------------------------------
def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize(mes: Mes, **overrides: str | None) -> tuple[httpx.Response, str, str]:
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "scope": SCOPES,
              "state": state, "code_challenge": s256(verifier), "code_challenge_method": "S256", **overrides}
    answer = mes.http.get(f"{mes.url}/oauth/authorize", params={k: v for k, v in params.items() if v is not None})
    return answer, verifier, state


def consent(mes: Mes, page: httpx.Response, patient: str = "P001", decision: str = "accept") -> dict[str, str]:
    form = html.fromstring(page.text).forms[0]
    values = {**{k: v for k, v in form.fields.items() if isinstance(v, str)}, "patient": patient,
              "decision": decision}
    answer = mes.http.post(urljoin(mes.url, form.action), data=values)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def token(mes: Mes, **form: str) -> httpx.Response:
    return mes.http.post(f"{mes.url}/oauth/token", data=form, auth=(CLIENT, SECRET))


def pair(mes: Mes, patient: str = "P001") -> dict[str, Any]:
    page, verifier, state = authorize(mes)
    back = consent(mes, page, patient)
    assert back["state"] == state
    answer = token(mes, grant_type="authorization_code", code=back["code"], redirect_uri=REDIRECT,
                   code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


def api(mes: Mes, tokens: dict[str, Any], method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tokens['access_token']}", **FHIR}
    content = json.dumps(body) if body is not None else None
    return mes.http.request(method, f"{mes.url}/fhir{path}", content=content, headers=headers, **kw)


def ref(tokens: dict[str, Any]) -> str:
    return f"Patient/{tokens['patient']}"


def issues(answer: httpx.Response) -> str:
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " | ".join(i["diagnostics"] for i in body["issue"])


# -- pairing -------------------------------------------------------------------------------------------------
def test_pairing_gives_tokens_for_the_consenting_citizen(mes: Mes) -> None:
    tokens = pair(mes, "P002")
    patient = load_dataset().patient("P002")
    assert tokens["patient"] == mes_patient_id(patient.ins.nir) and tokens["refresh_token"]
    status = mes.http.get(f"{mes.url}/api/pairing", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert status.json()["status"] == "active"
    read = api(mes, tokens, "GET", f"/Patient/{tokens['patient']}")
    assert read.json()["identifier"][0]["value"] == patient.ins.nir + patient.ins.key


@pytest.mark.parametrize("overrides", [{"code_challenge": None, "code_challenge_method": None},
                                       {"code_challenge_method": "plain"}])
def test_authorization_without_pkce_s256_is_refused(mes: Mes, overrides: dict[str, str | None]) -> None:
    answer, _, state = authorize(mes, **overrides)
    assert answer.status_code == 302
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["error"] == ["invalid_request"] and back["state"] == [state]


def test_wrong_verifier_and_replayed_code_are_refused(mes: Mes) -> None:
    page, verifier, _ = authorize(mes)
    code = consent(mes, page)["code"]
    wrong = token(mes, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                  code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and "PKCE" in wrong.json()["error_description"]
    again = token(mes, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert again.json()["error"] == "invalid_grant"


def test_unknown_client_and_bad_secret(mes: Mes) -> None:
    answer, _, _ = authorize(mes, client_id="nobody")
    assert answer.status_code == 400
    bad = mes.http.post(f"{mes.url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
                        auth=(CLIENT, "wrong-secret-wrong-secret"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_refused_consent_returns_access_denied(mes: Mes) -> None:
    page, _, state = authorize(mes)
    back = consent(mes, page, decision="refuse")
    assert back == {"error": "access_denied", "state": state,
                    "error_description": "the citizen refused the pairing"}


def test_tamper_state_behaviour(mes: Mes) -> None:
    mes.behaviour("tamper_state", path="/oauth/consent")
    page, _, state = authorize(mes)
    assert consent(mes, page)["state"] != state


def test_user_revocation_stops_the_api_and_the_refresh(mes: Mes) -> None:
    tokens = pair(mes)
    revoked = mes.http.post(f"{mes.url}/espace/appariements/{tokens['pairing_id']}/revoke")
    assert revoked.status_code == 200
    answer = api(mes, tokens, "GET", "/Observation")
    assert answer.status_code == 401 and "revoked by the user" in issues(answer)
    assert "invalid_token" in answer.headers["www-authenticate"]
    refresh = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refresh.json() == {"error": "invalid_grant", "error_description": "the pairing is revoked by the user"}


def test_expired_pairing_is_told_apart_from_an_expired_token(mes: Mes) -> None:
    tokens = pair(mes)
    mes.behaviour("expire_pairing", path_prefix="/fhir", count=1)
    answer = api(mes, tokens, "GET", "/Observation")
    assert answer.status_code == 401 and "PAIRING_EXPIRED" in answer.text
    status = mes.http.get(f"{mes.url}/api/pairing", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert status.json()["status"] == "expired"
    refresh = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refresh.json()["error_description"] == "the pairing is expired"


def test_measure_with_its_device(mes: Mes) -> None:
    tokens = pair(mes)
    sent = mes_fhir.bundle(mes_fhir.observation("heart_rate", ref(tokens)))
    device_url = "urn:uuid:7b1c4e55-0c53-4c55-9a43-6c0c2f1d9a11"
    sent["entry"].append({"fullUrl": device_url, "request": {"method": "POST", "url": "Device"},
                          "resource": {"resourceType": "Device", "meta": {"profile": [catalogue().device_profile]},
                                       "manufacturer": "Fictive Devices"}})
    sent["entry"][0]["resource"]["device"] = {"reference": device_url}
    answer = api(mes, tokens, "POST", "", sent)
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created", "201 Created"]
    stored = api(mes, tokens, "GET", "/Observation").json()["entry"][0]["resource"]
    assert stored["device"]["reference"].startswith("Device/")
    sent["entry"][0]["resource"]["device"] = {"reference": "urn:uuid:another"}
    sent["entry"][0]["resource"]["identifier"][0]["value"] = "other"
    assert "is not the Device entry" in issues(api(mes, tokens, "POST", "", sent))


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_pairing(mes: Mes) -> None:
    tokens = pair(mes)
    fresh = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert api(mes, fresh, "GET", "/Observation").status_code == 200
    reuse = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    assert api(mes, fresh, "GET", "/Observation").status_code == 401


def test_revoke_token_behaviour_and_expired_tokens(mes: Mes) -> None:
    tokens = pair(mes)
    mes.behaviour("revoke_token", path_prefix="/fhir", count=1)
    answer = api(mes, tokens, "GET", "/Observation")
    assert answer.status_code == 401 and "revoked" in issues(answer)
    mes.behaviour("short_lifetimes", path="/oauth/token")
    short = token(mes, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert short["expires_in"] == 2


def test_missing_token_is_401_operation_outcome(mes: Mes) -> None:
    answer = mes.http.get(f"{mes.url}/fhir/Observation")
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("application/fhir+json")


# -- measures ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(catalogue().measures))
def test_every_measure_profile_is_accepted(mes: Mes, kind: str) -> None:
    tokens = pair(mes)
    answer = api(mes, tokens, "POST", "", mes_fhir.bundle(mes_fhir.observation(kind, ref(tokens))))
    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["response"]["status"] == "201 Created"


@pytest.mark.parametrize(("change", "expected"), [
    ({"unit": "[lb_av]"}, "is not one of the UCUM units"),
    ({"code": "3141-9"}, "is not a LOINC code"),
    ({"value": 7250}, "outside the plausible range"),
])
def test_wrong_measures_are_refused_with_every_issue(mes: Mes, change: dict[str, Any], expected: str) -> None:
    tokens = pair(mes)
    answer = api(mes, tokens, "POST", "", mes_fhir.bundle(mes_fhir.observation("body_weight", ref(tokens), **change)))
    assert answer.status_code == 422 and expected in issues(answer)


def test_measure_for_another_citizen_and_bad_bundles(mes: Mes) -> None:
    tokens = pair(mes)
    other = mes_fhir.observation("heart_rate", "Patient/someone-else")
    assert "paired citizen" in issues(api(mes, tokens, "POST", "", mes_fhir.bundle(other)))
    batch = mes_fhir.bundle(mes_fhir.observation("heart_rate", ref(tokens))) | {"type": "batch"}
    assert "transaction" in issues(api(mes, tokens, "POST", "", batch))
    broken = mes_fhir.bundle(mes_fhir.observation("heart_rate", ref(tokens)))
    broken["entry"][0]["resource"]["status"] = 12
    assert api(mes, tokens, "POST", "", broken).status_code == 400  # not valid R4: 400, not a business rule


def test_a_retried_measure_is_filed_once(mes: Mes) -> None:
    tokens = pair(mes)
    sent = mes_fhir.bundle(mes_fhir.observation("steps", ref(tokens)))
    mes.behaviour("lose_response", path_prefix="/fhir", count=1)
    assert api(mes, tokens, "POST", "", sent).status_code == 503
    again = api(mes, tokens, "POST", "", sent)
    assert again.json()["entry"][0]["response"]["status"] == "200 OK"
    assert api(mes, tokens, "GET", "/Observation").json()["total"] == 1


def test_reads_page_through_results(mes: Mes) -> None:
    tokens = pair(mes)
    for value in range(60, 85):
        api(mes, tokens, "POST", "", mes_fhir.bundle(mes_fhir.observation("heart_rate", ref(tokens), value=value)))
    first = api(mes, tokens, "GET", "/Observation", params={"code": "http://loinc.org|8867-4", "_count": 10}).json()
    assert first["total"] == 25 and len(first["entry"]) == 10
    seen, link = len(first["entry"]), next(x["url"] for x in first["link"] if x["relation"] == "next")
    while link:
        page = mes.http.get(link, headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        seen += len(page["entry"])
        link = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
    assert seen == 25
    capped = api(mes, tokens, "GET", "/Observation", params={"_count": 1000}).json()  # capped at the page limit
    assert len(capped["entry"]) == 25 and "_count=100" in capped["link"][0]["url"]
    assert api(mes, tokens, "GET", "/Observation", params={"foo": "bar"}).status_code == 400
    assert api(mes, tokens, "GET", "/Observation", params={"_offset": -5}).status_code == 400


def test_rate_limit_answers_429_with_retry_after(mes: Mes) -> None:
    tokens = pair(mes)
    mes.behaviour("rate_limited", path_prefix="/fhir", count=1)
    answer = api(mes, tokens, "GET", "/Observation")
    assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
    # over 50 calls in a second: the real limiter (200 calls span more than one whole second of the window)
    assert any(api(mes, tokens, "GET", "/Observation").status_code == 429 for _ in range(200))


def test_unavailable_fault_is_an_operation_outcome(mes: Mes) -> None:
    tokens = pair(mes)
    mes.admin("PUT", "/faults", [{"kind": "service_fault", "fault_code": "unavailable", "path_prefix": "/fhir"}])
    answer = api(mes, tokens, "GET", "/Observation")
    assert answer.status_code == 503 and "unavailable" in issues(answer)


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"resourceType": "Bundle", "x": "' +
                                  b"a" * (3 * 1024 * 1024) + b'"}', b"\xff\xfe", b"{not json"])
def test_hostile_json_is_refused_cleanly(mes: Mes, body: bytes) -> None:
    tokens = pair(mes)
    answer = mes.http.post(f"{mes.url}/fhir", content=body,
                           headers={"Authorization": f"Bearer {tokens['access_token']}", **FHIR})
    assert answer.status_code in (400, 413)
    assert answer.json()["resourceType"] == "OperationOutcome"


# -- documents, the DMP, agenda ------------------------------------------------------------------------------
@pytest.fixture
def fake_dmp(mes: Mes) -> Iterator[list[dict[str, Any]]]:
    """A DMP peer answering POST /_peer/documents as the DMP simulator's contract says."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/_peer/documents")
    async def file(request: Request) -> Any:
        assert request.headers["authorization"] == "Bearer dmp-admin"
        body = await request.json()
        received.append(body)
        p001 = load_dataset().patient("P001")
        if body["ins"] != p001.ins.nir + p001.ins.key:
            return JSONResponse({"error": "no DMP for this patient"}, status_code=404)
        return JSONResponse({"unique_id": "1.2.3.4", "entry_uuid": "urn:uuid:1"}, status_code=201)

    with ServerHandle(app) as dmp:
        assert mes.admin("PUT", "/peers", {"dmp": {"url": dmp.url, "admin_token": "dmp-admin"}}).status_code == 200
        yield received
    mes.admin("PUT", "/peers", {})


def test_pushed_document_lands_in_the_dmp(mes: Mes, fake_dmp: list[dict[str, Any]]) -> None:
    tokens = pair(mes, "P001")
    answer = api(mes, tokens, "POST", "/DocumentReference", mes_fhir.document(ref(tokens)))
    assert answer.status_code == 201, answer.text
    patient = load_dataset().patient("P001")
    assert fake_dmp[0]["ins"] == patient.ins.nir + patient.ins.key
    assert fake_dmp[0]["type_code"]["code"] == "11502-2" and fake_dmp[0]["source"] == "mes"
    assert base64.b64decode(fake_dmp[0]["content_b64"]).startswith(b"%PDF-")
    notes = [e.notes for e in load_exchanges(mes.store, case_id="test_pushed_document_lands_in_the_dmp")
             if e.notes.get("operation") == "document"]
    assert notes[0]["dmp"] == {"status": 201, "answer": {"unique_id": "1.2.3.4", "entry_uuid": "urn:uuid:1"}}


def test_dmp_filing_check_judges_the_dmp_answer(mes: Mes, fake_dmp: list[dict[str, Any]]) -> None:
    from esante.harness.checks import CheckContext
    from esante.reports.model import Verdict
    from esante.scenarios.mes.checks import document_in_dmp

    verdicts = []
    for patient in ("P001", "P002"):
        mes.admin("PUT", "/context", {"case_id": f"dmp-{patient}"})
        tokens = pair(mes, patient)
        assert api(mes, tokens, "POST", "/DocumentReference", mes_fhir.document(ref(tokens))).status_code == 201
        ctx = CheckContext(f"dmp-{patient}", load_exchanges(mes.store, case_id=f"dmp-{patient}"), [], {},
                           load_dataset())
        verdicts.append(document_in_dmp(ctx))
    assert verdicts[0].verdict == Verdict.PASSED and "uniqueId 1.2.3.4" in verdicts[0].message
    assert verdicts[1].verdict == Verdict.FAILED and "the DMP answered 404" in verdicts[1].message


def test_document_for_a_patient_without_dmp_and_without_type(mes: Mes, fake_dmp: list[dict[str, Any]]) -> None:
    tokens = pair(mes, "P002")
    assert api(mes, tokens, "POST", "/DocumentReference", mes_fhir.document(ref(tokens))).status_code == 201
    assert api(mes, tokens, "POST", "/DocumentReference", mes_fhir.document(ref(tokens), loinc=None)).status_code == 201
    case = "test_document_for_a_patient_without_dmp_and_without_type"
    notes = [e.notes["dmp"] for e in load_exchanges(mes.store, case_id=case)
             if e.notes.get("operation") == "document"]
    assert notes[0]["status"] == 404 and "skipped" in notes[1]


def test_documents_are_checked(mes: Mes) -> None:
    tokens = pair(mes)
    wrong_type = api(mes, tokens, "POST", "/DocumentReference",
                     mes_fhir.document(ref(tokens), content_type="image/png"))
    assert wrong_type.status_code == 422 and "bytes do not start" in issues(wrong_type)
    sent = mes_fhir.document(ref(tokens))
    assert api(mes, tokens, "POST", "/DocumentReference", sent).status_code == 201
    assert api(mes, tokens, "POST", "/DocumentReference", sent).status_code == 200  # the same document again
    no_id = mes_fhir.document(ref(tokens))
    del no_id["masterIdentifier"]
    assert "masterIdentifier" in issues(api(mes, tokens, "POST", "/DocumentReference", no_id))


def test_appointments_sync_by_identifier(mes: Mes) -> None:
    tokens = pair(mes)
    first = mes_fhir.appointment(ref(tokens), "rdv-1")
    key = f"{mes_fhir.APP}|rdv-1"
    assert api(mes, tokens, "PUT", "/Appointment", first, params={"identifier": key}).status_code == 201
    moved = mes_fhir.appointment(ref(tokens), "rdv-1", "2026-02-02T10:00:00+01:00", "2026-02-02T10:30:00+01:00")
    updated = api(mes, tokens, "PUT", "/Appointment", moved, params={"identifier": key})
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    found = api(mes, tokens, "GET", "/Appointment").json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["start"].startswith("2026-02-02")
    backwards = mes_fhir.appointment(ref(tokens), "rdv-2", "2026-02-02T10:00:00+01:00", "2026-02-02T09:00:00+01:00")
    assert "end is not after start" in issues(api(mes, tokens, "POST", "/Appointment", backwards))


def test_scope_not_granted_is_forbidden(mes: Mes) -> None:
    tokens = pair(mes)
    answer = api(mes, tokens, "GET", "/DocumentReference")
    assert answer.status_code == 403 and "does not grant" in issues(answer)


def test_partner_ends_the_pairing_and_suspended_apps_cannot_pair(mes: Mes) -> None:
    tokens = pair(mes)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert mes.http.delete(f"{mes.url}/api/pairing", headers=bearer).status_code == 204
    assert mes.http.get(f"{mes.url}/api/pairing", headers=bearer).json()["revoked_by"] == "partner"
    suspended, _, _ = authorize(mes, client_id="tension-suivi-suspendu")
    assert suspended.status_code == 400 and "suspended" in suspended.text


def test_catalogue_lists_referenced_services(mes: Mes) -> None:
    services = mes.http.get(f"{mes.url}/catalogue/services").json()["services"]
    assert {s["client_id"] for s in services} >= {"podo-compteur", "guide-nutrition"}
    steps = mes.http.get(f"{mes.url}/catalogue/services", params={"category": "activité physique"}).json()
    assert [s["client_id"] for s in steps["services"]] == ["podo-compteur"]
    assert len(mes.http.get(f"{mes.url}/referencing/criteria").json()["criteria"]) == 150


def test_dossier_lifecycle(mes: Mes) -> None:
    text = (Path(__file__).parents[1] / "harness/reference/mes/dossier.yaml").read_bytes()
    submitted = mes.http.post(f"{mes.url}/referencing/dossiers", content=text)
    assert submitted.status_code == 201 and submitted.json()["status"] == "admissible"
    url = f"{mes.url}/referencing/dossiers/{submitted.json()['id']}"
    assert mes.http.post(url + "/advance", json={"to": "opinion"}).status_code == 409
    for step in ("evaluation", "opinion", "agreement", "connection_tests", "referenced"):
        assert mes.http.post(url + "/advance", json={"to": step}).status_code == 200
    history = [h["status"] for h in mes.http.get(url).json()["history"]]
    assert history == ["submitted", "admissible", "evaluation", "opinion", "agreement", "connection_tests",
                       "referenced"]
    bad = mes.http.post(f"{mes.url}/referencing/dossiers",
                        content=(Path(__file__).parent / "vectors/mes/bad_dossier.yaml").read_bytes())
    assert bad.status_code == 422 and bad.json()["status"] == "inadmissible"
