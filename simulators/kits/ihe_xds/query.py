"""ITI-18 Registry Stored Query: the query's parameters and which entries match them.

FindDocuments (``$XDSDocumentEntryPatientId`` and ``$XDSDocumentEntryStatus`` required; class, type, practice
setting, facility type, event, confidentiality and format codes; creation and service time ranges; author
person) and GetDocuments (by entryUUID or uniqueId). Parameter values are written as in ITI TF-2a 3.18.4.1.2.3:
a quoted string ``'value'`` or a list ``('a','b')``; codes as ``code^^scheme``; times as DTM.

A query the registry cannot run raises :class:`~.ebrs.RegistryError` with ITI TF-3 Table 4.2.4.1-2's code: an
unknown query ``XDSUnknownStoredQuery``, a required parameter missing ``XDSStoredQueryMissingParam``, a
single-valued parameter given several values (or both of GetDocuments' alternatives)
``XDSStoredQueryParamNumber``, anything else ``XDSRegistryError``; a time that is no DTM raises
:class:`~.ebrs.MalformedValue` naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from esante.simulators.kits.ihe_xds.ebrim import RIM, Coded, DocumentEntry
from esante.simulators.kits.ihe_xds.ebrs import (
    FIND_DOCUMENTS,
    GET_DOCUMENTS,
    QUERY,
    STATUSES,
    MalformedValue,
    RegistryError,
)
from esante.simulators.kits.ihe_xds.hl7v2 import parse_dtm

_VALUE = re.compile(r"'((?:[^']|'')*)'")
_CODE_PARAMS = {
    "$XDSDocumentEntryClassCode": "class_code", "$XDSDocumentEntryTypeCode": "type_code",
    "$XDSDocumentEntryPracticeSettingCode": "practice_setting_code",
    "$XDSDocumentEntryHealthcareFacilityTypeCode": "healthcare_facility_type_code",
    "$XDSDocumentEntryFormatCode": "format_code",
}
_LIST_CODE_PARAMS = {"$XDSDocumentEntryEventCodeList": "event_codes",
                     "$XDSDocumentEntryConfidentialityCode": "confidentiality_codes"}
_TIME_PARAMS = {"$XDSDocumentEntryCreationTime": "creation_time", "$XDSDocumentEntryServiceStartTime":
                "service_start_time", "$XDSDocumentEntryServiceStopTime": "service_stop_time"}
MAX_VALUES = 100


@dataclass(slots=True)
class StoredQuery:
    query_id: str
    params: dict[str, list[str]] = field(default_factory=dict)
    return_type: str = "LeafClass"

    def one(self, name: str) -> str | None:
        """The value of a single-valued parameter (None when absent); several are XDSStoredQueryParamNumber."""
        values = self.params.get(name)
        if values and len(values) > 1:
            raise RegistryError("XDSStoredQueryParamNumber", f"{name} takes one value, {len(values)} given", name)
        return values[0] if values else None

    def required(self, name: str) -> str:
        value = self.one(name)
        if value is None:
            raise RegistryError("XDSStoredQueryMissingParam", f"{name} is required", name)
        return value


def values_of(text: str) -> list[str]:
    """``'a'`` → [a]; ``('a','b')`` → [a, b]; a bare number or time stays as written."""
    text = text.strip()
    found = [v.replace("''", "'") for v in _VALUE.findall(text)]
    return found if found else ([text] if text and not text.startswith("(") else [])


def parse_query(request: etree._Element) -> StoredQuery:
    query = request.find(f"{{{RIM}}}AdhocQuery")
    option = request.find(f"{{{QUERY}}}ResponseOption")
    if query is None:
        raise RegistryError("XDSRegistryError", "AdhocQueryRequest without AdhocQuery")
    stored = StoredQuery(query.get("id", ""), return_type=option.get("returnType", "LeafClass")
                         if option is not None else "LeafClass")
    if stored.query_id not in (FIND_DOCUMENTS, GET_DOCUMENTS):
        raise RegistryError("XDSUnknownStoredQuery", f"stored query {stored.query_id!r} is not supported "
                                                     f"(FindDocuments {FIND_DOCUMENTS}, GetDocuments {GET_DOCUMENTS})")
    if stored.return_type not in ("LeafClass", "ObjectRef"):
        raise RegistryError("XDSRegistryError", f"returnType {stored.return_type!r} is neither LeafClass nor ObjectRef")
    for slot in query.iterfind(f"{{{RIM}}}Slot"):
        values = [v for el in slot.iterfind(f"{{{RIM}}}ValueList/{{{RIM}}}Value")
                  for v in values_of(el.text or "")]
        if len(values) > MAX_VALUES:
            raise RegistryError("XDSRegistryError", f"{slot.get('name')}: more than {MAX_VALUES} values")
        stored.params.setdefault(slot.get("name", ""), []).extend(values)
    return stored


def _codes(values: Iterable[str]) -> set[tuple[str, str]]:
    out = set()
    for value in values:
        code, _, scheme = value.partition("^^")
        out.add((code, scheme))
    return out


def _coded_match(wanted: set[tuple[str, str]], codes: Iterable[Coded | None]) -> bool:
    return any(c is not None and ((c.code, c.scheme) in wanted or (c.code, "") in wanted) for c in codes)


def _time(query: StoredQuery, name: str) -> str | None:
    value = query.one(name)
    if value is not None and (parse_dtm(value) is None or not value.isdigit()):
        raise MalformedValue(name, f"{value!r} is not a DTM (YYYY[MM[DD[hh[mm[ss]]]]])")
    return value


class Matcher:
    """FindDocuments' filters, compiled once per query."""

    def __init__(self, query: StoredQuery) -> None:
        self.statuses = set(query.params.get("$XDSDocumentEntryStatus", []))
        if not self.statuses:
            raise RegistryError("XDSStoredQueryMissingParam", "$XDSDocumentEntryStatus is required",
                                "$XDSDocumentEntryStatus")
        unknown = self.statuses - set(STATUSES)
        if unknown:
            raise RegistryError("XDSRegistryError", f"$XDSDocumentEntryStatus {', '.join(sorted(unknown))} is "
                                                    f"none of {', '.join(STATUSES)}", "$XDSDocumentEntryStatus")
        self.codes = {attr: _codes(query.params[p]) for p, attr in {**_CODE_PARAMS, **_LIST_CODE_PARAMS}.items()
                      if p in query.params}
        self.times = {attr: (_time(query, p + "From"), _time(query, p + "To")) for p, attr in _TIME_PARAMS.items()
                      if p + "From" in query.params or p + "To" in query.params}
        self.authors = [a.replace("%", "") for a in query.params.get("$XDSDocumentEntryAuthorPerson", [])]

    def __call__(self, entry: DocumentEntry) -> bool:
        if entry.status not in self.statuses:
            return False
        for attr, wanted in self.codes.items():
            value = getattr(entry, attr)
            if not _coded_match(wanted, value if isinstance(value, tuple) else (value,)):
                return False
        for attr, (low, high) in self.times.items():
            moment = getattr(entry, attr) or ""
            if not moment or (low and moment < low) or (high and moment >= high):
                return False
        return not self.authors or any(a in (author.person or "") for author in entry.authors for a in self.authors)
