"""Mon espace santé's FHIR R4 API as http://hl7.org/fhir/R4/http.html and search.html say, over HTTP: the
CapabilityStatement against what is routed, every resource every route returns held to HL7's R4 JSON Schema
(jsonschema's plain Draft 6 validator), versioning, conditional writes, ``Prefer``, transactions in request
order, search semantics, errors as OperationOutcomes, content negotiation, and no 5xx from any input
(hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft6Validator

from esante.harness.lab import mes as lab
from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.kits.fhir.validation import r4_schema, schema_problems
from esante.simulators.mes import MesSimulator
from esante.simulators.mes.measures import catalogue
from tests.fuzz import FHIRISH, JSON

ALL_SCOPES = lab.WRITE_SCOPES + " patient/DocumentReference.read"
FHIR_JSON = "application/fhir+json"
INTERACTIONS = ("read", "vread", "update", "history-instance", "create", "search-type")


@dataclass
class Api:
    """The simulator, a paired citizen's token, and every FHIR body answered (to hold them all to the schema)."""

    url: str
    admin_token: str
    http: httpx.Client
    token: str = ""
    patient: str = ""
    seen: list[tuple[str, Any]] = field(default_factory=list, repr=False)

    def call(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
             **kw: Any) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.token}", **({"Content-Type": FHIR_JSON} if body is not None else {}),
                **(headers or {})}
        content = body if isinstance(body, bytes | str) else json.dumps(body) if body is not None else None
        url = path if path.startswith("http") else f"{self.url}/fhir{path}"
        answer = self.http.request(method, url, content=content, headers=sent, **kw)
        if answer.content and answer.headers.get("content-type", "").startswith(FHIR_JSON):
            self.seen.append((f"{method} {path} -> {answer.status_code}", answer.json()))
        return answer

    @property
    def ref(self) -> str:
        return f"Patient/{self.patient}"


def start(tmp: Path, rate_limit: int) -> tuple[ServerHandle, SimulatorSettings]:
    settings = SimulatorSettings(evidence_path=tmp / "evidence.sqlite")
    simulator = MesSimulator(load_dataset(), rate_limit=rate_limit)
    app = create_app(simulator, settings, EvidenceStore(settings.evidence_path))
    return ServerHandle(app), settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    handle, settings = start(tmp_path_factory.mktemp("mes-fhir"), rate_limit=100_000)
    with handle, httpx.Client(timeout=10) as http:
        yield Api(handle.url, settings.admin_token, http)


@pytest.fixture
def api(server: Api) -> Api:
    assert server.http.post(f"{server.url}/_admin/reset",
                            headers={"Authorization": f"Bearer {server.admin_token}"}).status_code == 200
    tokens = lab.mes_pairing(server.url, None, "P001", scope=ALL_SCOPES)
    server.token, server.patient = tokens.access_token, str(tokens.model_extra["patient"])
    server.seen.clear()
    return server


def r4_errors(body: Any) -> list[str]:
    """What HL7's R4 JSON Schema finds wrong (the verdict: jsonschema's plain validator; the kit's names the place,
    since a failed ``oneOf`` of every resource type says little)."""
    if Draft6Validator(r4_schema()).is_valid(body):
        return []
    return schema_problems(body, str(body.get("resourceType"))) or ["not valid under the R4 schema"]


def measure(api: Api, kind: str = "heart_rate", ident: str | None = None, **kw: Any) -> httpx.Response:
    return api.call("POST", "", lab.bundle(lab.observation(kind, api.ref, ident=ident, **kw)))


def with_device(api: Api) -> dict[str, Any]:
    """A MesBundleFluxAlimentation whose Device entry comes first (the answer keeps that order)."""
    sent = lab.bundle(lab.observation("heart_rate", api.ref))
    device = "urn:uuid:7b1c4e55-0c53-4c55-9a43-6c0c2f1d9a11"
    sent["entry"].insert(0, {"fullUrl": device, "request": {"method": "POST", "url": "Device"},
                             "resource": {"resourceType": "Device", "meta": {"profile": [catalogue().device_profile]},
                                          "manufacturer": "Fictive Devices"}})
    sent["entry"][1]["resource"]["device"] = {"reference": device}
    return sent


