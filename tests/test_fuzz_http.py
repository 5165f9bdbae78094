"""Fuzzing the HTTP surfaces (tests/fuzz.py has the property): PSC's authorize, token, introspect, revoke,
userinfo, CIBA and logout endpoints, Mon espace santé's OAuth routes (its FHIR API is fuzzed in
tests/test_mes_fhir_api.py), the MSSanté directory, every simulator's admin API (schemathesis, from its OpenAPI
document) and the reference candidate's driver API (schemathesis, from harness/driver-openapi.json). Failing
examples found are kept as ``@example``s; the crashes outsiders found are the first of them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import example, given
from hypothesis import strategies as st

from esante.harness.driver import API_PREFIX
from esante.harness.lab import Lab
from esante.harness.lab import mes as mes_lab
from esante.simulators.core.app import build_simulator, create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle, free_port
from esante.simulators.mes import protocol as mes
from esante.simulators.psc import protocol as psc_paths
from tests.conftest import PSC_JWT_CLIENT, RunningPsc
from tests.fuzz import (
    AWKWARD,
    BOUND_SECONDS,
    FHIRISH,
    TEXT,
    answered,
    jwtish,
    oauth_error,
    oauth_or_fhir,
    operation_outcome,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PSC_CLIENTS = st.sampled_from(["esante-reference-rp", "esante-reference-mss", PSC_JWT_CLIENT, "esante-other-rp"])
GRANTS = st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "password",
                          "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:token-exchange"])
TOKENISH = jwtish() | TEXT


def _form(clients: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """OAuth form fields, each present or not, with junk values, and now and then a field given twice."""
    fields = st.fixed_dictionaries({}, optional={
        "grant_type": GRANTS | TEXT, "code": TOKENISH, "redirect_uri": st.just("http://127.0.0.1/cb") | TEXT,
        "client_id": clients | TEXT, "client_secret": TEXT, "client_assertion_type": st.just(ASSERTION_TYPE) | TEXT,
        "client_assertion": TOKENISH, "refresh_token": TOKENISH, "token": TOKENISH, "scope": TEXT,
        "token_type_hint": st.sampled_from(["access_token", "refresh_token"]) | TEXT, "code_verifier": TEXT,
        "auth_req_id": TEXT, "login_hint": TEXT, "login_hint_token": TOKENISH, "binding_message": TEXT,
        "id_token_hint": TOKENISH, "subject_token": TOKENISH, "subject_token_type": TEXT, "audience": TEXT,
        "client_notification_token": TEXT, "requested_expiry": TEXT})
    return st.tuples(fields, st.lists(st.tuples(st.sampled_from(["client_id", "grant_type", "scope"]), TEXT),
                                      max_size=2)).map(lambda pair: [*pair[0].items(), *pair[1]])


def _posted(form: list[tuple[str, str]], headers: dict[str, str]) -> dict[str, Any]:
    """httpx's keywords for a form sent as a browser or client sends it (fields in order, repeated ones kept)."""
    return {"content": urlencode(form).encode(),
            "headers": {"Content-Type": "application/x-www-form-urlencoded", **headers}}


