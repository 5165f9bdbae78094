"""Documents a partner app files in the citizen's space (``DocumentReference`` with its content inline),
and the same document filed in the citizen's DMP: one patient record across the national services.

A document is a FHIR R4 DocumentReference (the shape MHD/PDSm use) with ``masterIdentifier`` (the app's
unique id of the document: MES files a retried push once), the paired citizen as ``subject``, a LOINC
``type`` (what the DMP files it under), and one ``content.attachment`` holding ``contentType``, ``data``
(base64), and ``title``. The declared format must match the bytes (a PDF starts with ``%PDF-``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference

from esante.simulators.dataset.models import Patient
from esante.simulators.mes.fhir import Invalid, problem
from esante.simulators.mes.measures import structure_problems
from esante.simulators.mes.protocol import DOCUMENT_FORMATS, LOINC, MAX_DOCUMENT_BYTES


def validate_document(resource: dict[str, Any], patient_ref: str) -> tuple[str, bytes]:
    """The document's idempotency key and content, or :class:`Invalid` with every problem."""
    problems = structure_problems(DocumentReference, resource, "DocumentReference")
    if problems:
        raise Invalid(problems)
    master = resource.get("masterIdentifier") or {}
    if not master.get("system") or not master.get("value"):
        problems.append(problem("required", "masterIdentifier (system and value) is missing: it identifies the "
                                            "document so that a retried push is filed once",
                                "DocumentReference.masterIdentifier"))
    if resource.get("status") != "current":
        problems.append(problem("value", "status must be current", "DocumentReference.status"))
    if (resource.get("subject") or {}).get("reference") != patient_ref:
        problems.append(problem("forbidden", f"subject must be the paired citizen ({patient_ref})",
                                "DocumentReference.subject"))
    contents = resource.get("content") or []
    if len(contents) != 1:
        problems.append(problem("invalid", "exactly one content is expected", "DocumentReference.content"))
        raise Invalid(problems)
    data = _content(contents[0].get("attachment") or {}, problems)
    if problems:
        raise Invalid(problems)
    return f"{master['system']}|{master['value']}", data


def _content(attachment: dict[str, Any], problems: list[dict[str, Any]]) -> bytes:
    at = "DocumentReference.content[0].attachment"
    content_type = attachment.get("contentType")
    if content_type not in DOCUMENT_FORMATS:
        problems.append(problem("code-invalid", f"contentType {content_type!r} is not one of "
                                                f"{', '.join(DOCUMENT_FORMATS)}", f"{at}.contentType"))
    if not attachment.get("title"):
        problems.append(problem("required", "the attachment has no title", f"{at}.title"))
    try:
        data = base64.b64decode(attachment.get("data") or "", validate=True)
    except (binascii.Error, ValueError):
        problems.append(problem("structure", "data is not base64", f"{at}.data"))
        return b""
    if not data or len(data) > MAX_DOCUMENT_BYTES:
        problems.append(problem("too-costly" if data else "required",
                                f"the document must hold 1 to {MAX_DOCUMENT_BYTES} bytes", f"{at}.data"))
    magic = DOCUMENT_FORMATS.get(content_type or "", b"")
    if data and content_type in DOCUMENT_FORMATS and not data.startswith(magic):
        problems.append(problem("invalid", f"the content is not {content_type}: its bytes do not start as one",
                                f"{at}.data"))
    return data


def type_code(resource: dict[str, Any]) -> dict[str, str] | None:
    """The document's LOINC type (what the DMP files it under), if it has one."""
    for coding in (resource.get("type") or {}).get("coding") or []:
        if coding.get("system") == LOINC and coding.get("code"):
            return {"code": coding["code"], "system": "2.16.840.1.113883.6.1",
                    "display": coding.get("display") or coding["code"]}
    return None


def dmp_filing(resource: dict[str, Any], patient: Patient, data: bytes) -> dict[str, Any] | None:
    """The body of the DMP simulator's ``POST /_peer/documents`` for this document (None without a type)."""
    code = type_code(resource)
    if code is None:
        return None
    attachment = resource["content"][0]["attachment"]
    return {"ins": patient.ins.nir + patient.ins.key, "ins_oid": patient.ins.oid, "title": attachment["title"],
            "mime_type": attachment["contentType"], "content_b64": base64.b64encode(data).decode(),
            "type_code": code, "creation_time": datetime.now(UTC).strftime("%Y%m%d%H%M%S"), "source": "mes"}
