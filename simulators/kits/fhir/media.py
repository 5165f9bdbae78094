"""FHIR JSON on the wire (FHIR R4 §2.6.1 "JSON representation")."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

FHIR_JSON = "application/fhir+json"


def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)