# -- discovery -----------------------------------------------------------------------------------------------------
def test_metadata_and_smart_configuration_are_public_and_agree(api: Api) -> None:
    statement = api.http.get(f"{api.url}/fhir/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"].startswith("4.0.")
    assert not r4_errors(statement)
    oauth = {e["url"]: e["valueUri"] for e in statement["rest"][0]["security"]["extension"][0]["extension"]}
    for where in ("/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"):
        smart = api.http.get(api.url + where).json()
        assert (smart["authorization_endpoint"], smart["token_endpoint"], smart["revocation_endpoint"]) == \
            (oauth["authorize"], oauth["token"], oauth["revoke"])
        assert smart["code_challenge_methods_supported"] == ["S256"]
    assert oauth["authorize"] == f"{api.url}/oauth/authorize"


def _request_for(interaction: str, kind: str, ids: dict[str, str]) -> tuple[str, str]:
    ident = ids.get(kind, "unknown-id")
    return {"read": ("GET", f"/{kind}/{ident}"), "vread": ("GET", f"/{kind}/{ident}/_history/1"),
            "update": ("PUT", f"/{kind}/{ident}"), "history-instance": ("GET", f"/{kind}/{ident}/_history"),
            "create": ("POST", f"/{kind}"), "search-type": ("GET", f"/{kind}")}[interaction]


def test_the_capability_statement_is_what_is_routed(api: Api) -> None:
    """Each interaction stated answers (whatever its verdict on this body), each one not stated is 405; each
    search parameter stated is applied, one not stated is refused."""
    measure(api)
    ids = {"Patient": api.patient, "Observation": api.call("GET", "/Observation").json()["entry"][0]["resource"]["id"]}
    statement = api.http.get(f"{api.url}/fhir/metadata").json()
    values = {"token": "x", "date": "ge2000-01-01", "string": "x", "reference": api.ref}
    for resource in statement["rest"][0]["resource"]:
        kind, stated = resource["type"], {i["code"] for i in resource["interaction"]}
        for interaction in INTERACTIONS:
            method, path = _request_for(interaction, kind, ids)
            status = api.call(method, path, {"resourceType": kind} if method in ("POST", "PUT") else None).status_code
            assert (status == 405) == (interaction not in stated), (kind, interaction, status)
        for param in resource.get("searchParam", []):
            answer = api.call("GET", f"/{kind}", params={param["name"]: values[param["type"]]})
            assert answer.status_code == 200, (kind, param, answer.text)
            assert param["name"] in answer.json()["link"][0]["url"]
        assert api.call("GET", f"/{kind}", params={"not-a-parameter": "x"}).status_code == 400
    assert {i["code"] for i in statement["rest"][0]["interaction"]} == {"transaction"}
    assert api.call("POST", "", {"resourceType": "Bundle", "type": "transaction"}).status_code != 405


# -- what is served is R4 ------------------------------------------------------------------------------------------
def test_every_resource_every_route_returns_is_r4(api: Api) -> None:
    filed = api.call("POST", "", with_device(api))
    document = api.call("POST", "/DocumentReference", lab.document(api.ref))
    appointment = api.call("PUT", "/Appointment", lab.appointment(api.ref, "r1"),
                           params={"identifier": f"{lab.APP}|r1"}).json()
    api.call("PUT", f"/Appointment/{appointment['id']}", {**appointment, "status": "cancelled"})
    for location in (*(e["response"]["location"] for e in filed.json()["entry"]), document.headers["location"]):
        kind, ident = urlsplit(location).path.split("/")[2:4]
        api.call("GET", location)
        api.call("GET", f"/{kind}/{ident}")
        api.call("GET", f"/{kind}/{ident}/_history")
        api.call("GET", f"/{kind}", params={"_id": ident})
    for kind in ("Observation", "Device", "DocumentReference", "Appointment", "Patient"):
        api.call("GET", f"/{kind}", params={"_count": "1"})
        api.call("POST", f"/{kind}/_search", "_count=0", headers={"Content-Type": "application/x-www-form-urlencoded"})
    api.call("GET", f"/Appointment/{appointment['id']}/_history")
    api.call("GET", f"/Patient/{api.patient}")
    for method, path in (("GET", "/metadata"), ("DELETE", "/Observation/x"), ("GET", "/Nonsense"),
                         ("GET", "/a/b/c/d/e"), ("PATCH", f"/Patient/{api.patient}"),
                         ("GET", "/Observation?colour=blue"), ("POST", "/Observation")):
        api.call(method, path)
    api.call("GET", "/Observation", headers={"Accept": "application/fhir+xml"})
    api.call("POST", "/DocumentReference", b"<xml/>", headers={"Content-Type": "application/fhir+xml"})
    api.call("POST", "", {"resourceType": "Bundle", "type": "transaction", "entry": [{"fullUrl": None}]})
    kinds = {body["resourceType"] for _, body in api.seen}
    assert kinds >= {"CapabilityStatement", "Bundle", "OperationOutcome", "Observation", "Device", "DocumentReference",
                     "Appointment", "Patient"}
    for what, body in api.seen:
        assert not r4_errors(body), (what, r4_errors(body)[:3])
        resources = [body] + [e["resource"] for e in body.get("entry", []) if "resource" in e]
        for resource in resources:
            if resource["resourceType"] not in ("Bundle", "OperationOutcome", "CapabilityStatement"):
                assert {"versionId", "lastUpdated"} <= set(resource["meta"]), what


