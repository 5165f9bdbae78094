"""The reference candidate's MSSanté mail, on its own: what it writes is what the simulator accepts, and what it
reads it reads with bounds."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest

from esante.harness.reference.defects import Defects
from esante.harness.reference.mssante.mail import Document, Unreadable, letter, receipt, received_patient
from esante.simulators.dataset import load_dataset
from esante.simulators.mssante.inspection import Original, inspect_message

DATASET = load_dataset()
DOC = Document("285046938321480", "1.2.250.1.213.1.4.10", "MOREAU", "CLAIRE", "1985-04-12", "Compte rendu",
               "11488-4")
SENDER, RECIPIENT = "claire.vasseur@medecin.mssante.test", "david.benhamou@chu-fictif-paris.mssante.test"


def findings(msg: EmailMessage, originals: dict[str, Original] | None = None, patient: bool = False) -> set[str]:
    to = [str(msg["To"])]
    message = inspect_message(msg.as_bytes(), to, dataset=DATASET, patient_recipients=to if patient else [],
                              originals=originals or {})
    return {f.rule for f in message.findings}


def test_the_reference_letter_passes_the_simulator_checks() -> None:
    msg = letter(SENDER, RECIPIENT, to_patient=False, document=DOC, receipt=True, defects=Defects())
    assert findings(msg) == set()
    assert received_patient(msg) == DOC.ins


@pytest.mark.parametrize(("defect", "rule"), [("mssante_no_nil_header", "headers.nil"),
                                              ("mssante_plain_subject", "subject.xdm"),
                                              ("mssante_xdm_wrong_hash", "xdm.hash")])
def test_each_message_defect_is_one_finding(defect: str, rule: str) -> None:
    msg = letter(SENDER, RECIPIENT, to_patient=False, document=DOC, receipt=False, defects=Defects([defect]))
    assert findings(msg) == {rule}


def test_mail_to_a_patient_says_fin() -> None:
    to = "285046938321480@patient.mssante.fr"
    assert findings(letter(SENDER, to, to_patient=True, document=DOC, receipt=False, defects=Defects()),
                    patient=True) == set()
    broken = letter(SENDER, to, to_patient=True, document=DOC, receipt=False, defects=Defects(["mssante_no_mes_fin"]))
    assert findings(broken, patient=True) == {"headers.mes_fin"}


def test_receipts_are_in_the_required_form() -> None:
    original = letter(RECIPIENT, SENDER, to_patient=False, document=DOC, receipt=True, defects=Defects())
    known = {str(original["Message-ID"]): Original(True, True)}
    assert findings(receipt(original, SENDER, error=None), known) == set()
    unknown = {str(original["Message-ID"]): Original(True, False)}
    error = receipt(original, SENDER, error="902^Identifiant de patient inconnu^299999999999912")
    assert findings(error, unknown) == set()
    assert findings(receipt(original, SENDER, error=None), unknown) == {"mdn.error_902"}


def test_a_hostile_archive_is_not_read() -> None:
    msg = EmailMessage()
    msg.set_content("x")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(100):
            archive.writestr(f"F{i}.XML", b"")
    msg.add_attachment(buffer.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    with pytest.raises(Unreadable):
        received_patient(msg)
