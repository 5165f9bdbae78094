"""Check keys and name normalisation for French health identifiers.

Pure functions, no I/O: the data set validates itself with them, and the simulators use them to reject a
malformed request the way the real services do (a wrong NIR key, a mistyped RPPS, a name with odd
apostrophes or accents).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "NIR_SHAPE",
    "is_valid_finess",
    "is_valid_luhn",
    "is_valid_nir",
    "is_valid_rpps",
    "luhn_check_digit",
    "nir_key",
    "normalise_name",
]

#: A NIR without its key: sex(1) year(2) month(2) department(2, or 2A/2B) commune(3) order(3) = 13 chars.
NIR_SHAPE = re.compile(r"^\d{5}(?:\d{2}|2[AB])\d{6}$")

# Corsica's departments carry a letter; the key rule first swaps them for the numbers they had before 1976
# minus the split (2A -> 19, 2B -> 18), which is the same as subtracting 1 000 000 or 2 000 000.
_CORSICA_SUBSTITUTES = {"2A": "19", "2B": "18"}


def _nir_as_number(nir13: str) -> int:
    """Turn a 13-char NIR into the integer the key is computed on, refusing anything else."""
    if not isinstance(nir13, str):
        raise ValueError(f"NIR must be a string, got {type(nir13).__name__}")
    nir = nir13.upper()
    if not NIR_SHAPE.match(nir):
        raise ValueError(f"malformed NIR {nir13!r}: expected 13 chars, digits except a 2A/2B department")
    department = nir[5:7]
    digits = nir[:5] + _CORSICA_SUBSTITUTES.get(department, department) + nir[7:]
    return int(digits)


def nir_key(nir13: str) -> str:
    """Return the two-digit key of a 13-char NIR: 97 - (number mod 97), zero-padded.

    Corsican departments are replaced first (2A -> 19, 2B -> 18), as the INSi service does.
    Raises ValueError on a malformed NIR so that callers never compare against a bogus key.
    """
    return f"{97 - _nir_as_number(nir13) % 97:02d}"


def is_valid_nir(nir13: str, key: str) -> bool:
    """Tell whether ``key`` is the right key for ``nir13``; malformed input is simply not valid."""
    if not isinstance(key, str) or not re.fullmatch(r"\d{2}", key):
        return False
    try:
        return nir_key(nir13) == key
    except ValueError:
        return False


def _luhn_sum(digits: str, double_first: bool) -> int:
    """Sum the digits right to left, doubling every other one (starting with the rightmost if asked)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if (position % 2 == 0) == double_first:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def luhn_check_digit(digits: str) -> str:
    """Return the Luhn digit to append to ``digits`` (used by RPPS, FINESS and SIRET numbers)."""
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"Luhn input must be a non-empty string of digits, got {digits!r}")
    return str((10 - _luhn_sum(digits, double_first=True) % 10) % 10)


def is_valid_luhn(number: str) -> bool:
    """Tell whether ``number`` (digits only, check digit last) passes the Luhn test."""
    if not isinstance(number, str) or len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return _luhn_sum(number, double_first=False) % 10 == 0


def is_valid_rpps(rpps11: str) -> bool:
    """Tell whether ``rpps11`` is an 11-digit RPPS number whose last digit is its Luhn key."""
    return isinstance(rpps11, str) and len(rpps11) == 11 and is_valid_luhn(rpps11)


def is_valid_finess(finess9: str) -> bool:
    """Tell whether ``finess9`` is a 9-digit FINESS number whose last digit is its Luhn key."""
    return isinstance(finess9, str) and len(finess9) == 9 and is_valid_luhn(finess9)


_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE"})
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'"})
_MAX_PASSES = 4


def _is_mark(char: str) -> bool:
    """True for combining marks, whatever their combining class (some Mn marks have class 0)."""
    return unicodedata.combining(char) != 0 or unicodedata.category(char) in ("Mn", "Me")


def _normalise_pass(text: str) -> str:
    """One pass of the normalisation; several may be needed because upper-casing can undo NFKD."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    stripped = "".join(char for char in decomposed if not _is_mark(char))
    upper = stripped.translate(_LIGATURES).upper().translate(_APOSTROPHES)
    return " ".join(upper.split())


@lru_cache(maxsize=8192)  # pure, and the same names come back on every search
def normalise_name(text: str) -> str:
    """Normalise a name for matching, as the INSi simulator compares traits.

    NFKD then drop combining marks (É -> E, Ç -> C), Œ -> OE and Æ -> AE, upper case, typographic
    apostrophes -> ASCII ', whitespace runs collapsed to one space, ends stripped. Hyphens and apostrophes
    are kept: they are part of a civil-status name. The passes repeat until stable, so the function is
    idempotent even for the rare characters whose upper case decomposes again.
    """
    current = text
    for _ in range(_MAX_PASSES):
        following = _normalise_pass(current)
        if following == current:
            break
        current = following
    return current
