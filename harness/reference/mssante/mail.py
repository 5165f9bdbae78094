"""The reference candidate's MSSanté mail: what it writes (letters, XDM archives, read receipts) and how it reads
what it receives. Written from the specifications (Référentiel #2, the IG "CDA par messagerie sécurisée",
RFC 8098), independently of the simulator's code; only protocol constants are shared.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from esante.harness.reference.defects import Defects
from esante.simulators.mssante.protocol import MES_FIN, NS_CDA, NS_LCM, NS_RIM, XDS_PATIENT_ID, Header, Mdn, Xdm

PRODUCT = "ESANTE-REFERENCE-CANDIDATE/1.0"
DOCUMENT_NAME = "DOC0001.XML"
MAX_ARCHIVE = 20 * 1024 * 1024
MAX_MEMBER = 10 * 1024 * 1024
MAX_MEMBERS = 32
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True, slots=True)
class Document:
    ins: str
    oid: str
    family_name: str
    given_name: str
    birth_date: str
    title: str
    code: str


def cda(doc: Document) -> bytes:
    """A minimal CDA R2 document (non-XML body) about the patient."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="{NS_CDA}">'
            f'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
            f'<code code={quoteattr(doc.code)} codeSystem="2.16.840.1.113883.6.1" displayName={quoteattr(doc.title)}/>'
            f'<title>{escape(doc.title)}</title><effectiveTime value="{datetime.now(UTC):%Y%m%d%H%M%S}+0000"/>'
            f'<recordTarget><patientRole><id root={quoteattr(doc.oid)} extension={quoteattr(doc.ins)}/><patient>'
            f'<name><family>{escape(doc.family_name)}</family><given>{escape(doc.given_name)}</given></name>'
            f'<birthTime value="{doc.birth_date.replace("-", "")}"/></patient></patientRole></recordTarget>'
            f'<component><nonXMLBody><text mediaType="text/plain">{escape(doc.title)}</text></nonXMLBody>'
            f'</component></ClinicalDocument>').encode()


def submit_objects_request(document: bytes, doc: Document, defects: Defects) -> bytes:
    digest = hashlib.sha1(b"" if defects.on("mssante_xdm_wrong_hash") else document).hexdigest()

    def slot(name: str, value: str) -> str:
        return (f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{escape(value)}</rim:Value></rim:ValueList>'
                '</rim:Slot>')
    patient = escape(f"{doc.ins}^^^&{doc.oid}&ISO")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<lcm:SubmitObjectsRequest xmlns:lcm="{NS_LCM}" '
            f'xmlns:rim="{NS_RIM}"><rim:RegistryObjectList><rim:ExtrinsicObject id="Document01" '
            f'mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
            f'{slot("hash", digest)}{slot("size", str(len(document)))}{slot("URI", DOCUMENT_NAME)}'
            f'<rim:Name><rim:LocalizedString value={quoteattr(doc.title)}/></rim:Name>'
            f'<rim:ExternalIdentifier identificationScheme="{XDS_PATIENT_ID}" value="{patient}" '
            f'registryObject="Document01"/></rim:ExtrinsicObject></rim:RegistryObjectList>'
            f'</lcm:SubmitObjectsRequest>').encode()


def xdm(doc: Document, defects: Defects) -> bytes:
    document = cda(doc)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(Xdm.README, f"IHE XDM - {PRODUCT}\r\n")
        archive.writestr(Xdm.INDEX, f'<html><body><a href="{Xdm.SUBSET}{DOCUMENT_NAME}">{escape(doc.title)}</a>'
                                    '</body></html>')
        archive.writestr(Xdm.METADATA, submit_objects_request(document, doc, defects))
        archive.writestr(Xdm.SUBSET + DOCUMENT_NAME, document)
    return buffer.getvalue()