def test_what_is_stored_is_what_was_validated(api: Api) -> None:
    answer = api.call("POST", "", lab.bundle(lab.observation("heart_rate", api.ref)))
    stored = api.call("GET", answer.json()["entry"][0]["response"]["location"]).json()
    assert isinstance(stored["valueQuantity"]["value"], int | float)
    for change in ({"value": "72"}, {"unit": None}):
        sent = lab.bundle(lab.observation("heart_rate", api.ref))
        sent["entry"][0]["resource"]["valueQuantity"].update(change)
        refused = api.call("POST", "", sent)
        assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("path", "change"), [
    ("", {"effectiveDateTime": 12345}),
    ("/Appointment", {"start": 12345}),
    ("/Appointment", {"end": 12345}),
    ("/Appointment", {"status": "x"}),
    ("/Appointment", {"participant": [{"status": "x", "actor": {"reference": "Patient/x"}}]}),
    ("/Appointment", {"description": None}),
])
def test_type_errors_reach_the_validator_not_the_handlers(api: Api, path: str, change: dict[str, Any]) -> None:
    if path:
        sent: dict[str, Any] = {**lab.appointment(api.ref, "r1"), **change}
    else:
        sent = lab.bundle({**lab.observation("heart_rate", api.ref), **change})
    answer = api.call("POST", path, sent)
    assert answer.status_code == 400, answer.text
    assert answer.json()["issue"][0]["code"] == "structure"


def test_server_ids_follow_the_r4_id_pattern(api: Api) -> None:
    for _ in range(20):
        answer = measure(api)
        ident = urlsplit(answer.json()["entry"][0]["response"]["location"]).path.split("/")[3]
        assert not r4_errors({"resourceType": "Basic", "id": ident, "code": {"text": "x"}})


