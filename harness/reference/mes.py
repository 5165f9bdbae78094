"""The reference candidate as a partner app of Mon espace santé (a measures notebook that also shares
documents and keeps an agenda).

It holds what such an app holds: the pairings in progress (by ``state``), the citizen's pairing (tokens,
MES patient id). The driver's ``mes.*`` actions are the user's clicks; ``/callback`` is the browser arriving
at the app's redirect URI (``/mes/callback``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any, Literal

import yaml

from esante.harness.driver import ActionOutcome, LegacyReport
from esante.harness.reference.mes_client import (
    MAX_PENDING,
    MesClient,
    MesError,
    MesRefused,
    MesRejected,
    MesUnavailable,
    Pairing,
    PendingPairing,
    outcome_of,
)
from esante.harness.reference.mes_resources import appointment, document_reference, measure_bundle
from esante.harness.reference.parts import NoParams, NotConfigured, Params, Part, validated
from esante.harness.reference.pdf import minimal_pdf
from esante.simulators.dataset import load_dataset
from esante.simulators.mes.protocol import DOSSIERS_PATH, FHIR_BASE

CLIENT_ID = "esante-reference-mes"
CALLBACK_PATH = "/mes/callback"
READ_PAGE_SIZE = 5


def _report(outcome: ActionOutcome, message: str = "", **fields: Any) -> LegacyReport:
    return LegacyReport(outcome=outcome, message=message, **fields)


def guarded(work: Callable[[], LegacyReport]) -> LegacyReport:
    """What the user is told when MES fails: unavailable, an answer refused, or MES's own error."""
    try:
        return work()
    except MesUnavailable as exc:
        return _report(ActionOutcome.UNAVAILABLE, str(exc))
    except MesRefused as exc:
        return _report(ActionOutcome.REFUSED, str(exc))
    except MesError as exc:
        return _report(ActionOutcome.ERROR, str(exc), error_code=exc.code)


class PatientParams(Params):
    id: str
    family_name: str
    given_name: str


class PairParams(Params):
    patient: PatientParams | None = None  # for MES's page: the app itself needs nothing
    consent: Literal["accept", "refuse"] = "accept"


class Measure(Params):
    id: str
    kind: str
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    unit: str
    code: str | None = None


class MeasuresParams(Params):
    measures: list[Measure]


class DocumentParams(Params):
    class Document(Params):
        id: str
        title: str
        type: str
        content_type: str

    document: Document


class AgendaParams(Params):
    class Entry(Params):
        id: str
        start: str
        end: str
        status: str = "booked"
        description: str = ""

    appointments: list[Entry]


class ReadParams(Params):
    code: str | None = None


