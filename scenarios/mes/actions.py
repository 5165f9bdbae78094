"""The Mon espace santé driver actions: what a citizen does in a partner app connected to MES.

* ``mes.pair`` — the user connects the app to their Mon espace santé: a browser flow (the app answers
  ``redirect``; the harness signs in as the step's patient on MES's page and gives or refuses consent,
  ``with: {consent: refuse}``), then the app gets the callback.
* ``mes.push_measures`` — the user's measures (typed, or from a connected device) are sent to MES
  (``with: {measures: [{id, kind, value, unit, code?}]}``: ``unit``/``code`` as the device reports them).
* ``mes.push_document`` — the user shares a document with MES (``with: {document: {id, title, type,
  content_type}}``; the app makes the file).
* ``mes.sync_agenda`` — the app syncs its appointments to the MES agenda (``with: {appointments: [{id,
  start, end, status, description}]}``).
* ``mes.read_measures`` — the app shows the measures MES holds (``with: {code}``, a LOINC code, optional).
* ``mes.submit_dossier`` — the editor submits its referencing dossier to the window.

Each reports its outcome only (the suite's :class:`ActionReport`).
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import ActionOutcome, ActionReport, Dataset, Step, action, patient_payload
from esante.scenarios.mes.models import NoParams, Pair, PushDocument, PushMeasures, ReadMeasures, SyncAgenda

#: What a software may report for an action of this service (operator mode offers these, and only these).
OUTCOMES = (ActionOutcome.COMPLETED, ActionOutcome.REFUSED, ActionOutcome.ERROR, ActionOutcome.UNAVAILABLE)


def _consent_page(params: dict[str, Any]) -> dict[str, str]:
    """What the citizen does on MES's page: sign in as themself, then accept or refuse."""
    return {"patient": params["patient"]["id"], "decision": params.get("consent", "accept")}


@action("mes.pair", title="Connect the app to Mon espace santé", params=Pair, report=ActionReport,
        instruction="In the app, choose \"Connecter à Mon espace santé\"; on MES's page sign in as "
                    "{patient[id]} ({patient[first_names][0]} {patient[birth_name]}) and {consent} the pairing.",
        browser_form=_consent_page, outcomes=OUTCOMES)
def pair(step: Step, dataset: Dataset) -> Pair:
    return Pair(patient=patient_payload(dataset, step), consent=step.with_.get("consent", "accept"))


@action("mes.push_measures", title="Send measures to Mon espace santé", params=PushMeasures, report=ActionReport,
        instruction="Send these measures to Mon espace santé: {measures}.", outcomes=OUTCOMES)
def push_measures(step: Step, dataset: Dataset) -> PushMeasures:
    return PushMeasures(measures=step.with_.get("measures") or [])


@action("mes.push_document", title="Share a document with Mon espace santé", params=PushDocument,
        report=ActionReport, instruction="Share the document \"{document[title]}\" with Mon espace santé.",
        outcomes=OUTCOMES)
def push_document(step: Step, dataset: Dataset) -> PushDocument:
    return PushDocument(document=step.with_.get("document"))


@action("mes.sync_agenda", title="Sync the agenda with Mon espace santé", params=SyncAgenda, report=ActionReport,
        instruction="Sync the app's appointments to the Mon espace santé agenda: {appointments}.", outcomes=OUTCOMES)
def sync_agenda(step: Step, dataset: Dataset) -> SyncAgenda:
    return SyncAgenda(appointments=step.with_.get("appointments") or [])


@action("mes.read_measures", title="Show the measures held in Mon espace santé", params=ReadMeasures,
        report=ActionReport, instruction="Open the app's page listing the measures held in Mon espace santé.",
        outcomes=OUTCOMES)
def read_measures(step: Step, dataset: Dataset) -> ReadMeasures:
    return ReadMeasures(code=step.with_.get("code"))


@action("mes.submit_dossier", title="Submit the referencing dossier", params=NoParams, report=ActionReport,
        instruction="Submit your referencing dossier to the Mon espace santé referencing window.", outcomes=OUTCOMES)
def submit_dossier(step: Step, dataset: Dataset) -> NoParams:
    return NoParams()
