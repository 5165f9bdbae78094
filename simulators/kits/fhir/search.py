"""FHIR search results (FHIR R4 §3.1.1 "Search"): a ``searchset`` Bundle of one page of matches, with ``self``
and ``next`` links (offset paging: ``_count`` and ``_offset``, FHIR R4 §3.1.1.5.7 leaves the paging scheme to
the server)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode


def searchset(url: str, matches: list[dict[str, Any]], offset: int, count: int,
              query: list[tuple[str, str]]) -> dict[str, Any]:
    """The page of ``matches`` (already sorted) at ``offset``, for the search at ``url`` (the resource type's
    endpoint) with ``query`` (its parameters, paging aside)."""
    page = matches[offset:offset + count]

    def link(at: int) -> str:
        return f"{url}?{urlencode([*query, ('_count', str(count)), ('_offset', str(at))])}"

    links = [{"relation": "self", "url": link(offset)}]
    if offset + count < len(matches):
        links.append({"relation": "next", "url": link(offset + count)})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links,
            "entry": [{"fullUrl": f"{url}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in page]}
