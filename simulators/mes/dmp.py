"""One patient record: a document a partner app files in Mon espace santé is filed in the citizen's DMP too,
through the DMP simulator's private route (``POST {dmp}/_peer/documents``, the lab's admin token), when the
lab has one. What the DMP answered is the evidence, kept in the exchange's notes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import httpx

from esante.simulators.core.runtime import Peer
from esante.simulators.dataset.models import Patient
from esante.simulators.mes.notes import DmpFiling
from esante.simulators.mes.protocol import LOINC

DMP_TIMEOUT = 10.0
DMP_DOCUMENTS_PATH = "/_peer/documents"
LOINC_OID = "2.16.840.1.113883.6.1"


def type_code(resource: dict[str, Any]) -> dict[str, str] | None:
    """The document's LOINC type (what the DMP files it under), if it has one."""
    for coding in (resource.get("type") or {}).get("coding") or []:
        if coding.get("system") == LOINC and coding.get("code"):
            return {"code": coding["code"], "system": LOINC_OID, "display": coding.get("display") or coding["code"]}
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


def file_in_dmp(peer: Peer | None, resource: dict[str, Any], patient: Patient, data: bytes) -> DmpFiling:
    """File the document in the citizen's DMP (a blocking call: run it off the event loop)."""
    if peer is None:
        return DmpFiling(skipped="no DMP simulator in this lab")
    body = dmp_filing(resource, patient, data)
    if body is None:
        return DmpFiling(skipped="the document has no LOINC type: the DMP files documents by type")
    try:
        with peer.client(timeout=DMP_TIMEOUT) as http:
            answer = http.post(DMP_DOCUMENTS_PATH, json=body)
    except httpx.HTTPError as exc:
        return DmpFiling(error=f"{type(exc).__name__}: {exc}")
    try:
        detail = answer.json()
    except ValueError:
        detail = {"text": answer.text[:300]}
    return DmpFiling(status=answer.status_code, answer=detail)
