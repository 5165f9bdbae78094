"""The HL7 v2 data types XDS metadata carries as strings: CX (patient ids), XCN (persons), XON (organisations),
and DTM (times, the form HL7v3's TS shares).

IHE ITI TF-3 4.2.3.1.7 restricts them: a CX is ``id^^^&oid&ISO`` (optionally ``^type``), an XCN carries an
id with its assigning authority in XCN.9, an XON carries an organisation id in XON.10. The CI-SIS fixes
the authorities: INS OIDs for patients, 1.2.250.1.71.4.2.1 for professionals (``IDNPS``),
1.2.250.1.71.4.2.2 for structures (``IDNST``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

#: DTM as XDS metadata and HL7v3 TS write it: YYYY[MM[DD[hh[mm[ss[.f]]]]]] and an optional UTC offset.
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


@dataclass(frozen=True, slots=True)
class Cx:
    """A patient identifier: ``id`` assigned by the authority ``oid``; ``problem`` says why it is not a CX."""

    id: str
    oid: str
    type_code: str = ""
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Xcn:
    """A person: id, family and given names, and the assigning authority OID of the id."""

    id: str
    family: str
    given: str
    oid: str
    id_type: str


@dataclass(frozen=True, slots=True)
class Xon:
    """An organisation: its name, the OID of its identifier's authority, its identifier."""

    name: str
    oid: str
    id_type: str
    id: str


def _components(value: str, count: int) -> list[str]:
    parts = value.split("^")
    return parts + [""] * (count - len(parts))


def _authority_oid(hd: str) -> str:
    """The universal id of an HD written ``&oid&ISO`` (namespace empty), empty when the form differs."""
    pieces = hd.split("&")
    if len(pieces) == 3 and pieces[2] == "ISO":
        return pieces[1]
    return ""


def parse_cx(value: str) -> Cx:
    parts = _components(value, 5)
    oid = _authority_oid(parts[3])
    problem = ""
    if not parts[0]:
        problem = "CX.1 (the identifier) is empty"
    elif parts[1] or parts[2]:
        problem = "CX.2 and CX.3 must be empty"
    elif not oid:
        problem = "CX.4 must be the assigning authority written &OID&ISO"
    return Cx(parts[0], oid, parts[4], problem)


def format_cx(identifier: str, oid: str, type_code: str = "NH") -> str:
    return f"{identifier}^^^&{oid}&ISO^{type_code}"


def parse_xcn(value: str) -> Xcn:
    parts = _components(value, 13)
    return Xcn(parts[0], parts[1], parts[2], _authority_oid(parts[8]), parts[12])


def format_xcn(identifier: str, family: str, given: str, oid: str, id_type: str = "IDNPS") -> str:
    return f"{identifier}^{family}^{given}^^^^^^&{oid}&ISO^D^^^{id_type}"


def parse_xon(value: str) -> Xon:
    parts = _components(value, 10)
    return Xon(parts[0], _authority_oid(parts[5]), parts[6], parts[9])


def format_xon(name: str, oid: str, identifier: str, id_type: str = "IDNST") -> str:
    return f"{name}^^^^^&{oid}&ISO^{id_type}^^^{identifier}"


def parse_dtm(value: str | None) -> datetime | None:
    """A DTM as an aware datetime (UTC when no offset is given; missing parts are the earliest), or None when
    it is no DTM or names no real moment (``20190230``): reading one never raises."""
    found = _DTM.match((value or "").strip())
    if found is None:
        return None
    *parts, offset = found.groups()  # fixed-width groups fill in order: no part follows a missing one
    numbers = [int(p) if p is not None else default for p, default in zip(parts, (0, 1, 1, 0, 0, 0), strict=True)]
    try:
        moment = datetime(*numbers, tzinfo=UTC)  # type: ignore[misc]
        return moment if offset is None else moment.replace(tzinfo=datetime.strptime(offset, "%z").tzinfo)
    except ValueError:
        return None
