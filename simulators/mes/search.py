"""The FHIR searches MES serves on a citizen's record (our design, ``DESIGN.md``): ``code`` and ``type``
(token, ``[system|]code``), ``status``, ``date`` (``ge``/``le``/``eq``), ``_count`` (1 to 100) and
``_offset``, newest first. An unknown parameter is refused, not ignored: an app learns it asked for
something MES does not filter on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.mes.access import not_paired
from esante.simulators.mes.protocol import MAX_PAGE_SIZE, PAGE_SIZE

FILTERS = ("code", "date", "status", "type")


@dataclass(frozen=True, slots=True)
class Search:
    """A search's filters, in the order asked, and its page."""

    filters: dict[str, str]
    count: int
    offset: int


def read_search(query: dict[str, str], patient_reference: str) -> Search:
    """The search asked in ``query``, which may name only the paired citizen (``patient`` or ``subject``)."""
    params = dict(query)
    count, offset = _int(params.pop("_count", PAGE_SIZE), "_count"), _int(params.pop("_offset", 0), "_offset")
    if not 1 <= count <= MAX_PAGE_SIZE:
        raise FhirError(400, "invalid", f"_count must be 1..{MAX_PAGE_SIZE}", expression=["_count"])
    subject = params.pop("patient", None) or params.pop("subject", None)
    if subject not in (None, patient_reference, patient_reference.split("/")[1]):
        raise not_paired()
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise FhirError(400, "not-supported", f"search parameter(s) {', '.join(unknown)} not supported")
    return Search(params, count, offset)


def matching(rows: list[dict[str, Any]], search: Search) -> list[dict[str, Any]]:
    """The rows the search's filters keep, newest first; the offset must fall within them."""
    matches = sorted((r for r in rows if _matches(r, search.filters)), key=_when, reverse=True)
    if not 0 <= search.offset <= len(matches):
        raise FhirError(400, "invalid", "_offset is outside the results", expression=["_offset"])
    return matches


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FhirError(400, "invalid", f"{name} must be an integer", expression=[name]) from None


def _when(resource: dict[str, Any]) -> str:
    return str(resource.get("effectiveDateTime") or resource.get("start") or resource.get("date")
               or resource["meta"]["lastUpdated"])


def _matches(resource: dict[str, Any], params: dict[str, str]) -> bool:
    for name in ("code", "type"):
        if name in params:
            wanted = params[name].split("|")[-1]
            codings = (resource.get(name) or {}).get("coding") or []
            if not any(c.get("code") == wanted for c in codings):
                return False
    if "status" in params and resource.get("status") != params["status"]:
        return False
    return "date" not in params or _on_date(_when(resource), params["date"])


def _on_date(when: str, condition: str) -> bool:
    prefix, value = (condition[:2], condition[2:]) if condition[:2] in ("ge", "le", "eq") else ("eq", condition)
    when = when[:len(value)]
    return not ((prefix == "ge" and when < value) or (prefix == "le" and when > value)
                or (prefix == "eq" and when != value))
