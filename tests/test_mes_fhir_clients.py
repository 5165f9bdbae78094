"""Mon espace santé's FHIR API driven by FHIR clients nobody here wrote, used as their documentation says:
fhirclient (SMART on FHIR's Python client: discovery from ``metadata``, the pairing as a SMART standalone launch
with PKCE, its R4 models reading every answer), fhirpy, and the npm ``fhir-kit-client`` (through
``tests/node_fhir/mes_client.mjs``, after ``npm ci --prefix tests/node_fhir``): read, create, update, conditional
update, search across pages, transaction."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from fhirclient import client as smart
from fhirclient.models.appointment import Appointment
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient
from lxml import html

from esante.harness.lab import mes as lab
from esante.simulators.core.app import create_app
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset
from esante.simulators.mes import MesSimulator

NODE_DIR = Path(__file__).parent / "node_fhir"
CLIENT = "esante-reference-mes"
PARTNER = load_dataset().mes_partner(CLIENT)
SCOPES = lab.WRITE_SCOPES + " patient/DocumentReference.read"


@dataclass
class Mes:
    url: str
    admin_token: str

    @property
    def fhir(self) -> str:
        return f"{self.url}/fhir"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mes]:
    settings = SimulatorSettings(evidence_path=tmp_path_factory.mktemp("mes-clients") / "evidence.sqlite")
    app = create_app(MesSimulator(load_dataset(), rate_limit=10_000), settings, EvidenceStore(settings.evidence_path))
    with ServerHandle(app) as handle:
        yield Mes(handle.url, settings.admin_token)


@pytest.fixture
def mes(server: Mes) -> Mes:
    answer = httpx.post(f"{server.url}/_admin/reset", headers={"Authorization": f"Bearer {server.admin_token}"})
    assert answer.status_code == 200
    return server


def consent(authorize_url: str, patient: str = "P001") -> str:
    """The citizen's browser: MES's page, signed in as ``patient``, consent given; where MES sends it back."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = html.fromstring(page.text).forms[0]
        fields = {**{k: v for k, v in form.fields.items() if isinstance(v, str)}, "patient": patient,
                  "decision": "accept"}
        back = browser.post(urljoin(authorize_url, form.action), data=fields)
    assert back.status_code == 302, back.text
    return back.headers["location"]


def measures(patient_ref: str, count: int) -> list[dict[str, Any]]:
    return [lab.bundle(lab.observation("heart_rate", patient_ref, value=60 + i)) for i in range(count)]


# -- fhirclient: SMART discovery, launch and R4 models -------------------------------------------------------------
def test_fhirclient_discovers_pairs_and_reads(mes: Mes) -> None:
    app = smart.FHIRClient(settings={"app_id": CLIENT, "app_secret": PARTNER.secret, "api_base": mes.fhir,
                                     "redirect_uri": PARTNER.redirect_uris[0], "scope": SCOPES})
    assert app.prepare() is False  # the CapabilityStatement read, its SMART endpoints found; not yet authorised
    assert app.server.capabilityStatement.fhirVersion.startswith("4.0")
    app.handle_callback(consent(app.authorize_url))
    assert app.ready and app.patient_id
    server = app.server
    patient = Patient.read(app.patient_id, server)
    assert patient.identifier[0].value == load_dataset().patient("P001").ins.nir + \
        load_dataset().patient("P001").ins.key
    for bundle in measures(f"Patient/{app.patient_id}", 7):
        assert server.post_json("", bundle).status_code == 200  # the transaction, at the base
    found = list(Observation.where(struct={"code": "http://loinc.org|8867-4", "_count": "3"})
                 .perform_resources_iter(server))
    assert len(found) == 7 and all(o.valueQuantity.value >= 60 for o in found)
    resource = Appointment(lab.appointment(f"Patient/{app.patient_id}", "rdv-fc"))
    created = resource.create(server)
    stored = Appointment.read(created["id"], server)
    stored.status = "cancelled"
    assert stored.update(server)["meta"]["versionId"] == "2"
    moved = lab.appointment(f"Patient/{app.patient_id}", "rdv-fc2")
    assert server.put_json(f"Appointment?identifier={lab.APP}|rdv-fc2", moved).status_code == 201
    assert server.put_json(f"Appointment?identifier={lab.APP}|rdv-fc2", moved).status_code == 200