# -- versioning, conditional writes, Prefer, transactions -----------------------------------------------------------
def test_versions_etags_and_if_match(api: Api) -> None:
    created = api.call("POST", "/Appointment", lab.appointment(api.ref, "r1"))
    assert created.status_code == 201 and created.headers["etag"] == 'W/"1"' and "last-modified" in created.headers
    location = created.headers["location"]
    assert location.startswith(f"{api.url}/fhir/Appointment/") and location.endswith("/_history/1")
    first = created.json()
    moved = {**first, "start": "2026-02-01T11:00:00+01:00", "end": "2026-02-01T11:30:00+01:00"}
    updated = api.call("PUT", f"/Appointment/{first['id']}", moved, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert updated.headers["location"].endswith("/_history/2")
    stale = api.call("PUT", f"/Appointment/{first['id']}", moved, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412 and stale.json()["issue"][0]["code"] == "conflict"
    assert api.call("GET", location).json()["start"] == first["start"]  # vread of version 1
    history = api.call("GET", f"/Appointment/{first['id']}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert api.call("GET", f"/Appointment/{first['id']}", headers={"If-None-Match": 'W/"2"'}).status_code == 304
    no_id = {k: v for k, v in moved.items() if k != "id"}
    assert api.call("PUT", f"/Appointment/{first['id']}", no_id).status_code == 400
    assert api.call("PUT", "/Appointment/unknown", {**moved, "id": "unknown"}).status_code == 405


def test_conditional_create_and_update(api: Api) -> None:
    resource = lab.appointment(api.ref, "r1")
    key = {"If-None-Exist": f"identifier={lab.APP}|r1"}
    assert api.call("POST", "/Appointment", resource, headers=key).status_code == 201
    again = api.call("POST", "/Appointment", resource, headers=key)
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"
    assert api.call("GET", "/Appointment").json()["total"] == 1
    assert api.call("POST", "/Appointment", resource).status_code == 201  # no condition: a second one
    twice = api.call("POST", "/Appointment", resource, headers=key)
    assert twice.status_code == 412
    replaced = api.call("PUT", "/Appointment", lab.appointment(api.ref, "r2"), params={"identifier": f"{lab.APP}|r2"})
    assert replaced.status_code == 201
    assert api.call("PUT", "/Appointment", lab.appointment(api.ref, "r2", status="cancelled"),
                    params={"identifier": f"{lab.APP}|r2"}).json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize(("prefer", "expected"), [("return=minimal", None), ("return=OperationOutcome",
                                                                               "OperationOutcome"),
                                                  ("return=representation", "Appointment"), (None, "Appointment")])
def test_prefer_return(api: Api, prefer: str | None, expected: str | None) -> None:
    answer = api.call("POST", "/Appointment", lab.appointment(api.ref, "r1"),
                      headers={"Prefer": prefer} if prefer else {})
    assert answer.status_code == 201 and answer.headers["location"]
    assert (answer.json()["resourceType"] if answer.content else None) == expected


def test_transaction_answers_in_request_order_and_retries_file_nothing(api: Api) -> None:
    sent = with_device(api)
    answer = api.call("POST", "", sent).json()
    assert [urlsplit(e["response"]["location"]).path.split("/")[2] for e in answer["entry"]] == ["Device",
                                                                                                 "Observation"]
    again = api.call("POST", "", sent, headers={"Prefer": "return=representation"}).json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]
    assert [e["resource"]["resourceType"] for e in again["entry"]] == ["Device", "Observation"]
    assert api.call("GET", "/Observation").json()["total"] == 1 and api.call("GET", "/Device").json()["total"] == 1
    batch = api.call("POST", "", {**sent, "type": "batch"})
    assert batch.status_code == 422 and "transaction" in batch.json()["issue"][0]["diagnostics"]


# -- search over HTTP -----------------------------------------------------------------------------------------------
def test_search_over_http(api: Api) -> None:
    for value in range(60, 85):
        measure(api, value=value)
    measure(api, "body_weight")
    found = api.call("GET", "/Observation", params={"date": "gt2000-01-01", "_count": "10"}).json()
    assert found["total"] == 26 and len(found["entry"]) == 10
    assert api.call("GET", "/Observation", params={"date": "lt2100-01-01"}).json()["total"] == 26
    assert api.call("GET", "/Observation", params={"code": "http://loinc.org|29463-7"}).json()["total"] == 1
    assert api.call("GET", "/Observation", params={"code": "urn:other|29463-7"}).json()["total"] == 0
    assert api.call("GET", "/Observation", params={"code": "29463-7,8867-4"}).json()["total"] == 26
    repeated = api.call("GET", f"{api.url}/fhir/Observation?code=29463-7&code=8867-4").json()
    assert repeated["total"] == 0  # AND: no measure is both
    assert api.call("GET", "/Observation", params={"date": "2000-13-01"}).status_code == 400
    assert api.call("GET", "/Observation", params={"date": ""}).status_code == 400
    counted = api.call("GET", "/Observation", params={"_count": "0"}).json()
    assert counted["total"] == 26 and "entry" not in counted
    capped = api.call("GET", "/Observation", params={"_count": "1000"}).json()
    assert len(capped["entry"]) == 26
    assert api.call("GET", "/Observation", params={"_format": "json"}).status_code == 200
    assert api.call("GET", "/Observation", params={"_format": "xml"}).status_code == 406
    lenient = api.call("GET", "/Observation", params={"colour": "blue", "patient": api.ref},
                       headers={"Prefer": "handling=lenient"}).json()
    assert dict(parse_qsl(urlsplit(lenient["link"][0]["url"]).query)) == {"patient": api.ref, "_count": "20",
                                                                         "_offset": "0"}
    assert api.call("GET", "/Observation", params={"colour": "blue"}).status_code == 400
    other = api.call("GET", "/Observation", params={"patient": "Patient/someone-else"})
    assert other.status_code == 403


# -- errors are OperationOutcomes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("PUT", "/Observation/x", 405, "not-supported"),
    ("DELETE", "/Appointment/x", 405, "not-supported"),
    ("PATCH", "/Appointment/x", 405, "not-supported"),
    ("POST", "/Observation", 405, "not-supported"),
    ("GET", "/_history", 405, "not-supported"),
    ("GET", "/Observation/_history", 405, "not-supported"),
    ("POST", "/Patient/_search", 200, None),
    ("GET", "/Observation/x/_history/1", 404, "not-found"),
    ("GET", "/Nonsense", 404, "not-supported"),
    ("GET", "/Observation%2Fx", 404, "not-found"),
    ("GET", "/Observation/x/y/z/w", 404, "not-found"),
])
def test_routing_errors_are_operation_outcomes(api: Api, method: str, path: str, status: int, code: str | None
                                               ) -> None:
    answer = api.call(method, path)
    assert answer.status_code == status and answer.headers["content-type"].startswith(FHIR_JSON)
    if code:
        assert answer.json()["issue"][0]["code"] == code
    if status == 405:
        assert "allow" in answer.headers


