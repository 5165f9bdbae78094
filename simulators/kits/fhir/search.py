"""FHIR R4 search (§3.1.1, http://hl7.org/fhir/R4/search.html) for the parameters a server declares, and
honest about the others:

* each :class:`SearchParam` has a type (token, date, string, reference: :mod:`.values`) and says where its
  values are; ``_id`` and ``_lastUpdated`` come with every resource type;
* a comma is OR (``code=a,b``), a repeated parameter is AND (``date=ge2024&date=lt2025``);
* result parameters: ``_count`` (0 is ``_summary=count``; above the page limit, capped, with a ``next`` link),
  ``_offset`` (this kit's paging; R4 §3.1.1.5.7 leaves paging to the server), ``_sort``, ``_total``,
  ``_summary=count|false``, ``_format`` (:mod:`.negotiation`);
* an unknown or unsupported parameter is refused (400) under ``Prefer: handling=strict``, the default, and
  left out (of the search and of the ``self`` link) under ``handling=lenient``; a malformed value or an
  unsupported modifier is always 400: never a silent wrong answer;
* the ``self`` link carries exactly the parameters applied, ``next``/``previous``/``first`` the same ones
  with another ``_offset``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from esante.simulators.kits.fhir import values
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.notes import Page

ParamType = Literal["token", "date", "string", "reference"]
MODIFIERS: dict[str, tuple[str, ...]] = {"token": ("not",), "date": (), "string": ("contains", "exact"),
                                         "reference": ()}
#: Result parameters this kit applies, and those it knows but does not support (refused or ignored).
RESULT_PARAMS = ("_count", "_offset", "_sort", "_total", "_summary", "_format")
UNSUPPORTED = ("_elements", "_include", "_revinclude", "_contained", "_containedType", "_has", "_list", "_text",
               "_content", "_query", "_filter", "_security", "_tag", "_profile", "_source", "_type")
TOTALS = ("none", "estimate", "accurate")
MAX_PARAMS = 64          # parameters in one search
MAX_ALTERNATIVES = 100   # values OR'ed in one parameter
HL7_PARAM = "http://hl7.org/fhir/SearchParameter/"
_COMMA = re.compile(r"(?<!\\),")


@dataclass(frozen=True, slots=True)
class SearchParam:
    """A search parameter a resource type supports: its name, type and where its values are (dotted paths,
    ``[x]`` for a choice type, or ``extract`` for values no path reaches); ``codes`` limits a token to a
    value set (other codes are 400)."""

    name: str
    type: ParamType
    paths: tuple[str, ...] = ()
    definition: str | None = None
    documentation: str = ""
    extract: Callable[[dict[str, Any]], list[Any]] | None = None
    codes: tuple[str, ...] = ()

    def nodes(self, resource: dict[str, Any]) -> list[Any]:
        if self.extract is not None:
            return self.extract(resource)
        return [node for path in self.paths for node in walk(resource, path)]

    def keys(self, resource: dict[str, Any]) -> list[Any]:
        """The resource's values for this parameter, in the form its tests take."""
        nodes = self.nodes(resource)
        if self.type == "token":
            return [pair for node in nodes for pair in values.tokens(node)]
        if self.type == "date":
            return [r for r in map(values.date_value, nodes) if r is not None]
        if self.type == "string":
            return [s for node in nodes for s in values.strings(node)]
        return [ref for node in nodes for ref in values.references(node)]

    def test(self, text: str, modifier: str) -> Callable[[Any], bool]:
        """The test one value (``text``) makes of one of :meth:`keys`; ValueError when it is malformed."""
        if self.type == "token":
            if self.codes and text.rpartition("|")[2] not in self.codes:
                raise ValueError(f"{text!r} is not one of {', '.join(self.codes)}")
            return values.token_test(text)
        if self.type == "date":
            return values.date_test(text)
        if self.type == "string":
            return values.string_test(text, modifier)
        return values.reference_test(text)

    def sort_key(self, resource: dict[str, Any]) -> str | None:
        keys = self.keys(resource)
        if not keys:
            return None
        first = keys[0]
        if isinstance(first, values.Range):
            return first.low.isoformat()
        return first[1] if isinstance(first, tuple) else values.folded(str(first))


