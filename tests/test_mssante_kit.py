"""The MSSanté test kit's driver actions: people in the one shape of every kit, recipients as an address book
holds them, and parameters the reference candidate's own models (declared apart from the kit) accept."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from esante.harness.actions import load_actions
from esante.harness.campaign import Step, load_campaign
from esante.harness.kits import kit
from esante.harness.reference.mssante.models import LoginParams, LookupParams, SendParams
from esante.harness.reference.parts import NoParams
from esante.simulators.dataset import load_dataset

DATASET = load_dataset()
REFERENCE_MODELS: dict[str, type[BaseModel]] = {"mss.login": LoginParams, "mss.lookup_recipient": LookupParams,
                                                "mss.send": SendParams, "mss.integrate": NoParams}


def params(action: str, **step: Any) -> dict[str, Any]:
    return load_actions()[action].parameters(Step.model_validate({"action": action, **step}), DATASET)


def test_a_structured_letter_names_its_patient_in_the_one_shape() -> None:
    sent = params("mss.send", patient="P001", **{"with": {"to": "PS002", "title": "CR", "code": "11488-4"}})
    patient = DATASET.patient("P001")
    assert sent["document"]["patient"]["ins"] == {"nir": patient.ins.nir, "key": patient.ins.key,
                                                  "oid": patient.ins.oid}
    assert sent["document"]["patient"]["birth_name"] == patient.birth_name
    assert sent["document"]["patient"]["first_names"] == list(patient.first_names)
    assert sent["recipient"] == {"kind": "professional", "rpps": DATASET.professional("PS002").rpps,
                                 "family_name": DATASET.professional("PS002").family_name,
                                 "given_name": DATASET.professional("PS002").given_name}


def test_recipients_patients_and_senders() -> None:
    to_patient = params("mss.send", patient="P002", **{"with": {"to_patient": True, "document": False}})
    ins = DATASET.patient("P002").ins
    assert to_patient["recipient"] == {"kind": "patient", "address": f"{ins.nir}{ins.key}@patient.mssante.fr"}
    assert to_patient["document"] is None
    application = params("mss.send", **{"with": {"from": "application", "address": "x@medecin.mssante.test"}})
    assert application["sender"]["kind"] == "application" and application["sender"]["certificate_cn"]
    with pytest.raises(ValueError, match="needs with"):
        params("mss.send", **{"with": {}})


def test_every_step_of_the_campaign_is_what_the_reference_candidate_accepts() -> None:
    campaign = load_campaign(kit("mssante").campaign_path).campaign
    steps = [s for case in campaign.cases for s in case.steps if s.action]
    assert {s.action for s in steps} == set(REFERENCE_MODELS)
    for step in steps:
        REFERENCE_MODELS[str(step.action)].model_validate(load_actions()[str(step.action)].parameters(step, DATASET))


def test_the_sign_in_reports_who_is_signed_in() -> None:
    spec = load_actions()["mss.login"]
    assert spec.report.__name__ == "SignInReport" and spec.operator_questions is not None
    assert params("mss.login", professional="PS001")["professional"]["national_id"] == \
        DATASET.professional("PS001").national_id
