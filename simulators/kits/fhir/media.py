"""FHIR JSON on the wire (FHIR R4 §2.6.1 "JSON representation"): the media types, the FHIR version, the
answer. What a request may ask for is :mod:`.negotiation`'s."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

FHIR_JSON = "application/fhir+json"
#: The version a CapabilityStatement states: R4 as the HL7 JSON Schema the kit ships knows it (its FHIRVersion
#: codes end at 4.0.0; 4.0.1 is R4's technical correction, accepted below as the same version).
FHIR_VERSION = "4.0.0"
#: What ``fhirVersion`` may say for this server (R4 §3.1.0.1.7: the major.minor, or the full version).
VERSIONS = ("4.0", "4.0.0", "4.0.1")
JSON_TYPES = (FHIR_JSON, "application/json")
#: ``_format`` values the server honours: the JSON mime types and the short form.
FORMATS = ("json", *JSON_TYPES)


def fhir_response(body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
                  ) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def media_ranges(header: str) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an ``Accept`` or ``Content-Type`` header, each with its parameters (lower case)."""
    ranges = []
    for item in header.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        if kind:
            ranges.append((kind.lower(), {k.strip().lower(): v.strip().strip('"') for k, _, v in
                                          (p.partition("=") for p in params)}))
    return ranges