COMMON = (SearchParam("_id", "token", ("id",), HL7_PARAM + "Resource-id", "the logical id"),
          SearchParam("_lastUpdated", "date", ("meta.lastUpdated",), HL7_PARAM + "Resource-lastUpdated",
                      "when the resource last changed on this server"))


def walk(node: Any, path: str) -> list[Any]:
    """The elements at a dotted ``path`` (lists flattened; ``name[x]`` is any of the choice type's elements)."""
    current = [node]
    for step in path.split("."):
        found: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            if step.endswith("[x]"):
                stem = step[:-3]
                picked = [v for k, v in item.items() if k.startswith(stem) and k[len(stem):][:1].isupper()]
            else:
                picked = [item[step]] if step in item else []
            for value in picked:
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


@dataclass(frozen=True, slots=True)
class Filter:
    """One parameter as asked (its alternatives OR'ed)."""

    param: SearchParam
    modifier: str
    asked: tuple[str, str]
    tests: tuple[Callable[[Any], bool], ...]

    def matches(self, resource: dict[str, Any]) -> bool:
        keys = self.param.keys(resource)
        hit = any(test(key) for test in self.tests for key in keys)
        return not hit if self.modifier == "not" else hit


@dataclass(slots=True)
class Search:
    """A search as the server will run it: the filters (AND), the page, the order, what the answer holds."""

    filters: list[Filter] = field(default_factory=list)
    count: int = 20
    offset: int = 0
    sort: list[tuple[SearchParam, bool]] = field(default_factory=list)  # (param, descending)
    summary_count: bool = False
    total: bool = True
    applied: list[tuple[str, str]] = field(default_factory=list)  # result parameters applied, paging aside
    ignored: list[str] = field(default_factory=list)

    def run(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows every filter keeps, in the asked order (values missing last), then by id."""
        found = sorted((r for r in rows if all(f.matches(r) for f in self.filters)), key=lambda r: str(r.get("id")))
        for param, descending in reversed(self.sort):
            keyed = [(param.sort_key(r), r) for r in found]
            present = sorted((x for x in keyed if x[0] is not None), key=lambda x: x[0], reverse=descending)
            found = [r for _, r in present] + [r for key, r in keyed if key is None]
        return found

    def asked(self) -> list[tuple[str, str]]:
        return [f.asked for f in self.filters] + self.applied

    def page(self, total: int) -> Page:
        count = 0 if self.summary_count else self.count
        return Page(offset=self.offset, count=count, total=total, has_next=self.offset + count < total)


def split_alternatives(value: str) -> list[str]:
    """A value's comma-separated alternatives (``\\,`` is a comma inside a value)."""
    return [part.replace("\\,", ",") for part in _COMMA.split(value)]


def parse_search(items: Sequence[tuple[str, str]], params: dict[str, SearchParam], *, lenient: bool = False,
                 page_size: int = 20, max_page: int = 100, default_sort: str | None = None) -> Search:
    """The search ``items`` (name, value) ask for, against the ``params`` a resource type supports."""
    if len(items) > MAX_PARAMS:
        raise FhirError(400, "too-costly", f"more than {MAX_PARAMS} search parameters")
    search = Search(count=page_size)
    seen: set[str] = set()
    for key, value in items:
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMS:
            if name in seen:
                raise FhirError(400, "invalid", f"{name} is given more than once", expression=[name])
            seen.add(name)
            _result(search, name, value, params, lenient, max_page)
        elif name in params:
            search.filters.append(_filter(params[name], modifier, key, value))
        elif lenient:
            search.ignored.append(key)
        else:
            why = "is not supported by this server" if name in UNSUPPORTED else "is not a search parameter of this " \
                                                                                "resource type here"
            raise FhirError(400, "not-supported", f"search parameter {key} {why} (see the CapabilityStatement; "
                                                  "Prefer: handling=lenient ignores it)", expression=[key])
    if "_sort" not in seen and default_sort:
        search.sort = _sort(default_sort, params, lenient=False)[0]
    return search


def _filter(param: SearchParam, modifier: str, key: str, value: str) -> Filter:
    if modifier and modifier not in MODIFIERS[param.type]:
        raise FhirError(400, "not-supported", f"modifier :{modifier} is not supported on {param.name} "
                                              f"({param.type})", expression=[key])
    alternatives = split_alternatives(value)
    if len(alternatives) > MAX_ALTERNATIVES:
        raise FhirError(400, "too-costly", f"{key} has more than {MAX_ALTERNATIVES} alternatives", expression=[key])
    try:
        tests = tuple(param.test(text, modifier) for text in alternatives)
    except ValueError as exc:
        raise FhirError(400, "invalid", f"{key}={value[:100]}: {exc}", expression=[key]) from None
    return Filter(param, modifier, (key, value), tests)


def _integer(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise FhirError(400, "invalid", f"{name} must be a non-negative integer (got {value[:20]!r})",
                        expression=[name])
    return int(value)


def _result(search: Search, name: str, value: str, params: dict[str, SearchParam], lenient: bool,
            max_page: int) -> None:
    """Apply one result parameter (each given at most once)."""
    if name == "_count":
        count = _integer(name, value)
        search.summary_count = search.summary_count or count == 0
        search.count = min(count, max_page)
    elif name == "_offset":
        search.offset = _integer(name, value)
    elif name == "_total":
        if value not in TOTALS:
            raise FhirError(400, "invalid", f"_total must be one of {', '.join(TOTALS)}", expression=[name])
        search.total = value != "none"
        search.applied.append((name, value))
    elif name == "_summary":
        if value not in ("count", "false"):
            if lenient:
                search.ignored.append(f"_summary={value}")
                return
            raise FhirError(400, "not-supported", f"_summary={value} is not supported (count, false)",
                            expression=[name])
        search.summary_count = search.summary_count or value == "count"
        search.applied.append((name, value))
    elif name == "_sort":
        search.sort, kept = _sort(value, params, lenient)
        if kept:
            search.applied.append((name, kept))
    else:  # _format: content negotiation already honoured it
        search.applied.append((name, value))


def _sort(value: str, params: dict[str, SearchParam], lenient: bool) -> tuple[list[tuple[SearchParam, bool]], str]:
    order, kept = [], []
    for item in value.split(","):
        name = item.removeprefix("-")
        if name in params and item:
            order.append((params[name], item.startswith("-")))
            kept.append(item)
        elif not lenient:
            raise FhirError(400, "not-supported", f"_sort by {item!r}: not a search parameter of this resource "
                                                  "type here", expression=["_sort"])
    return order, ",".join(kept)


def parse_criteria(text: str, params: dict[str, SearchParam], what: str) -> Search:
    """The search of a conditional create or update (``If-None-Exist``, ``ifNoneExist``, ``PUT [type]?...``):
    search parameters only, at least one."""
    items = parse_qsl(text.removeprefix("?"), keep_blank_values=True)
    search = parse_search(items, params)
    if not search.filters or search.applied or len(search.filters) != len(items):
        raise FhirError(400, "invalid", f"{what} {text[:200]!r} must be search parameters (name=value&...)")
    return search


def searchset(url: str, search: Search, matches: list[dict[str, Any]]) -> dict[str, Any]:
    """The page of ``matches`` (already in order) the search asks for, for the type's endpoint ``url``."""
    page = search.page(len(matches))

    def link(relation: str, at: int) -> dict[str, str]:
        paging = [("_count", str(page.count)), ("_offset", str(at))] if not search.summary_count else []
        return {"relation": relation, "url": f"{url}?{urlencode([*search.asked(), *paging])}"}

    links = [link("self", page.offset)]
    if not search.summary_count:
        links.append(link("first", 0))
        if page.offset > 0:
            links.append(link("previous", max(page.offset - page.count, 0)))
        if page.has_next:
            links.append(link("next", page.offset + page.count))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if search.total:
        bundle["total"] = len(matches)
    bundle["link"] = links
    shown = [] if search.summary_count else matches[page.offset:page.offset + page.count]
    if shown:
        bundle["entry"] = [{"fullUrl": f"{url}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in shown]
    return bundle
