"""What a finding points at: the exchanges its evidence names, the values it quotes (to highlight them in those
exchanges), and, when its message says so, what was expected and what was observed.

A finding here is a check that did not pass (:class:`~esante.reports.model.CheckResult`). Checks say what was
wrong in words ("Sexe 'M', expected 'F'", "the teleservice returned INS … ; the candidate stored …"); this module
reads those words, so every report highlights the same things:

* the values a message quotes (``'M'``), the identifiers it names (``code_challenge``, ``ContexteLPS``,
  ``wsa:Action``, a field followed by its value) and the distinctive numbers (an INS, an OID, a date);
* expected and observed, from the phrasings the test kits use (``expected X, got Y``, ``Y, expected X``,
  ``returned X; the candidate stored Y``, ``Y instead of X``).

Nothing is guessed from outside the message: a message that names nothing highlights nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from esante.reports.model import CaseResult, CheckResult, ExchangeSummary, Verdict

#: Checks with these verdicts are findings (a passed check is not).
FINDING_VERDICTS = (Verdict.FAILED, Verdict.ERROR, Verdict.INCONCLUSIVE)
MAX_TERMS = 12
MIN_TERM = 2

_QUOTED = re.compile(r"'([^'\n]{1,200})'|\"([^\"\n]{1,200})\"|«\s?([^»\n]{1,200}?)\s?»|`([^`\n]{1,200})`")
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+=-]*[A-Za-z0-9_]")
_NAMED = re.compile(r"([A-Za-z_][\w:.-]*) (?=['\"«])")  # a field followed by its value: Sexe 'M'
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")
_HEADER = re.compile(r"^[A-Z][a-z]+(?:-[A-Z][a-z]+)+$")  # an HTTP header's name: Content-Type
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T")  # when an exchange was received (``where()``), not what it holds
_END = r"(?=\s\((?:outcome|note|see)\b|[;\n]|$)"
_VALUE = r"'[^'\n]*'|\"[^\"\n]*\"|[^\s,;:]+"  # one quoted value, or one word
_PHRASES = (
    re.compile(r"expected (?P<expected>[^;\n]+?),? (?:but )?(?:got|observed|found|received|saw) "
               r"(?P<observed>[^;\n]+?)" + _END, re.IGNORECASE),
    re.compile(rf"(?P<observed>{_VALUE}), expected (?P<expected>'[^'\n]*'|\"[^\"\n]*\"|[^:;,\n]+)", re.IGNORECASE),
    re.compile(r"returned (?P<expected>[^;\n]+); the (?:candidate|software) (?:stored|reported|kept|keeps|shows) "
               r"(?P<observed>.+?)" + _END, re.IGNORECASE),
    re.compile(rf"(?P<observed>{_VALUE}) instead of (?P<expected>{_VALUE})", re.IGNORECASE),
)
#: Words of the kits' phrasings, never field names: "reported 'found'" does not name a field "reported".
_PHRASE_WORDS = {"expected", "reported", "got", "observed", "found", "received", "answered", "returned", "sent",
                 "stored", "kept", "with", "and", "or", "not", "is", "was", "as", "of", "the", "a", "an", "None",
                 "True", "False", "null"}


@dataclass(frozen=True, slots=True)
class ExpectedObserved:
    expected: str
    observed: str


@dataclass(slots=True)
class FindingView:
    """One finding of a case, with what it points at."""

    number: int                     # 1-based position among the case's checks (anchors: ``case-3-check-2``)
    check: CheckResult
    exchanges: list[ExchangeSummary] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    expected_observed: ExpectedObserved | None = None


def expected_observed(message: str) -> ExpectedObserved | None:
    """Expected and observed, when the message says both in one of the kits' phrasings."""
    for phrase in _PHRASES:
        match = phrase.search(message)
        if match:
            expected, observed = (_clean(match.group(name)) for name in ("expected", "observed"))
            if expected and observed:
                return ExpectedObserved(expected, observed)
    return None


def _clean(value: str) -> str:
    return value.strip().rstrip(".,;:").strip()


