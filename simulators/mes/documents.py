"""Documents a partner app files in the citizen's space (``DocumentReference`` with its content inline); the
same document is filed in the citizen's DMP too (:mod:`.dmp`).

A document is a FHIR R4 DocumentReference (the shape MHD/PDSm use) with ``masterIdentifier`` (the app's
unique id of the document: MES files a retried push once), the paired citizen as ``subject``, a LOINC
``type`` (what the DMP files it under), and one ``content.attachment`` holding ``contentType``, ``data``
(base64), and ``title``. The declared format must match the bytes (a PDF starts with ``%PDF-``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from esante.simulators.kits.fhir.errors import Invalid, problem
from esante.simulators.mes.protocol import DOCUMENT_FORMATS, MAX_DOCUMENT_BYTES


def validate_document(resource: dict[str, Any], patient_ref: str) -> tuple[str, bytes]:
    """The (valid R4) document's idempotency key and content, or :class:`Invalid` with every problem."""
    problems: list[dict[str, Any]] = []
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
