"""Search parameter values as FHIR R4 defines their matching (§3.1.1.4 "Search parameter types"): a value
read from a query string, and what it matches in a resource.

* **token** — ``[system]|[code]`` forms: ``code`` (any system), ``system|code``, ``|code`` (no system),
  ``system|`` (any code of the system); matched against Coding, CodeableConcept, Identifier, ContactPoint,
  code and boolean elements.
* **date** — a prefix (``eq`` ``ne`` ``gt`` ``lt`` ``ge`` ``le`` ``sa`` ``eb`` ``ap``) and a date at its own
  precision: both the parameter and the resource's value are ranges (``2024-03`` is the whole month, a
  Period its start to its end), compared as §3.1.1.4.2 says. A time without a zone is taken as UTC.
* **string** — starts with, ignoring case and accents; ``:contains``; ``:exact`` (as written).
* **reference** — ``Type/id``, ``id`` or an absolute URL ending in ``Type/id``.

A value that cannot be read raises :class:`ValueError` with the reason; the caller answers 400.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
DATE = re.compile(r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
                  r"(?::(?P<second>\d{2})(?P<fraction>\.\d{1,9})?)?(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?")
AP_SHARE = 0.1  # ``ap``: within 10% of the distance between now and the value (the spec's suggestion)
MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)


# -- dates -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Range:
    """A half-open interval of time [low, high)."""

    low: datetime
    high: datetime


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def date_range(text: str) -> Range:
    """The range a FHIR date, dateTime or instant covers at its precision."""
    found = DATE.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone])")
    part = {k: v for k, v in found.groupdict().items() if v is not None}
    try:
        return _range(part)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def _range(part: dict[str, str]) -> Range:
    zone = part.get("zone", "Z")
    offset = timedelta(0) if zone == "Z" else (1 if zone[0] == "+" else -1) * timedelta(
        hours=int(zone[1:3]), minutes=int(zone[4:6]))
    fraction = part.get("fraction", "")
    low = datetime(int(part["year"]), int(part.get("month", 1)), int(part.get("day", 1)), int(part.get("hour", 0)),
                   int(part.get("minute", 0)), int(part.get("second", 0)),
                   int((fraction[1:] + "000000")[:6]) if fraction else 0, tzinfo=UTC) - offset
    if "fraction" in part:
        width = timedelta(seconds=10 ** -(len(fraction) - 1))
    elif "second" in part:
        width = timedelta(seconds=1)
    elif "minute" in part:
        width = timedelta(minutes=1)
    elif "day" in part:
        width = timedelta(days=1)
    else:
        return Range(low, _add_months(low, 1 if "month" in part else 12))
    return Range(low, low + max(width, timedelta(microseconds=1)))


def date_value(node: Any) -> Range | None:
    """The range of a resource's date element (a date, dateTime, instant or Period), if it has one."""
    if isinstance(node, str):
        try:
            return date_range(node)
        except ValueError:
            return None
    if isinstance(node, dict) and ("start" in node or "end" in node):
        start = date_value(node.get("start")) if node.get("start") else None
        end = date_value(node.get("end")) if node.get("end") else None
        return Range(start.low if start else MIN, end.high if end else MAX)
    return None


def date_test(text: str, now: datetime | None = None) -> Callable[[Range], bool]:
    """The test a date parameter value (``[prefix]date``) makes of a resource's range."""
    text = text.replace(" ", "+")  # a zone's '+' that the client did not percent-encode
    prefix, value = (text[:2], text[2:]) if text[:2] in PREFIXES else ("eq", text)
    wanted = date_range(value)
    if prefix == "ap":
        margin = abs((now or datetime.now(UTC)) - wanted.low) * AP_SHARE
        wanted = Range(max(MIN + margin, wanted.low) - margin, min(MAX - margin, wanted.high) + margin)

    def inside(got: Range) -> bool:
        return wanted.low <= got.low and got.high <= wanted.high

    tests: dict[str, Callable[[Range], bool]] = {
        "eq": inside,
        "ne": lambda got: not inside(got),
        "gt": lambda got: got.high > wanted.high,
        "lt": lambda got: got.low < wanted.low,
        "ge": lambda got: got.high > wanted.high or inside(got),
        "le": lambda got: got.low < wanted.low or inside(got),
        "sa": lambda got: got.low >= wanted.high,
        "eb": lambda got: got.high <= wanted.low,
        "ap": lambda got: got.low < wanted.high and wanted.low < got.high,
    }
    return tests[prefix]


# -- tokens ------------------------------------------------------------------------------------------------------
def tokens(node: Any) -> list[tuple[str | None, str]]:
    """The (system, code) pairs an element holds, for token search."""
    if isinstance(node, bool):
        return [(None, "true" if node else "false")]
    if isinstance(node, str):
        return [(None, node)]
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("coding"), list):
        return [pair for coding in node["coding"] for pair in tokens(coding)]
    code = node.get("code", node.get("value"))
    return [(node.get("system"), str(code))] if isinstance(code, str | int | float) else []


def token_test(text: str) -> Callable[[tuple[str | None, str]], bool]:
    """The test a token parameter value makes of a (system, code) pair."""
    if not text:
        raise ValueError("a token needs a code, a system| or system|code")
    if "|" not in text:
        return lambda pair: pair[1] == text
    system, _, code = text.partition("|")
    if not system and not code:
        raise ValueError("'|' alone names neither a system nor a code")
    if not system:
        return lambda pair: pair[0] is None and pair[1] == code
    if not code:
        return lambda pair: pair[0] == system
    return lambda pair: pair == (system, code)


# -- strings and references --------------------------------------------------------------------------------------
def folded(text: str) -> str:
    """Case- and accent-insensitive form (R4 §3.1.1.4.7: string search ignores both)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def strings(node: Any) -> list[str]:
    """The strings an element holds (a HumanName's parts, an Address's lines...), for string search."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    if isinstance(node, dict):
        return [s for key, value in node.items() if key not in ("use", "extension", "period") for s in strings(value)]
    return []


def string_test(text: str, modifier: str) -> Callable[[str], bool]:
    if not text:
        raise ValueError("an empty string matches nothing useful")
    if modifier == "exact":
        return lambda value: value == text
    wanted = folded(text)
    if modifier == "contains":
        return lambda value: wanted in folded(value)
    return lambda value: folded(value).startswith(wanted)


def _tail(reference: str) -> tuple[str | None, str]:
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (None, parts[-1])


def reference_test(text: str) -> Callable[[str], bool]:
    if not text:
        raise ValueError("a reference needs Type/id or id")
    kind, ident = _tail(text)
    return lambda value: _tail(value)[1] == ident and (kind is None or _tail(value)[0] == kind)


def references(node: Any) -> list[str]:
    if isinstance(node, dict) and isinstance(node.get("reference"), str):
        return [node["reference"]]
    return [node] if isinstance(node, str) else []
