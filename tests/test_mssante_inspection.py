"""What the MSSanté simulator judges in a message (XDM archive, headers, receipts), hostile archives refused
unread, and the Annuaire Santé directory searches."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from esante.simulators.core.app import create_app
from esante.simulators.core.runtime import SimulatorSettings
from esante.simulators.dataset import load_dataset
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.mssante import MssanteSimulator
from esante.simulators.mssante.directory import FhirDirectory
from esante.simulators.mssante.incoming import build, inbox_data
from esante.simulators.mssante.inspection import Original, inspect_message
from esante.simulators.mssante.xdm import HostileArchive, inspect_xdm, read_archive

VECTORS = Path(__file__).parent / "vectors" / "mssante"
DATASET = load_dataset()
PROFESSIONAL = "david.benhamou@chu-fictif-paris.mssante.test"


def seeded(index: int = 0) -> bytes:
    return build(inbox_data()[index], DATASET)[1]


def rules(raw: bytes, originals: dict[str, Original] | None = None, to: str = PROFESSIONAL) -> set[str]:
    message = inspect_message(raw, [to], dataset=DATASET, patient_recipients=[], originals=originals or {})
    return {f.rule for f in message.findings}


@pytest.mark.parametrize(("vector", "reason"), [
    ("bomb.zip", "zip bomb"), ("traversal.zip", "escapes the archive"), ("absolute_path.zip", "escapes the archive"),
    ("many_members.zip", "more than 64"), ("not_a_zip.zip", "not a readable zip")])
def test_hostile_archives_are_refused_unread(vector: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(HostileArchive, match=reason):
        read_archive((VECTORS / vector).read_bytes())
    assert not Path("/tmp/ESANTE_PWNED.TXT").exists()


def test_names_that_are_not_8_3_upper_case_are_findings() -> None:
    found = inspect_xdm((VECTORS / "lowercase_names.zip").read_bytes()).findings
    assert [(f.rule, f.location) for f in found if f.rule == "xdm.names"] == [
        ("xdm.names", "IHE_XDM/SUBSET01/compte-rendu.xml")]


def test_a_hostile_archive_in_a_message_is_a_finding_not_a_crash() -> None:
    msg = EmailMessage()
    msg["Subject"], msg["X-MSS-NIL"] = "XDM/1.0/DDM+Bombe", "T/1"
    msg.set_content("x")
    msg.add_attachment((VECTORS / "bomb.zip").read_bytes(), maintype="application", subtype="zip",
                       filename="IHE_XDM.ZIP")
    assert "xdm.hostile" in rules(msg.as_bytes())


def test_a_conformant_structured_message_has_no_finding() -> None:
    message = inspect_message(seeded(), [PROFESSIONAL], dataset=DATASET, patient_recipients=[], originals={})
    assert message.findings == []
    assert message.cda_codes == ["11488-4"] and message.patient_known is True


def _rezip(raw: bytes, change: dict[str, bytes | None]) -> bytes:
    """The seeded message with members of its archive replaced (None: removed)."""
    from esante.simulators.mssante.inspection import parse

    msg = parse(raw)
    part = next(p for p in msg.iter_attachments())
    source = zipfile.ZipFile(io.BytesIO(part.get_payload(decode=True)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in source.infolist():
            data = change.get(info.filename, source.read(info))
            if data is not None:
                archive.writestr(info.filename, data)
        for name, data in change.items():
            if name not in source.namelist() and data is not None:
                archive.writestr(name, data)
    part.set_content(buffer.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg.as_bytes()


def test_archive_findings_name_rule_and_place() -> None:
    raw = seeded()
    document = zipfile.ZipFile(io.BytesIO(_archive(raw))).read("IHE_XDM/SUBSET01/DOC0001.XML")
    assert "xdm.hash" in rules(_rezip(raw, {"IHE_XDM/SUBSET01/DOC0001.XML": document + b" "}))
    assert "xdm.layout" in rules(_rezip(raw, {"README.TXT": None}))
    assert "xdm.names" in rules(_rezip(raw, {"IHE_XDM/SUBSET01/extra-file.xml": b"<x/>"}))
    assert "xdm.metadata" in rules(_rezip(raw, {"IHE_XDM/SUBSET01/METADATA.XML": b"<notXds/>"}))
    assert "xdm.metadata" in rules(_rezip(raw, {"IHE_XDM/SUBSET01/METADATA.XML": (
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')}))
    other = document.replace(b"285046938321480", b"179097511408703")
    found = rules(_rezip(raw, {"IHE_XDM/SUBSET01/DOC0001.XML": other}))
    assert "xdm.patient_agreement" in found


def _archive(raw: bytes) -> bytes:
    from esante.simulators.mssante.inspection import parse

    return next(parse(raw).iter_attachments()).get_payload(decode=True)


def test_structured_headers_and_subject() -> None:
    raw = seeded().replace(b"X-MSS-CODECDA: 11488-4", b"X-MSS-CODECDA: 00000-0").replace(
        b"Subject: XDM/1.0/DDM+", b"Subject: CR ")
    assert {"headers.codecda", "subject.xdm"} <= rules(raw)


def test_receipts_only_when_asked_and_902_for_an_unknown_patient() -> None:
    def mdn(original: str, disposition: str, subject: str = "Accusé") -> bytes:
        msg = EmailMessage()
        msg["Subject"], msg["X-MSS-NIL"] = subject, "T/1"
        msg.set_content("lu")
        msg.make_mixed()
        msg.set_type("multipart/report")
        msg.set_param("report-type", "disposition-notification")
        note = EmailMessage()
        note.set_content(f"Final-Recipient: rfc822;{PROFESSIONAL}\r\nOriginal-Message-ID: {original}\r\n"
                         f"Disposition: {disposition}\r\n".encode(), maintype="message",
                         subtype="disposition-notification", cte="7bit")
        msg.attach(note)
        return msg.as_bytes()

    processed = "automatic-action/MDN-sent-automatically; processed"
    originals = {"<asked>": Original(True, True), "<silent>": Original(False, True), "<unknown>": Original(True, False)}
    assert rules(mdn("<asked>", processed), originals) == set()
    assert rules(mdn("<silent>", processed), originals) == {"mdn.unsolicited"}
    assert rules(mdn("<unknown>", processed), originals) == {"mdn.error_902"}
    error = processed + "/Error: 902^Identifiant de patient inconnu^299999999999912"
    assert rules(mdn("<unknown>", error, "[KO Intégration système !][902] x"), originals) == set()


def test_directory_searches() -> None:
    directory = FhirDirectory(DATASET)
    base = "https://mss.test/fhir/v2"
    found = directory.search("Practitioner", [("identifier", "urn:oid:1.2.250.1.71.4.2.1|810999900029")], base)
    assert found["total"] == 1 and found["entry"][0]["resource"]["telecom"][0]["value"] == PROFESSIONAL
    assert directory.search("Practitioner", [("name", "vasseur")], base)["total"] == 1
    assert directory.search("Practitioner", [("mailbox-mss:contains", "pharmacien")], base)["total"] == 1
    assert directory.search("Organization", [("mailbox-mss-type", "APP")], base)["total"] == 1
    page = directory.search("Practitioner", [("_count", "2")], base)
    assert len(page["entry"]) == 2 and any(link["relation"] == "next" for link in page["link"])
    for params in ([("colour", "blue")], [("mailbox-mss-type", "XYZ")], [("_count", "-1")]):
        with pytest.raises(FhirError) as refused:
            directory.search("Practitioner", params, base)
        assert refused.value.outcome()["resourceType"] == "OperationOutcome"


def test_directory_over_http_answers_fhir_and_operation_outcomes(tmp_path: Path) -> None:
    settings = SimulatorSettings(evidence_path=tmp_path / "e.sqlite")
    client = TestClient(create_app(MssanteSimulator(DATASET), settings))
    assert client.get("/fhir/v2/Practitioner").status_code == 401
    headers = {"ESANTE-API-KEY": "k"}
    answer = client.get("/fhir/v2/Practitioner", params={"mailbox-mss:exact": PROFESSIONAL}, headers=headers)
    assert answer.headers["content-type"].startswith("application/fhir+json") and answer.json()["total"] == 1
    assert client.get("/fhir/v2/Device", headers=headers).json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/v2/Practitioner/pr-10999900011", headers=headers).json()["id"] == "pr-10999900011"
    assert client.get("/fhir/v2/Practitioner/nope", headers=headers).status_code == 404


def test_the_dmp_document_checks_see_the_xdm_content() -> None:
    """The seam: the archive's SubmitObjectsRequest and CDA go through the DMP's checks; findings are dmp.*."""
    message = inspect_message(seeded(), [PROFESSIONAL], dataset=DATASET, patient_recipients=[], originals={})
    assert message.dmp_findings and all(f.rule.startswith("dmp.") for f in message.dmp_findings)
