"""The INSi driver actions and how a campaign step's test patient becomes their parameters.

* ``insi.lookup_traits`` — the user types the patient's traits and asks for the INS. Traits are the patient's
  *local* traits when the data set has them (as a registration desk typed them), else the reference traits;
  ``with: {traits: ...}`` replaces them (a person unknown to the service).
* ``insi.lookup_vitale`` — the user reads the carte Vitale.
* ``insi.verify`` — the software verifies an INS it holds (as it retrieved it: with its domain's OID).
  ``with: {ins: history}`` makes the held INS the patient's replaced one; ``with: {ins: {nir, key, oid}}`` any
  other.

Each reports the identity the software holds afterwards (:class:`~.models.InsiReport`).
"""

from __future__ import annotations

from esante.harness.suite import ActionOutcome, Dataset, Step, action
from esante.scenarios.insi.models import (
    Ins,
    InsiReport,
    LookupTraits,
    LookupVitale,
    PatientIdentity,
    Traits,
    Verify,
    VitaleCard,
    ask_identity,
)
from esante.simulators.dataset import InsRecord, Patient
from esante.simulators.insi.protocol import answered_oid

#: What a software may report for an action of this service (operator mode offers these, and only these).
OUTCOMES = (ActionOutcome.FOUND, ActionOutcome.NOT_FOUND, ActionOutcome.SEVERAL, ActionOutcome.VERIFIED,
            ActionOutcome.MISMATCH, ActionOutcome.UPDATED, ActionOutcome.ERROR, ActionOutcome.UNAVAILABLE)


def _patient(step: Step, dataset: Dataset) -> Patient:
    if step.patient is None:
        raise ValueError(f"step {step.action} needs a 'patient'")
    return dataset.patient(step.patient)


def patient_traits(patient: Patient) -> Traits:
    """The traits the software holds: as the registration desk typed them when the data set says so."""
    local = patient.local_traits
    return Traits(birth_name=local.birth_name if local and local.birth_name else patient.birth_name,
                  first_names=list(local.first_names if local and local.first_names else patient.first_names),
                  sex=patient.sex, birth_date=patient.birth_date, birth_place=patient.birth_place)


def _held(record: InsRecord) -> Ins:
    """An INS as the software holds it after retrieving it: with the OID the teleservice returned, its
    domain's (INS-NIR ``…4.8``), not the test OID the data set keeps for the other services."""
    return Ins(nir=record.nir, key=record.key, oid=answered_oid(record.oid))


def _document_checked(step: Step) -> bool:
    return bool(step.with_.get("id_document_checked", False))


@action("insi.lookup_traits", title="Look up the INS from identity traits", params=LookupTraits,
        report=InsiReport, operator_questions=ask_identity,
        instruction="Create a patient with these traits and search the INS with the INSi teleservice: "
                    "{traits}. Identity document checked: {id_document_checked}.", outcomes=OUTCOMES)
def lookup_traits(step: Step, dataset: Dataset) -> LookupTraits:
    given = step.with_.get("traits")
    traits = Traits.model_validate(given) if given else patient_traits(_patient(step, dataset))
    return LookupTraits(traits=traits, id_document_checked=_document_checked(step))


@action("insi.lookup_vitale", title="Look up the INS from the carte Vitale", params=LookupVitale,
        report=InsiReport, operator_questions=ask_identity,
        instruction="Read this carte Vitale and search the INS with the INSi teleservice: {card}.", outcomes=OUTCOMES)
def lookup_vitale(step: Step, dataset: Dataset) -> LookupVitale:
    patient = _patient(step, dataset)
    if patient.vitale is None:
        raise ValueError(f"patient {patient.id} has no carte Vitale in the data set")
    card = VitaleCard(nir=patient.vitale.holder_nir, key=patient.vitale.holder_key, birth_name=patient.birth_name,
                      birth_date=patient.birth_date, rank=patient.vitale.rank)
    return LookupVitale(card=card, id_document_checked=_document_checked(step))


@action("insi.verify", title="Verify an INS already held", params=Verify, report=InsiReport,
        operator_questions=ask_identity,
        instruction="Open the patient holding this identity and run the INS verification: {identity}.",
        outcomes=OUTCOMES)
def verify(step: Step, dataset: Dataset) -> Verify:
    patient = _patient(step, dataset)
    held = step.with_.get("ins", "active")
    if held == "active":
        ins = _held(patient.ins)
    elif held == "history":
        if not patient.ins_history:
            raise ValueError(f"patient {patient.id} has no replaced INS")
        ins = _held(patient.ins_history[0])
    else:
        ins = Ins.model_validate(held)
    identity = PatientIdentity(local_id=patient.id, status=step.with_.get("status", "RECUP"), ins=ins,
                               traits=patient_traits(patient))
    return Verify(identity=identity)