@pytest.mark.parametrize(("headers", "status"), [
    ({"Accept": "application/fhir+xml"}, 406),
    ({"Accept": "application/fhir+json; fhirVersion=3.0"}, 406),
    ({"Accept": "application/fhir+json; fhirVersion=4.0"}, 200),
    ({"Accept": "text/html, application/xml;q=0.9, */*;q=0.8"}, 200),
    ({"Accept": "application/json"}, 200),
])
def test_content_negotiation(api: Api, headers: dict[str, str], status: int) -> None:
    assert api.call("GET", "/Observation", headers=headers).status_code == status


def test_a_body_in_another_format_is_415(api: Api) -> None:
    answer = api.call("POST", "/DocumentReference", b"<DocumentReference/>",
                      headers={"Content-Type": "application/fhir+xml"})
    assert answer.status_code == 415 and answer.json()["resourceType"] == "OperationOutcome"


# -- hostile input: never a 5xx -------------------------------------------------------------------------------------
WRITES = st.sampled_from([("POST", ""), ("POST", "/DocumentReference"), ("POST", "/Appointment"),
                          ("PUT", "/Appointment?identifier=a|b"), ("PUT", "/Appointment/x")])
QUERY = st.lists(st.tuples(st.sampled_from(["code", "date", "status", "patient", "subject", "_count", "_offset",
                                            "_sort", "_total", "_summary", "_format", "identifier", "_id",
                                            "date:exact", "code:not", "x", "_lastUpdated"]),
                           st.text(max_size=25) | st.sampled_from(["ge2024", "lt", "2024-02-30", "a|b", "|", ","])),
                 max_size=6)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=JSON | FHIRISH, write=WRITES)
def test_no_body_makes_a_5xx(api: Api, body: Any, write: tuple[str, str]) -> None:
    answer = api.call(write[0], write[1], json.dumps(body))
    assert answer.status_code < 500, answer.text
    assert answer.json()["resourceType"] in ("OperationOutcome", "Bundle", "Appointment", "DocumentReference")


@FUZZ
@given(query=QUERY, kind=st.sampled_from(["Observation", "Appointment", "DocumentReference", "Patient", "Device"]))
def test_no_query_makes_a_5xx(api: Api, query: list[tuple[str, str]], kind: str) -> None:
    answer = api.call("GET", f"/{kind}", params=query)
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (200, 400, 403, 406), answer.text


HEADERS = st.dictionaries(st.sampled_from(["Accept", "Content-Type", "Prefer", "If-Match", "If-None-Match",
                                           "If-Modified-Since", "If-None-Exist"]),
                          st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40) |
                          st.sampled_from(['W/"1"', "return=minimal", "handling=lenient", "application/fhir+json",
                                           "identifier=|", "*", "Thu, 01 Jan 2099 00:00:00 GMT"]), max_size=4)
ROUTES = st.sampled_from([("GET", "/metadata"), ("GET", "/Appointment"), ("POST", "/Appointment"),
                          ("PUT", "/Appointment?identifier=urn:oid:1.2.250.1.999.1|r1"), ("POST", "/Patient/_search"),
                          ("GET", "/Patient/x"), ("DELETE", "/Appointment"), ("OPTIONS", "")])


@FUZZ
@given(headers=HEADERS, route=ROUTES)
def test_no_header_makes_a_5xx(api: Api, headers: dict[str, str], route: tuple[str, str]) -> None:
    body = json.dumps(lab.appointment(api.ref, "r1")) if route[0] in ("POST", "PUT") else None
    answer = api.call(route[0], route[1], body, headers=headers)
    assert answer.status_code < 500, answer.text
