"""Content negotiation (FHIR R4 §3.1.0.1.6 "Content Types and encodings", §3.1.0.1.7 "FHIR version
parameter"): the kit serves JSON only, FHIR 4.0.

* ``_format`` (``json``, ``application/json``, ``application/fhir+json``) overrides ``Accept``; any other
  value (``xml``, ``ttl``...) is 406 Not Acceptable;
* ``Accept`` must allow JSON (``*/*``, ``application/*``, ``application/json``, ``application/fhir+json``
  with a quality above 0), else 406; a ``fhirVersion`` parameter other than 4.0 is 406 too;
* a body must be ``application/fhir+json`` or ``application/json`` (and, with ``fhirVersion``, 4.0), else
  415 Unsupported Media Type."""

from __future__ import annotations

from starlette.requests import Request

from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.media import FHIR_JSON, FHIR_VERSION, FORMATS, JSON_TYPES, VERSIONS, media_ranges


def _acceptable(kind: str, params: dict[str, str]) -> bool:
    if params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
        return False
    if params.get("fhirversion", VERSIONS[0]) not in VERSIONS:
        return False
    return kind in ("*/*", "application/*", *JSON_TYPES)


def negotiate(request: Request) -> None:
    """406 when the client asks for something other than FHIR R4 JSON (``_format``, then ``Accept``)."""
    formats = request.query_params.getlist("_format")
    if formats:
        if len(formats) > 1 or formats[0].split(";")[0].strip().lower() not in FORMATS:
            raise FhirError(406, "not-supported", f"_format {', '.join(formats)!s}: this server speaks FHIR R4 JSON "
                                                  f"only ({', '.join(FORMATS)})", expression=["_format"])
        return
    accept = request.headers.get("accept", "").strip()
    if accept and not any(_acceptable(kind, params) for kind, params in media_ranges(accept)):
        raise FhirError(406, "not-supported", f"Accept {accept[:200]!r}: this server answers {FHIR_JSON} for FHIR "
                                              f"{FHIR_VERSION} only")


def check_content_type(request: Request) -> None:
    """415 unless the body is FHIR JSON (R4)."""
    header = request.headers.get("content-type", "")
    ranges = media_ranges(header)
    kind, params = ranges[0] if ranges else ("", {})
    if kind not in JSON_TYPES or params.get("fhirversion", VERSIONS[0]) not in VERSIONS:
        raise FhirError(415, "not-supported", f"the body must be {FHIR_JSON} (FHIR {FHIR_VERSION}), not "
                                              f"{header[:100] or 'untyped'}")