# -- fhirpy ------------------------------------------------------------------------------------------------------
def test_fhirpy_reads_writes_and_pages(mes: Mes) -> None:
    tokens = lab.mes_pairing(mes.url, None, "P002", scope=SCOPES)
    patient = f"Patient/{tokens.model_extra['patient']}"
    client = SyncFHIRClient(mes.fhir, authorization=f"Bearer {tokens.access_token}")
    statement = client.execute("metadata", method="get")
    assert {r["type"] for r in statement["rest"][0]["resource"]} >= {"Observation", "Appointment"}
    for bundle in measures(patient, 5):
        answer = client.execute("", method="post", data=bundle)
        assert answer["entry"][0]["response"]["status"] == "201 Created"
    pages = client.resources("Observation").search(code="http://loinc.org|8867-4", date__ge="2000-01-01").limit(2)
    assert len(pages.fetch_all()) == 5
    assert client.reference(reference=patient).to_resource()["gender"] in ("male", "female")
    appointment = client.resource("Appointment", **lab.appointment(patient, "rdv-py"))
    appointment.save()
    assert appointment["meta"]["versionId"] == "1" and appointment.id
    appointment["status"] = "cancelled"
    appointment.save()
    assert appointment["meta"]["versionId"] == "2"
    appointment.refresh()  # If-None-Match: answered 304, the resource kept
    assert appointment["status"] == "cancelled"
    synced, created = client.resources("Appointment").search(identifier=f"{lab.APP}|rdv-py2").update(
        client.resource("Appointment", **lab.appointment(patient, "rdv-py2")))
    assert created and synced.id
    _, created = client.resources("Appointment").search(identifier=f"{lab.APP}|rdv-py2").update(
        client.resource("Appointment", **lab.appointment(patient, "rdv-py2", status="cancelled")))
    assert not created
    assert client.resources("Appointment").search(identifier=f"{lab.APP}|rdv-py2").get()["status"] == "cancelled"
    lenient = SyncFHIRClient(mes.fhir, authorization=f"Bearer {tokens.access_token}",
                             extra_headers={"Prefer": "handling=lenient"})
    assert lenient.resources("Observation").count() == 5  # fhirpy adds a parameter of its own: ignored here


# -- fhir-kit-client (npm) ----------------------------------------------------------------------------------------
def test_fhir_kit_client(mes: Mes) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the npm fhir-kit-client cannot run")
    if not (NODE_DIR / "node_modules/fhir-kit-client").is_dir():
        pytest.skip("fhir-kit-client is not installed: run `npm ci --prefix tests/node_fhir`")
    tokens = lab.mes_pairing(mes.url, None, "P003", scope=SCOPES)
    patient = f"Patient/{tokens.model_extra['patient']}"
    for bundle in measures(patient, 4):
        answer = httpx.post(mes.fhir, json=bundle, headers={"Authorization": f"Bearer {tokens.access_token}",
                                                             "Content-Type": "application/fhir+json"})
        assert answer.status_code == 200
    given = {"base": mes.fhir, "token": tokens.access_token, "appointment": lab.appointment(patient, "rdv-js"),
             "identifier": f"{lab.APP}|rdv-js2", "conditional": lab.appointment(patient, "rdv-js2"),
             "bundle": measures(patient, 1)[0]}
    run = subprocess.run([node, str(NODE_DIR / "mes_client.mjs")], input=json.dumps(given), capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["smart"] == {"authorizeUrl": f"{mes.url}/oauth/authorize", "tokenUrl": f"{mes.url}/oauth/token"}
    assert out["statement"]["resourceType"] == "CapabilityStatement" and "Appointment" in out["statement"]["types"]
    assert out["appointment"]["read"] == out["appointment"]["created"] and out["appointment"]["version"] == "2"
    assert out["appointment"]["conditional"] == "1" and out["appointment"]["description"] == "moved"
    assert out["transaction"] == ["201 Created"]
    assert out["search"]["total"] == 5 and len(set(out["search"]["ids"])) == 5
    assert out["notFound"] == {"status": 404, "resourceType": "OperationOutcome"}