def terms(message: str) -> list[str]:
    """The values and names a message quotes, longest first, that are worth highlighting in an exchange."""
    found: list[str] = []
    for match in _QUOTED.finditer(message):
        found.append(next(g for g in match.groups() if g is not None))
    found += [name for name in _NAMED.findall(message) if name not in _PHRASE_WORDS]
    found += [token for token in _TOKEN.findall(_QUOTED.sub(" ", message)) if _distinctive(token)]
    pair = expected_observed(message)
    if pair:
        found += [value.strip("'\"") for value in (pair.expected, pair.observed) if " " not in value.strip()]
    unique = [t.strip() for t in found if len(t.strip()) >= MIN_TERM and t.strip() not in _PHRASE_WORDS]
    return sorted(dict.fromkeys(unique), key=len, reverse=True)[:MAX_TERMS]


def _distinctive(token: str) -> bool:
    """A token that names something precise: a number or code with digits, a snake_case or CamelCase name,
    a prefixed XML name (``wsa:Action``)."""
    if _TIMESTAMP.match(token):
        return False
    if any(c.isdigit() for c in token):
        return len(token) >= 4  # an INS, an OID, a code; not "SOAP 1.2"'s version nor "call 2"
    return "_" in token or bool(_CAMEL.search(token) or _HEADER.match(token)) or \
        (":" in token and not token.endswith(":"))


def _pattern(found: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = [re.escape(t) for t in sorted(found, key=len, reverse=True) if t]
    if not alternatives:
        return None
    return re.compile(r"(?<![\w.])(?:" + "|".join(alternatives) + r")(?!\w|\.\w)", re.IGNORECASE)


def segments(text: str, found: Iterable[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (chunk, highlighted) pieces: each whole occurrence of a term is highlighted, whatever its
    case (a header named ``Content-Type`` is journaled as ``content-type``)."""
    pattern = _pattern(found)
    if pattern is None or not text:
        return [(text, False)] if text else []
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append((text[position:match.start()], False))
        pieces.append((match.group(0), True))
        position = match.end()
    if position < len(text):
        pieces.append((text[position:], False))
    return pieces


def mentions(text: str, found: Iterable[str]) -> bool:
    pattern = _pattern(found)
    return bool(pattern and pattern.search(text))


def exchange_of(case: CaseResult, seq: int) -> ExchangeSummary | None:
    """The exchange one of whose evidence records is ``seq`` (its request or its response)."""
    return next((e for e in case.exchanges if seq in (e.request_seq, e.response_seq)), None)


def findings(case: CaseResult) -> list[FindingView]:
    """The case's checks that did not pass, each with the exchanges it cites and what to highlight in them."""
    views = []
    for number, check in enumerate(case.checks, 1):
        if check.verdict not in FINDING_VERDICTS:
            continue
        cited = [e for ref in check.evidence if (e := exchange_of(case, ref.seq)) is not None]
        views.append(FindingView(number, check, list({e.id: e for e in cited}.values()), terms(check.message),
                                 expected_observed(check.message)))
    return views


def exchange_terms(case: CaseResult) -> dict[str, list[str]]:
    """Exchange id → the terms of every finding citing it: what its viewer highlights."""
    marked: dict[str, list[str]] = {}
    for view in findings(case):
        for exchange in view.exchanges:
            marked[exchange.id] = list(dict.fromkeys([*marked.get(exchange.id, []), *view.terms]))
    return marked


@dataclass(frozen=True, slots=True)
class Gap:
    """Lines of an excerpt left out of a window."""

    lines: int


def window(text: str, found: Iterable[str], context: int = 3, limit: int = 40, head: int = 12) -> list[str | Gap]:
    """The lines of ``text`` worth printing: those holding a term, with ``context`` lines around them (at most
    ``limit`` lines), or the first ``head`` lines when no term occurs; left-out runs are :class:`Gap`\\ s."""
    lines = text.splitlines() or [""]
    pattern = _pattern(found)
    hits = [i for i, line in enumerate(lines) if pattern is not None and pattern.search(line)]
    if hits:
        kept = sorted({j for i in hits for j in range(max(0, i - context), min(len(lines), i + context + 1))})[:limit]
    else:
        kept = list(range(min(head, len(lines))))
    shown: list[str | Gap] = []
    previous = -1
    for index in kept:
        if index > previous + 1:
            shown.append(Gap(index - previous - 1))
        shown.append(lines[index])
        previous = index
    if previous < len(lines) - 1:
        shown.append(Gap(len(lines) - 1 - previous))
    return shown
