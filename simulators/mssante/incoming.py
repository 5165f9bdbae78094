"""The messages correspondents have sent to the test professionals (``inbox.yaml``), built as a conformant
MSSanté sender would: headers, structured subject, IHE_XDM.ZIP with METADATA.XML and the CDA document."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from importlib.resources import files
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import yaml

from esante.simulators.dataset import Dataset
from esante.simulators.mssante.protocol import INS_TEST_OID, NS_CDA, NS_LCM, NS_RIM, XDS_PATIENT_ID, Header, Xdm

PRODUCT = "ESANTE-MSSANTE-SIMULATOR/1.0"


@cache
def inbox_data() -> list[dict[str, Any]]:
    text = files("esante.simulators.mssante").joinpath("inbox.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["incoming"]


def cda(code: str, title: str, ins: str, family: str, given: str, birth: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="{NS_CDA}">'
            f'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
            f'<code code={quoteattr(code)} codeSystem="2.16.840.1.113883.6.1" displayName={quoteattr(title)}/>'
            f'<title>{escape(title)}</title><effectiveTime value="{datetime.now(UTC):%Y%m%d%H%M%S}+0000"/>'
            f'<recordTarget><patientRole><id root="{INS_TEST_OID}" extension={quoteattr(ins)}/><patient><name>'
            f'<family>{escape(family)}</family><given>{escape(given)}</given></name>'
            f'<birthTime value="{birth.replace("-", "")}"/></patient></patientRole></recordTarget>'
            f'<component><nonXMLBody><text mediaType="text/plain">{escape(title)}</text></nonXMLBody></component>'
            f'</ClinicalDocument>').encode()


def metadata(document: bytes, uri: str, ins: str, code: str, title: str) -> bytes:
    patient = f"{ins}^^^&amp;{INS_TEST_OID}&amp;ISO"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<lcm:SubmitObjectsRequest xmlns:lcm="{NS_LCM}" '
            f'xmlns:rim="{NS_RIM}"><rim:RegistryObjectList>'
            f'<rim:ExtrinsicObject id="Document01" mimeType="text/xml" '
            f'objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            f'<rim:Slot name="hash"><rim:ValueList><rim:Value>{hashlib.sha1(document).hexdigest()}</rim:Value>'
            f'</rim:ValueList></rim:Slot><rim:Slot name="size"><rim:ValueList><rim:Value>{len(document)}'
            f'</rim:Value></rim:ValueList></rim:Slot><rim:Slot name="URI"><rim:ValueList><rim:Value>{uri}'
            f'</rim:Value></rim:ValueList></rim:Slot><rim:Name><rim:LocalizedString value={quoteattr(title)}/>'
            f'</rim:Name><rim:Classification classificationScheme="urn:uuid:f0306f51-975f-434e-a61c-c59651d33983" '
            f'classifiedObject="Document01" nodeRepresentation="{code}"/>'
            f'<rim:ExternalIdentifier identificationScheme="{XDS_PATIENT_ID}" value="{patient}" '
            f'registryObject="Document01"/></rim:ExtrinsicObject></rim:RegistryObjectList>'
            f'</lcm:SubmitObjectsRequest>').encode()


def xdm_archive(document: bytes, meta: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(Xdm.README, "Archive IHE XDM produite par le simulateur MSSante esante-conformance.\r\n")
        archive.writestr(Xdm.INDEX, "<html><body><a href=\"IHE_XDM/SUBSET01/DOC0001.XML\">DOC0001</a></body></html>")
        archive.writestr(Xdm.METADATA, meta)
        archive.writestr(Xdm.SUBSET + "DOC0001.XML", document)
    return buffer.getvalue()


def build(entry: dict[str, Any], dataset: Dataset) -> tuple[str, bytes]:
    """(recipient address, raw message) for one ``inbox.yaml`` entry."""
    sender, recipient = dataset.professional(entry["from"]), dataset.professional(entry["to"])
    if "patient" in entry:
        patient = dataset.patient(entry["patient"])
        ins, family, given, birth = (patient.ins.nir + patient.ins.key, patient.birth_name, patient.first_names[0],
                                     patient.birth_date)
    else:
        ins, family, given, birth = entry["unknown_ins"], "INCONNU", "PATIENT", "1970-01-01"
    document = cda(entry["code"], entry["title"], ins, family, given, birth)
    msg = EmailMessage()
    msg["From"] = sender.mssante
    msg["To"] = recipient.mssante
    msg["Subject"] = f"{Xdm.SUBJECT_PREFIX}+{entry['title']} {family} {given} {birth}"
    msg["Message-ID"] = entry["message_id"]
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg[Header.NIL] = PRODUCT
    msg[Header.CODECDA] = entry["code"]
    msg[Header.INS] = "O"
    if entry.get("receipt"):
        msg[Header.RECEIPT_TO] = sender.mssante
    msg.set_content(f"Veuillez trouver ci-joint : {entry['title']}.\n")
    msg.add_attachment(xdm_archive(document, metadata(document, "DOC0001.XML", ins, entry["code"], entry["title"])),
                       maintype="application", subtype="zip", filename=Xdm.ATTACHMENT)
    return str(recipient.mssante), msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # as mail travels