class MesApp:
    """One user's app session (the harness plays one user per test case)."""

    def __init__(self, base_url: str, ca_pem: bytes | None, part: MesPart) -> None:
        registration = load_dataset().mes_partner(CLIENT_ID)
        self.defects = part.defects
        self.client = MesClient(base_url, client_id=CLIENT_ID, secret=registration.secret or "", ca_pem=ca_pem,
                                defects=part.defects)
        self.pending: dict[str, PendingPairing] = {}
        self.pairing: Pairing | None = None

    def close(self) -> None:
        self.client.close()

    def pair(self, own_url: str) -> LegacyReport:
        url, pending = self.client.begin_pairing(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        while len(self.pending) > MAX_PENDING:
            self.pending.pop(next(iter(self.pending)))
        return _report(ActionOutcome.REDIRECT, "sent to Mon espace santé", redirect_url=url)

    def callback(self, url: str) -> LegacyReport:
        self.pairing = self.client.complete_pairing(url, self.pending)
        return _report(ActionOutcome.COMPLETED, f"connected to Mon espace santé (pairing {self.pairing.pairing_id})")

    def _paired(self) -> Pairing:
        if self.pairing is None:
            raise MesError("NOT_PAIRED", "the app is not connected to Mon espace santé")
        return self.pairing

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.pairing, response = self.client.call(self._paired(), method, path, **kwargs)
        if response.status_code >= 400:
            code, message = outcome_of(response)
            raise MesRejected(code, f"Mon espace santé refused it: {message}")
        return response.json() if response.content else {}

    def push_measures(self, measures: list[Measure]) -> LegacyReport:
        measured_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
        for measure in measures:
            bundle = measure_bundle(measure.model_dump(exclude_none=True), self._paired().patient_ref, measured_at,
                                    conditional=not self.defects.on("mes_no_idempotency_key"),
                                    human_units=self.defects.on("mes_unit_not_ucum"))
            self._send_once(bundle)
        return _report(ActionOutcome.COMPLETED, f"{len(measures)} measure(s) sent to Mon espace santé")

    def _send_once(self, bundle: dict[str, Any]) -> None:
        """One measure bundle; the mes_resends_refused defect treats a refusal as a transient failure."""
        attempts = 3 if self.defects.on("mes_resends_refused") else 1
        for attempt in range(attempts):
            try:
                self._call("POST", FHIR_BASE, json=bundle)
                return
            except MesRejected:
                if attempt == attempts - 1:
                    if attempts > 1:
                        raise MesUnavailable("Mon espace santé did not take the measure") from None
                    raise

    def push_document(self, document: DocumentParams.Document) -> LegacyReport:
        pdf = minimal_pdf(document.title)
        content_type = "application/octet-stream" if self.defects.on("mes_document_octet_stream") \
            else document.content_type
        resource = document_reference(document.model_dump(), base64.b64encode(pdf).decode(),
                                      self._paired().patient_ref, content_type=content_type,
                                      keyed=not self.defects.on("mes_no_idempotency_key"),
                                      typed=not self.defects.on("mes_document_without_type"))
        stored = self._call("POST", f"{FHIR_BASE}/DocumentReference", json=resource)
        return _report(ActionOutcome.COMPLETED, f"document shared (DocumentReference/{stored.get('id')})")

    def sync_agenda(self, entries: list[AgendaParams.Entry]) -> LegacyReport:
        for entry in entries:
            resource = appointment(entry.model_dump(), self._paired().patient_ref)
            if self.defects.on("mes_agenda_post"):
                self._call("POST", f"{FHIR_BASE}/Appointment", json=resource)
            else:
                key = f"{resource['identifier'][0]['system']}|{entry.id}"
                self._call("PUT", f"{FHIR_BASE}/Appointment", json=resource, params={"identifier": key})
        return _report(ActionOutcome.COMPLETED, f"{len(entries)} appointment(s) synced")

    def read_measures(self, code: str | None) -> LegacyReport:
        params: dict[str, Any] = {"_count": READ_PAGE_SIZE, "date": "ge2000-01-01"}
        if code:
            params["code"] = f"http://loinc.org|{code}"
        page = self._call("GET", f"{FHIR_BASE}/Observation", params=params)
        seen, total = len(page.get("entry") or []), page.get("total")
        while not self.defects.on("mes_first_page_only"):
            link = next((x["url"] for x in page.get("link") or [] if x.get("relation") == "next"), None)
            if link is None:
                break
            page = self._call("GET", _same_origin_path(link, self.client.base_url))
            seen += len(page.get("entry") or [])
        return _report(ActionOutcome.COMPLETED, f"{seen} of {total} measure(s) shown")


def _same_origin_path(link: str, base_url: str) -> str:
    """A next link is followed only on MES itself (never to another host the answer names)."""
    if not link.startswith(base_url + "/"):
        raise MesRefused(f"a paging link outside Mon espace santé ({link[:100]}) was not followed")
    return link[len(base_url):]


class MesPart(Part):
    """The ``mes.*`` actions on a fresh app session per ``/reset``."""

    actions = ("mes.pair", "mes.push_measures", "mes.push_document", "mes.sync_agenda", "mes.read_measures",
               "mes.submit_dossier")
    callback_prefix = "/mes/"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.app: MesApp | None = None

    def reset(self, endpoints: dict[str, str]) -> None:
        self.close()
        base = endpoints.get("mes")
        if base:
            self.app = MesApp(base, self.context.ca_pem_for(base), self)

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    def _app(self) -> MesApp:
        if self.app is None:
            raise NotConfigured("no Mon espace santé endpoint was given on /reset")
        return self.app

    def act(self, action: str, params: dict[str, Any], own_url: str) -> LegacyReport:
        work = _work(action, params, own_url, self)
        app = self._app()
        return guarded(lambda: work(app))

    def callback(self, url: str) -> LegacyReport:
        app = self._app()
        return guarded(lambda: app.callback(url))

    def submit_dossier(self, app: MesApp) -> LegacyReport:
        """The editor's dossier (data shipped beside this module) sent to the referencing window."""
        text = files("esante.harness.reference").joinpath("mes_dossier.yaml").read_text(encoding="utf-8")
        if self.defects.on("mes_dossier_without_evidence"):
            dossier = yaml.safe_load(text)
            for answer in dossier["dossier"]["answers"]:
                answer["evidence"] = []
            text = yaml.safe_dump(dossier, allow_unicode=True, sort_keys=False)
        response = app.client.http.post(DOSSIERS_PATH, content=text.encode(),
                                        headers={"Content-Type": "application/yaml"})
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 201:
            findings = len(body.get("findings", []))
            return _report(ActionOutcome.ERROR, f"dossier {body.get('status', response.status_code)}: "
                                                f"{findings} finding(s)", error_code="inadmissible")
        return _report(ActionOutcome.COMPLETED, f"dossier {body['id']} is {body['status']}")


def _work(action: str, raw: dict[str, Any], own_url: str, part: MesPart) -> Callable[[MesApp], LegacyReport]:
    if action == "mes.pair":
        validated(PairParams, raw)
        return lambda app: app.pair(own_url)
    if action == "mes.push_measures":
        measures = validated(MeasuresParams, raw).measures
        return lambda app: app.push_measures(measures)
    if action == "mes.push_document":
        document = validated(DocumentParams, raw).document
        return lambda app: app.push_document(document)
    if action == "mes.sync_agenda":
        entries = validated(AgendaParams, raw).appointments
        return lambda app: app.sync_agenda(entries)
    if action == "mes.read_measures":
        code = validated(ReadParams, raw).code
        return lambda app: app.read_measures(code)
    validated(NoParams, raw)
    return part.submit_dossier
