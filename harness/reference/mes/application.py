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
from typing import Any

from esante.harness.driver import ActionOutcome
from esante.harness.reference.defects import Defects
from esante.harness.reference.mes.client import (
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
from esante.harness.reference.mes.models import AgendaParams, DocumentParams, Measure, MesReport
from esante.harness.reference.mes.resources import appointment, document_reference, measure_bundle
from esante.harness.reference.pdf import minimal_pdf
from esante.simulators.dataset import load_dataset
from esante.simulators.mes.protocol import FHIR_BASE

CLIENT_ID = "esante-reference-mes"
CALLBACK_PATH = "/mes/callback"
READ_PAGE_SIZE = 5


def report(outcome: ActionOutcome, message: str = "", **fields: Any) -> MesReport:
    return MesReport(outcome=outcome, message=message, **fields)


def guarded(work: Callable[[], MesReport]) -> MesReport:
    """What the user is told when MES fails: unavailable, an answer refused, or MES's own error."""
    try:
        return work()
    except MesUnavailable as exc:
        return report(ActionOutcome.UNAVAILABLE, str(exc))
    except MesRefused as exc:
        return report(ActionOutcome.REFUSED, str(exc))
    except MesError as exc:
        return report(ActionOutcome.ERROR, str(exc), error_code=exc.code)


class MesApp:
    """One user's app session (the harness plays one user per test case)."""

    def __init__(self, base_url: str, ca_pem: bytes | None, defects: Defects) -> None:
        registration = load_dataset().mes_partner(CLIENT_ID)
        self.defects = defects
        self.client = MesClient(base_url, client_id=CLIENT_ID, secret=registration.secret or "", ca_pem=ca_pem,
                                defects=defects)
        self.pending: dict[str, PendingPairing] = {}
        self.pairing: Pairing | None = None

    def close(self) -> None:
        self.client.close()

    def pair(self, own_url: str) -> MesReport:
        url, pending = self.client.begin_pairing(own_url + CALLBACK_PATH)
        self.pending[pending.state] = pending
        while len(self.pending) > MAX_PENDING:
            self.pending.pop(next(iter(self.pending)))
        return report(ActionOutcome.REDIRECT, "sent to Mon espace santé", redirect_url=url)

    def callback(self, url: str) -> MesReport:
        self.pairing = self.client.complete_pairing(url, self.pending)
        return report(ActionOutcome.COMPLETED, f"connected to Mon espace santé (pairing {self.pairing.pairing_id})")

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

    def push_measures(self, measures: list[Measure]) -> MesReport:
        measured_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
        for measure in measures:
            bundle = measure_bundle(measure.model_dump(exclude_none=True), self._paired().patient_ref, measured_at,
                                    conditional=not self.defects.on("mes_no_idempotency_key"),
                                    human_units=self.defects.on("mes_unit_not_ucum"))
            self._send_once(bundle)
        return report(ActionOutcome.COMPLETED, f"{len(measures)} measure(s) sent to Mon espace santé")

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

    def push_document(self, document: DocumentParams.Document) -> MesReport:
        pdf = minimal_pdf(document.title)
        content_type = "application/octet-stream" if self.defects.on("mes_document_octet_stream") \
            else document.content_type
        resource = document_reference(document.model_dump(), base64.b64encode(pdf).decode(),
                                      self._paired().patient_ref, content_type=content_type,
                                      keyed=not self.defects.on("mes_no_idempotency_key"),
                                      typed=not self.defects.on("mes_document_without_type"))
        stored = self._call("POST", f"{FHIR_BASE}/DocumentReference", json=resource)
        return report(ActionOutcome.COMPLETED, f"document shared (DocumentReference/{stored.get('id')})")

    def sync_agenda(self, entries: list[AgendaParams.Entry]) -> MesReport:
        for entry in entries:
            resource = appointment(entry.model_dump(), self._paired().patient_ref)
            if self.defects.on("mes_agenda_post"):
                self._call("POST", f"{FHIR_BASE}/Appointment", json=resource)
            else:
                key = f"{resource['identifier'][0]['system']}|{entry.id}"
                self._call("PUT", f"{FHIR_BASE}/Appointment", json=resource, params={"identifier": key})
        return report(ActionOutcome.COMPLETED, f"{len(entries)} appointment(s) synced")

    def read_measures(self, code: str | None) -> MesReport:
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
        return report(ActionOutcome.COMPLETED, f"{seen} of {total} measure(s) shown")


def _same_origin_path(link: str, base_url: str) -> str:
    """A next link is followed only on MES itself (never to another host the answer names)."""
    if not link.startswith(base_url + "/"):
        raise MesRefused(f"a paging link outside Mon espace santé ({link[:100]}) was not followed")
    return link[len(base_url):]
