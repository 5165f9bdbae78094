"""The Mon espace santé driver actions: what a citizen does in a partner app connected to MES.

* ``mes.pair`` — the user connects the app to their Mon espace santé: a browser flow (the app answers
  ``redirect``; the harness signs in as the step's patient on MES's page and gives or refuses consent,
  ``with: {consent: refuse}``), then the app gets the callback. Params ``{patient, consent}``.
* ``mes.push_measures`` — the user's measures (typed, or from a connected device) are sent to MES.
  Params ``{measures: [{id, kind, value, unit, code?}]}``: ``unit``/``code`` as the device reports them.
* ``mes.push_document`` — the user shares a document with MES. Params ``{document: {id, title, type,
  content_type}}`` (the app makes the file).
* ``mes.sync_agenda`` — the app syncs its appointments to the MES agenda. Params ``{appointments: [{id,
  start, end, status, description}]}``.
* ``mes.read_measures`` — the app shows the measures MES holds. Params ``{code?}`` (a LOINC code).
* ``mes.submit_dossier`` — the editor submits its referencing dossier to the window. No params.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import Step, action
from esante.simulators.dataset import Dataset
from esante.simulators.mes.measures import catalogue


def _patient(step: Step, dataset: Dataset) -> dict[str, Any]:
    if step.patient is None:
        raise ValueError(f"step {step.action} needs a 'patient'")
    p = dataset.patient(step.patient)
    return {"id": p.id, "family_name": p.birth_name, "given_name": p.first_names[0]}


def _consent_page(params: dict[str, Any]) -> dict[str, str]:
    """What the citizen does on MES's page: sign in as themself, then accept or refuse."""
    return {"patient": params["patient"]["id"], "decision": params.get("consent", "accept")}


@action("mes.pair", title="Connect the app to Mon espace santé",
        instruction="In the app, choose \"Connecter à Mon espace santé\"; on MES's page sign in as "
                    "{patient[id]} ({patient[given_name]} {patient[family_name]}) and {consent} the pairing.",
        browser_form=_consent_page)
def pair(step: Step, dataset: Dataset) -> dict[str, Any]:
    consent = step.with_.get("consent", "accept")
    if consent not in ("accept", "refuse"):
        raise ValueError(f"mes.pair consent must be accept or refuse, not {consent!r}")
    return {"patient": _patient(step, dataset), "consent": consent}


@action("mes.push_measures", title="Send measures to Mon espace santé",
        instruction="Send these measures to Mon espace santé: {measures}.")
def push_measures(step: Step, dataset: Dataset) -> dict[str, Any]:
    measures = step.with_.get("measures")
    if not isinstance(measures, list) or not measures:
        raise ValueError("mes.push_measures needs with.measures, a list")
    for measure in measures:
        if not isinstance(measure, dict) or measure.get("kind") not in catalogue().measures or "id" not in measure:
            raise ValueError(f"mes.push_measures: {measure!r} needs an id and a kind among "
                             f"{', '.join(catalogue().measures)}")
    return {"measures": measures}


@action("mes.push_document", title="Share a document with Mon espace santé",
        instruction="Share the document \"{document[title]}\" with Mon espace santé.")
def push_document(step: Step, dataset: Dataset) -> dict[str, Any]:
    document = step.with_.get("document")
    if not isinstance(document, dict) or not {"id", "title", "type", "content_type"} <= set(document):
        raise ValueError("mes.push_document needs with.document {id, title, type, content_type}")
    return {"document": document}


@action("mes.sync_agenda", title="Sync the agenda with Mon espace santé",
        instruction="Sync the app's appointments to the Mon espace santé agenda: {appointments}.")
def sync_agenda(step: Step, dataset: Dataset) -> dict[str, Any]:
    appointments = step.with_.get("appointments")
    if not isinstance(appointments, list) or not all(isinstance(a, dict) and "id" in a for a in appointments):
        raise ValueError("mes.sync_agenda needs with.appointments, a list of {id, start, end, status}")
    return {"appointments": appointments}


@action("mes.read_measures", title="Show the measures held in Mon espace santé",
        instruction="Open the app's page listing the measures held in Mon espace santé.")
def read_measures(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {k: v for k, v in step.with_.items() if k == "code"}


@action("mes.submit_dossier", title="Submit the referencing dossier",
        instruction="Submit your referencing dossier to the Mon espace santé referencing window.")
def submit_dossier(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {}
