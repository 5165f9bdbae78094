"""Bounds on a message's MIME structure, checked in one linear pass before any MIME parser reads it.

Python's ``email`` package and pymap's MIME parser both recurse into nested multiparts (a 1,500-level message
overflows the stack) and take time growing with the square of a header's parameter count (20,000 parameters:
seconds). A real message has a handful of each, so a message beyond these bounds is refused, permanently and
saying why, before it reaches either parser; within them both parsers are fast and linear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

MAX_MULTIPARTS: Final = 64        # multipart containers in one message: bounds the MIME nesting depth too
MAX_PARTS: Final = 1000           # Content-Type fields in one message (about one per part)
MAX_PARAMETERS: Final = 64        # ';'-separated parameters of one Content-Type or Content-Disposition
MAX_FIELD_BYTES: Final = 16 * 1024  # one such field, unfolded
CHUNK: Final = 256 * 1024         # octets searched in one go (see _fields)

# A Content-Type or Content-Disposition field at a line start, with its folded continuation lines. Each
# repetition consumes a line break, so the match is linear.
_FIELD = re.compile(rb"^content-(type|disposition)[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)",
                    re.IGNORECASE | re.MULTILINE)
_MULTIPART = re.compile(rb"^\s*multipart/", re.IGNORECASE)


class StructureRefused(ValueError):
    """The message is beyond the bounds; the message says which, in one sentence."""


def _fields(raw: bytes) -> Iterator[re.Match[bytes]]:
    """The fields, searched a slice of about ``CHUNK`` octets at a time, each slice ending at a line that does not
    continue a folded field: one search over 20 MB of base64 would hold the interpreter lock for 200 ms."""
    start = 0
    while start < len(raw):
        end = len(raw) if start + CHUNK >= len(raw) else _unfolded_line_end(raw, start + CHUNK)
        yield from _FIELD.finditer(raw, start, end)
        start = end


def _unfolded_line_end(raw: bytes, at: int) -> int:
    """The first position after ``at`` that starts a line not folded onto the previous one (or the end)."""
    while True:
        newline = raw.find(b"\n", at)
        if newline < 0 or newline + 1 >= len(raw):
            return len(raw)
        if raw[newline + 1] not in b" \t":
            return newline + 1
        at = newline + 1


def check_structure(raw: bytes) -> None:
    """Raise :class:`StructureRefused` for a message no real mail software writes (see the module doc)."""
    multiparts = parts = 0
    for match in _fields(raw):
        name, value = match.group(1).lower().decode(), match.group(2)
        if len(value) > MAX_FIELD_BYTES:
            raise StructureRefused(f"a Content-{name.title()} field of {len(value)} bytes (at most "
                                   f"{MAX_FIELD_BYTES})")
        if value.count(b";") > MAX_PARAMETERS:
            raise StructureRefused(f"a Content-{name.title()} field with {value.count(b';')} parameters (at most "
                                   f"{MAX_PARAMETERS})")
        if name == "type":
            parts += 1
            multiparts += bool(_MULTIPART.match(value))
    if multiparts > MAX_MULTIPARTS:
        raise StructureRefused(f"{multiparts} multipart containers (at most {MAX_MULTIPARTS}): nested too deep "
                               "or too many")
    if parts > MAX_PARTS:
        raise StructureRefused(f"{parts} MIME parts (at most {MAX_PARTS})")
