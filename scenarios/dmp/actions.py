"""The DMP driver actions: what a professional does with the shared medical record from their software.

Every action names the patient (``patient: P001``) and the professional (``professional: PS002``) and may
say, in ``with``, the access mode (``mode: normal | centre_15 | bris_de_glace``), the authentication
(``auth``): ``INDIRECTE_RENFORCEE`` (the default: the structure's certificate, the professional authenticated
individually, e.g. with Pro Santé Connect), ``INDIRECTE`` (the structure's certificate alone: the rights
matrix then allows testing, authorising and feeding, not consulting) or ``DIRECTE`` (the professional's CPS),
and the ``structure`` the professional acts for (their first one by default).

* ``dmp.test_existence`` — TD0.2: does the patient have a DMP, may I access it? The report's ``record``.
* ``dmp.authorise`` — TD0.3: the professional declares themself authorised (the patient agreed).
* ``dmp.read_admin`` — TD1.3a: the DMP's administrative data.
* ``dmp.feed`` — TD2.1: send a document: ``kind: N3`` (structured CDA, the default) or ``N1`` (a PDF in an
  unstructured CDA), ``title``, ``confidentiality`` (``[MASQUE_PS]``, ``[INVISIBLE_PATIENT]``), ``replaces:
  last`` (a new version of the last document fed). The report lists the document fed.
* ``dmp.search`` — TD3.1: the patient's documents, ``statuses: [approved, archived]`` (default approved).
* ``dmp.retrieve`` — TD3.2: open a document (``document: last``, the last one fed, else the last found).
* ``dmp.update`` — TD3.3: ``operation: mask | unmask | hide_from_patient | show_to_patient | archive |
  unarchive | delete`` on ``document: last``.
* ``dmp.search_patient`` — TD0.5: find a patient's DMP without the INS (régulation), by ``family_name``,
  ``given_name``, ``birth_date`` (from the step's patient unless given).

A patient's identity carries its status: a provisional identity (``with: {identity_status: PROV}``) has no
INS, and a software must then send nothing to the DMP. Each action reports a :class:`~.models.DmpReport`.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import ActionOutcome, Dataset, Step, action, patient_payload, professional_payload
from esante.scenarios.dmp.models import (
    DmpAction,
    DmpReport,
    Feed,
    OpenDocument,
    Search,
    SearchPatient,
    Update,
    ask_documents,
    ask_record,
)

_WHO = "As {professional[given_name]} {professional[family_name]}, for patient {patient[birth_name]} " \
       "{patient[first_names][0]} ({patient[birth_date]}): "

#: What a software may report for an action of this service (operator mode offers these, and only these).
OUTCOMES = (ActionOutcome.FOUND, ActionOutcome.NOT_FOUND, ActionOutcome.COMPLETED, ActionOutcome.REFUSED,
            ActionOutcome.ERROR, ActionOutcome.UNAVAILABLE)


def _who(step: Step, dataset: Dataset) -> dict[str, Any]:
    """The patient, the professional and how they reach the DMP: what every DMP action sends."""
    return {"patient": patient_payload(dataset, step), "professional": professional_payload(dataset, step),
            "mode": step.with_.get("mode", "normal"), "auth": step.with_.get("auth", "INDIRECTE_RENFORCEE")}


def _with(step: Step, *names: str) -> dict[str, Any]:
    """The step's own values of these parameters (the model's defaults for the others)."""
    return {name: step.with_[name] for name in names if name in step.with_}


@action("dmp.test_existence", title="Check the patient's DMP", params=DmpAction, report=DmpReport,
        operator_questions=ask_record, instruction=_WHO + "open the patient's DMP panel (existence and "
                                                          "authorisation test) and note what the software shows.",
        outcomes=OUTCOMES)
def test_existence(step: Step, dataset: Dataset) -> DmpAction:
    return DmpAction(**_who(step, dataset))


@action("dmp.authorise", title="Declare the professional authorised", params=DmpAction, report=DmpReport,
        operator_questions=ask_record,
        instruction=_WHO + "declare that the patient authorised you to access their DMP.", outcomes=OUTCOMES)
def authorise(step: Step, dataset: Dataset) -> DmpAction:
    return DmpAction(**_who(step, dataset))


@action("dmp.read_admin", title="Read the DMP's administrative data", params=DmpAction, report=DmpReport,
        instruction=_WHO + "open the DMP's administrative data.", outcomes=OUTCOMES)
def read_admin(step: Step, dataset: Dataset) -> DmpAction:
    return DmpAction(**_who(step, dataset))


@action("dmp.feed", title="Send a document to the DMP", params=Feed, report=DmpReport,
        operator_questions=ask_documents,
        instruction=_WHO + "send a {kind} document titled \"{title}\" to the DMP.", outcomes=OUTCOMES)
def feed(step: Step, dataset: Dataset) -> Feed:
    kind = step.with_.get("kind", "N3")
    title = step.with_.get("title", "Compte rendu de consultation" if kind == "N3" else "Compte rendu (PDF)")
    return Feed(**_who(step, dataset), title=title, **_with(step, "kind", "confidentiality", "replaces"))


@action("dmp.search", title="List the patient's documents in the DMP", params=Search, report=DmpReport,
        operator_questions=ask_documents,
        instruction=_WHO + "list the DMP's documents with status {statuses}.", outcomes=OUTCOMES)
def search(step: Step, dataset: Dataset) -> Search:
    return Search(**_who(step, dataset), **_with(step, "statuses"))


@action("dmp.retrieve", title="Open a document of the DMP", params=OpenDocument, report=DmpReport,
        operator_questions=ask_documents, instruction=_WHO + "open the {document} document of the DMP.",
        outcomes=OUTCOMES)
def retrieve(step: Step, dataset: Dataset) -> OpenDocument:
    return OpenDocument(**_who(step, dataset), **_with(step, "document"))


@action("dmp.update", title="Change a document's visibility or status", params=Update, report=DmpReport,
        operator_questions=ask_documents, instruction=_WHO + "{operation} the {document} document.", outcomes=OUTCOMES)
def update(step: Step, dataset: Dataset) -> Update:
    return Update(**_who(step, dataset), **_with(step, "document", "operation"))


@action("dmp.search_patient", title="Find a patient's DMP without the INS", params=SearchPatient,
        report=DmpReport,
        instruction=_WHO + "search the DMP for the patient by name and birth date (no INS).", outcomes=OUTCOMES)
def search_patient(step: Step, dataset: Dataset) -> SearchPatient:
    who = _who(step, dataset)
    return SearchPatient(**who, family_name=step.with_.get("family_name", who["patient"].birth_name),
                         **_with(step, "given_name", "birth_date"))