def letter(sender: str, recipient: str, *, to_patient: bool, document: Document | None, receipt: bool,
           defects: Defects) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, recipient
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if not defects.on("mssante_no_nil_header"):
        msg[Header.NIL] = PRODUCT
    if to_patient and not defects.on("mssante_no_mes_fin"):
        msg[Header.MES] = MES_FIN
    if receipt:
        msg[Header.RECEIPT_TO] = sender
    if document is None:
        msg["Subject"] = "Courrier"
        msg.set_content("Cher confrère,\n\nVeuillez trouver ci-dessous mon courrier.\n")
        return msg
    plain = defects.on("mssante_plain_subject")
    msg["Subject"] = document.title if plain else (f"{Xdm.SUBJECT_PREFIX}+{document.title} {document.family_name} "
                                                   f"{document.given_name} {document.birth_date}")
    msg[Header.CODECDA] = document.code
    msg[Header.INS] = "O"
    msg.set_content(f"Veuillez trouver ci-joint : {document.title}.\n")
    msg.add_attachment(xdm(document, defects), maintype="application", subtype="zip", filename=Xdm.ATTACHMENT)
    return msg


# -- receiving --------------------------------------------------------------------------------------------------
class Unreadable(ValueError):
    pass


def _archive(msg: EmailMessage) -> bytes | None:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == Xdm.ATTACHMENT:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def received_patient(msg: EmailMessage) -> str | None:
    """The INS of the CDA document of the message's XDM archive (None: no structured document).

    The archive is read with bounds (members, sizes) and never extracted to disk."""
    data = _archive(msg)
    if data is None:
        return None
    if len(data) > MAX_ARCHIVE:
        raise Unreadable("archive too large")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS or any(i.file_size > MAX_MEMBER for i in infos):
            raise Unreadable("archive with too many or too large members")
        metadata = etree.fromstring(archive.read(Xdm.METADATA), _PARSER)
        uri = metadata.xpath("//rim:ExtrinsicObject/rim:Slot[@name='URI']/rim:ValueList/rim:Value/text()",
                             namespaces={"rim": NS_RIM})
        document = etree.fromstring(archive.read(Xdm.SUBSET + str(uri[0]).strip()), _PARSER)
    except (zipfile.BadZipFile, KeyError, IndexError, etree.XMLSyntaxError) as exc:
        raise Unreadable(f"unreadable XDM archive: {exc}") from None
    ids = document.xpath("h:recordTarget/h:patientRole/h:id/@extension", namespaces={"h": NS_CDA})
    return str(ids[0]) if ids else ""


def receipt(original: EmailMessage, own: str, *, error: str | None) -> EmailMessage:
    """An RFC 8098 MDN: processed, or processed/Error with the IG's error code."""
    msg = EmailMessage()
    original_subject = str(original.get("Subject", ""))
    msg["From"] = own
    msg["To"] = str(original.get(Header.RECEIPT_TO) or original["From"])
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=own.rpartition("@")[2])
    msg[Header.NIL] = PRODUCT
    msg["Subject"] = (f"{Mdn.KO_SUBJECT_PREFIX}[{Mdn.UNKNOWN_PATIENT}] {original_subject}" if error
                      else f"Accusé de lecture : {original_subject}")
    disposition = f"{Mdn.ERROR_PREFIX}{error}" if error else Mdn.PROCESSED
    human = "Le document n'a pas pu être intégré." if error else "Le document a été intégré."
    report = (f"Reporting-UA: esante-reference; {PRODUCT}\r\nOriginal-Recipient: rfc822;{own}\r\n"
              f"Final-Recipient: rfc822;{own}\r\nOriginal-Message-ID: {original['Message-ID']}\r\n"
              f"Disposition: {disposition}\r\n")
    msg.set_content(human)
    msg.make_mixed()
    msg.set_type("multipart/report")
    msg.set_param("report-type", "disposition-notification")
    notification = EmailMessage()
    notification.set_content(report.encode(), maintype="message", subtype="disposition-notification",
                             cte="7bit")
    msg.attach(notification)
    return msg


def unknown_patient_error(ins: str) -> str:
    return f"{Mdn.UNKNOWN_PATIENT}^{Mdn.UNKNOWN_PATIENT_LABEL}^{ins}"
