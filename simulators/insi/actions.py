"""The INSi driver actions and how a campaign step's test patient becomes their parameters.

* ``insi.lookup_traits`` — the user types the patient's traits and asks for the INS;
  params ``{traits, id_document_checked}``. Traits are the patient's *local* traits when the data set
  has them (as a registration desk typed them), else the reference traits; ``with: {traits: ...}``
  replaces them (a person unknown to the service).
* ``insi.lookup_vitale`` — the user reads the carte Vitale; params ``{card: {nir, key, birth_name,
  birth_date, rank}, id_document_checked}``.
* ``insi.verify`` — the software verifies an INS it holds; params ``{identity}``. ``with: {ins: history}``
  makes the held INS the patient's replaced one; ``with: {ins: {nir, key, oid}}`` any other.
"""

from __future__ import annotations

from typing import Any

from esante.harness.actions import action
from esante.harness.campaign import Step
from esante.simulators.dataset import Dataset, Patient


def _patient(step: Step, dataset: Dataset) -> Patient:
    if step.patient is None:
        raise ValueError(f"step {step.action} needs a 'patient'")
    return dataset.patient(step.patient)


def patient_traits(patient: Patient) -> dict[str, Any]:
    local = patient.local_traits
    return {"birth_name": (local.birth_name if local and local.birth_name else patient.birth_name),
            "first_names": list(local.first_names if local and local.first_names else patient.first_names),
            "sex": patient.sex, "birth_date": patient.birth_date, "birth_place": patient.birth_place}


@action("insi.lookup_traits", title="Look up the INS from identity traits",
        instruction="Create a patient with these traits and search the INS with the INSi teleservice: "
                    "{traits}. Identity document checked: {id_document_checked}.")
def lookup_traits(step: Step, dataset: Dataset) -> dict[str, Any]:
    traits = step.with_.get("traits") or patient_traits(_patient(step, dataset))
    return {"traits": traits, "id_document_checked": bool(step.with_.get("id_document_checked", False))}


@action("insi.lookup_vitale", title="Look up the INS from the carte Vitale",
        instruction="Read this carte Vitale and search the INS with the INSi teleservice: {card}.")
def lookup_vitale(step: Step, dataset: Dataset) -> dict[str, Any]:
    patient = _patient(step, dataset)
    if patient.vitale is None:
        raise ValueError(f"patient {patient.id} has no carte Vitale in the data set")
    card = {"nir": patient.vitale.holder_nir, "key": patient.vitale.holder_key,
            "birth_name": patient.birth_name, "birth_date": patient.birth_date, "rank": patient.vitale.rank}
    return {"card": card, "id_document_checked": bool(step.with_.get("id_document_checked", False))}


@action("insi.verify", title="Verify an INS already held",
        instruction="Open the patient holding this identity and run the INS verification: {identity}.")
def verify(step: Step, dataset: Dataset) -> dict[str, Any]:
    patient = _patient(step, dataset)
    held = step.with_.get("ins", "active")
    if held == "active":
        ins = patient.ins.model_dump(include={"nir", "key", "oid"})
    elif held == "history":
        if not patient.ins_history:
            raise ValueError(f"patient {patient.id} has no replaced INS")
        ins = patient.ins_history[0].model_dump(include={"nir", "key", "oid"})
    else:
        ins = dict(held)
    identity = {"local_id": patient.id, "status": step.with_.get("status", "RECUP"), "ins": ins,
                "traits": patient_traits(patient)}
    return {"identity": identity}