def _authorization(clients: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    basic = st.tuples(clients | TEXT, TEXT).map(
        lambda pair: "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode(errors="surrogatepass")).decode())
    raw = st.sampled_from(["Basic", "Basic !!!", "Bearer", "Bearer  ", "Digest x", "basic Og=="])
    bearer = TOKENISH.map(lambda token: f"Bearer {token}")
    return st.none().map(lambda _: {}) | (basic | raw | bearer).map(lambda value: {"Authorization": _header(value)})


def _header(value: str) -> str:
    """What HTTP lets a client send as a header value (visible ASCII, no edge whitespace): the server sees junk,
    not a connection the client itself refused to open."""
    return "".join(c if " " <= c <= "~" else "?" for c in value).strip() or "x"


QUERY = st.fixed_dictionaries({}, optional={
    "response_type": st.sampled_from(["code", "token", "id_token", "code id_token"]) | TEXT,
    "client_id": PSC_CLIENTS | st.just("esante-reference-mes") | TEXT, "redirect_uri": TEXT,
    "scope": st.sampled_from(["openid scope_all", "openid", "patient/*.read"]) | TEXT, "state": TEXT,
    "nonce": TEXT, "code_challenge": TEXT, "code_challenge_method": st.sampled_from(["S256", "plain"]) | TEXT,
    "response_mode": st.sampled_from(["query", "fragment", "form_post"]) | TEXT, "prompt": TEXT, "max_age": TEXT,
    "acr_values": st.just("eidas1") | TEXT, "request": TOKENISH, "claims": TEXT | FHIRISH.map(json.dumps),
    "login_hint": TEXT, "id_token_hint": TOKENISH, "post_logout_redirect_uri": TEXT, "ui_locales": TEXT})


# -- Pro Santé Connect -------------------------------------------------------------------------------------------

@pytest.fixture
def clean_psc(psc: RunningPsc) -> RunningPsc:
    assert psc.admin("POST", "/reset").status_code == 200
    return psc


PSC_FORM_POSTS = st.sampled_from([psc_paths.TOKEN_PATH, psc_paths.INTROSPECT_PATH, psc_paths.REVOKE_PATH,
                                  psc_paths.CIBA_PATH, psc_paths.USERINFO_PATH, psc_paths.LOGOUT_PATH,
                                  psc_paths.LOGIN_PATH])


@given(path=PSC_FORM_POSTS, form=_form(PSC_CLIENTS), headers=_authorization(PSC_CLIENTS),
       certificate=st.booleans())
@example(path=psc_paths.TOKEN_PATH, form=[("client_assertion_type", ASSERTION_TYPE), ("token", "x"),
                                         ("client_assertion", "eyJhbGciOiJSUzI1NiJ9.WzFd.c2ln")],
         headers={}, certificate=False)  # outsiders' first 500: an assertion whose payload is a list
@example(path=psc_paths.INTROSPECT_PATH, form=[("client_assertion_type", ASSERTION_TYPE), ("token", "x"),
                                              ("client_assertion", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOnsiYSI6MX19.c2ln")],
         headers={}, certificate=False)  # the second: a subject that is an object
def test_psc_answers_any_form_in_oauth_s_error_form(clean_psc: RunningPsc, path: str, form: list[tuple[str, str]],
                                                    headers: dict[str, str], certificate: bool) -> None:
    client = clean_psc.mtls if certificate else clean_psc.http
    answered(clean_psc.store, lambda: client.post(clean_psc.url + path, **_posted(form, headers)),
             error_form=oauth_error)


@given(path=st.sampled_from([psc_paths.AUTHORIZE_PATH, psc_paths.LOGOUT_PATH,
                             psc_paths.USERINFO_PATH, psc_paths.LOGIN_PATH, psc_paths.ECPS_PATH,
                             psc_paths.STANDARD_DISCOVERY_PATH, psc_paths.JWKS_PATH]),
       query=QUERY, headers=_authorization(PSC_CLIENTS))
def test_psc_answers_any_query_in_its_own_form(clean_psc: RunningPsc, path: str, query: dict[str, str],
                                               headers: dict[str, str]) -> None:
    answered(clean_psc.store, lambda: clean_psc.http.get(clean_psc.url + path, params=query, headers=headers),
             error_form=lambda a: oauth_error(a) or a.status_code == 405)


# -- Mon espace santé's OAuth routes -------------------------------------------------------------------------------

MES_CLIENTS = st.sampled_from(["esante-reference-mes", "podo-compteur"])


@pytest.fixture(scope="module")
def mes_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(["mes"], workdir=tmp_path_factory.mktemp("mes-fuzz"), tls=False) as lab:
        yield lab


@given(method=st.sampled_from(["GET", "POST", "DELETE"]),
       path=st.sampled_from([mes.AUTHORIZE_PATH, mes.CONSENT_PATH, mes.TOKEN_PATH, mes.REVOKE_PATH, mes.PAIRING_PATH,
                             f"{mes.USER_PAIRINGS_PATH}/p-unknown/revoke", mes.CATALOGUE_PATH, mes.CRITERIA_PATH]),
       form=_form(MES_CLIENTS), query=QUERY, headers=_authorization(MES_CLIENTS))
def test_mes_oauth_routes_answer_anything_in_their_own_form(mes_sim: Lab, method: str, path: str,
                                                            form: list[tuple[str, str]], query: dict[str, str],
                                                            headers: dict[str, str]) -> None:
    url = mes_sim.url("mes") + path
    sent = _posted(form, headers) if method == "POST" else {"headers": headers}
    answered(mes_sim.store, lambda: mes_sim.client.request(method, url, params=query, **sent),
             error_form=lambda a: oauth_or_fhir(a) or a.status_code == 405)


#: What outsiders found in an hour: GET /fhir/Patient, and dates written as numbers, each a 500.
MES_OUTSIDERS = [("GET", "/Patient", None), ("GET", "/Patient?birthdate=1985", None),
                 ("GET", "/Observation?date=20240101", None),
                 ("POST", "", {"resourceType": "Bundle", "type": "transaction", "entry": [
                     {"request": {"method": "POST", "url": "Observation"},
                      "resource": {"resourceType": "Observation", "status": "final", "effectiveDateTime": 20240101}}]}),
                 ("POST", "/Appointment", {"resourceType": "Appointment", "status": "booked", "start": 20260201,
                                           "end": 1e308, "participant": []})]


@pytest.mark.parametrize(("method", "path", "body"), MES_OUTSIDERS,
                         ids=[f"{m} {p or '/'}" for m, p, _ in MES_OUTSIDERS])
def test_the_fhir_inputs_outsiders_found_are_answered_as_operation_outcomes(mes_sim: Lab, method: str, path: str,
                                                                           body: Any) -> None:
    tokens = mes_lab.mes_pairing(mes_sim.url("mes"), None, "P001", scope=mes_lab.WRITE_SCOPES)
    headers = {"Authorization": f"Bearer {tokens.access_token}", "Content-Type": "application/fhir+json"}
    answer = answered(mes_sim.store, lambda: mes_sim.client.request(
        method, f"{mes_sim.url('mes')}/fhir{path}", headers=headers,
        content=json.dumps(body) if body is not None else None), error_form=operation_outcome)
    assert answer.json()["resourceType"] in ("OperationOutcome", "Bundle")


# -- the MSSanté directory (its mail servers are fuzzed with theirs) -------------------------------------------------

@pytest.fixture(scope="module")
def mss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(["mssante"], workdir=tmp_path_factory.mktemp("mss-fuzz"), tls=False) as lab:
        yield lab


DIRECTORY_KEYS = st.sampled_from(["name", "family", "given", "identifier", "email", "telecom", "organization",
                                  "_count", "_offset", "_include", "_revinclude", "_sort", "_summary", "_elements",
                                  "active", "role", "specialty", "address-city", "_id", "name:contains", "x"])


@given(kind=st.sampled_from(["Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Patient",
                             "Device", ""]) | TEXT,
       query=st.lists(st.tuples(DIRECTORY_KEYS, TEXT), max_size=6), read=st.none() | TEXT,
       post=st.booleans(), key=st.sampled_from([{"ESANTE-API-KEY": "fuzz"}, {}]))
@example(kind="Practitioner", query=[("name", "x")], read=None, post=True, key={})  # a 500 until python-multipart
def test_the_directory_answers_any_search_in_fhir_s_error_form(mss: Lab, kind: str, query: list[tuple[str, str]],
                                                               read: str | None, post: bool,
                                                               key: dict[str, str]) -> None:
    base = f"{mss.url('mssante')}/fhir/v2/{quote(kind, safe='')}"
    if read is not None:
        send = lambda: mss.client.get(f"{base}/{quote(read, safe='')}", headers=key)  # noqa: E731
    elif post:
        send = lambda: mss.client.post(f"{base}/_search", **_posted(query, key))  # noqa: E731
    else:
        send = lambda: mss.client.get(base, params=query, headers=key)  # noqa: E731
    answered(mss.store, send, error_form=lambda a: operation_outcome(a) or a.status_code in (404, 405))


# -- admin APIs and the driver API, from their OpenAPI documents (schemathesis) ------------------------------------

def _schema_cases(document: dict[str, Any], exclude: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    return st.one_of([op.as_strategy() for op in operations if f"{op.method.upper()} {op.path}" not in exclude])


@pytest.fixture(scope="module")
def insi_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(["insi"], workdir=tmp_path_factory.mktemp("admin-fuzz"), tls=False) as lab:
        yield lab


def _admin_document() -> dict[str, Any]:
    """The admin API's OpenAPI document, as every simulator serves it at /_admin/openapi.json."""
    settings = SimulatorSettings(evidence_path=Path(":memory:"))
    app = create_app(build_simulator("insi", settings), settings, EvidenceStore(":memory:"))
    return app.app.openapi()


ADMIN_CASES = _schema_cases(_admin_document())


@given(case=ADMIN_CASES, authorised=st.booleans())
def test_the_admin_api_answers_any_call_as_its_openapi_says(insi_lab: Lab, case: Any, authorised: bool) -> None:
    """Admin calls are harness control (not journaled): never a 5xx, always within the bound, JSON errors."""
    headers = {"Authorization": f"Bearer {insi_lab.admin_token}"} if authorised else {}
    started = time.monotonic()
    answer = case.call(base_url=insi_lab.url("insi"), headers=headers, timeout=BOUND_SECONDS)
    assert time.monotonic() - started < BOUND_SECONDS
    assert answer.status_code < 500, answer.text[:500]
    if answer.status_code >= 400:
        assert "detail" in answer.json()
    insi_lab.admin("insi", "DELETE", "/faults")  # what a call set must not fault the next one


DRIVER_DOCUMENT = json.loads((Path(__file__).parent.parent / "harness" / "driver-openapi.json").read_text())
#: A reset names the simulators' URLs: fuzzed, the candidate would call whatever hosts they name. It is played
#: once, with loopback URLs of closed ports, and never fuzzed.
DRIVER_CASES = _schema_cases(DRIVER_DOCUMENT, exclude=(f"POST {API_PREFIX}/reset",))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from esante.harness.reference import create_reference_app

    with ServerHandle(create_reference_app(pki_dir=tmp_path_factory.mktemp("ref-pki"))) as server:
        closed = f"http://127.0.0.1:{free_port()}"
        names = ("insi", "psc", "dmp", "mes", "mssante")
        assert httpx.post(server.url + API_PREFIX + "/reset",
                          json={"endpoints": dict.fromkeys(names, closed)}).status_code == 204
        yield server.url


@given(case=DRIVER_CASES)
def test_the_reference_candidate_s_driver_api_answers_any_call(reference: str, case: Any) -> None:
    started = time.monotonic()
    answer = case.call(base_url=reference, timeout=BOUND_SECONDS * 2)
    assert time.monotonic() - started < BOUND_SECONDS * 2
    assert answer.status_code < 500, answer.text[:500]


@given(value=AWKWARD)
def test_the_evidence_export_takes_any_page_request(insi_lab: Lab, value: str) -> None:
    answer = insi_lab.admin("insi", "GET", f"/records?since={quote(value)}&limit={quote(value)}")
    assert answer.status_code < 500, answer.text[:300]
