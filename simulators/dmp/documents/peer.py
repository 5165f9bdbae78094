"""The private link of Mon espace santé: a document another national service files in the patient's DMP, as
if fed by TD2.1 (no VIHF, no document checks: the filing service answers for it)."""

from __future__ import annotations

import base64
import uuid

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from esante.simulators.dmp.documents.registry import DocumentRegistry
from esante.simulators.dmp.patient.records import Records, now
from esante.simulators.dmp.protocol import OID_INS_NIR_TEST
from esante.simulators.kits.ihe_xds.ebrim import Coded, DocumentEntry
from esante.simulators.kits.ihe_xds.hl7v2 import format_cx


class PeerDocument(BaseModel):
    """A document another national service files in the patient's DMP (Mon espace santé)."""

    model_config = ConfigDict(extra="forbid")
    ins: str = Field(pattern=r"^\d{13}\d{2}$|^\d{5}(?:2A|2B)\d{6}\d{2}$")
    ins_oid: str = OID_INS_NIR_TEST
    title: str = Field(min_length=1, max_length=256)
    mime_type: str = Field(min_length=3, max_length=100)
    content_b64: str = Field(max_length=8 * 1024 * 1024)
    type_code: dict[str, str]
    creation_time: str = Field(pattern=r"^\d{8}(\d{6})?$")
    source: str = Field(min_length=1, max_length=64)


def file_peer_document(document: PeerDocument, records: Records, registry: DocumentRegistry) -> JSONResponse:
    """Store ``document`` in the open DMP of its INS: 201 with its uniqueId and entryUUID, 404 without one."""
    record = records.get(document.ins)
    if record is None or not record.is_open:
        return JSONResponse({"error": f"no open DMP for INS {document.ins}"}, status_code=404)
    try:
        content = base64.b64decode(document.content_b64, validate=True)
    except ValueError:
        return JSONResponse({"error": "content_b64 is not base64"}, status_code=422)
    entry_uuid, unique_id = f"urn:uuid:{uuid.uuid4()}", f"2.25.{uuid.uuid4().int}"
    code = document.type_code
    entry = DocumentEntry(entry_uuid, unique_id=unique_id, patient_id=format_cx(document.ins, document.ins_oid),
                          lid=entry_uuid, mime_type=document.mime_type, title=document.title,
                          type_code=Coded(code.get("code", ""), code.get("system", ""), code.get("display", "")),
                          creation_time=document.creation_time, comments=f"filed by {document.source}")
    registry.add(entry, content, f"peer:{document.source}")
    record.last_add = now()
    return JSONResponse({"unique_id": unique_id, "entry_uuid": entry_uuid}, status_code=201)
