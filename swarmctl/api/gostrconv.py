"""Go's ``strconv`` integer parsing, with its error messages, for values dockerd reads from a query.

dockerd answers a ``limit``, a ``since``, an ``exited`` filter or a port it
cannot parse with Go's own words (``strconv.Atoi: parsing "x": invalid
syntax``), so the manager parses them by Go's rules: ASCII digits only (an
optional sign for the signed kinds) and the type's range.
"""

from __future__ import annotations

import re

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")


class GoNumberError(ValueError):
    """What ``strconv`` answers for the text; ``str()`` is its message."""


def parse_int(text: str, *, function: str = "strconv.ParseInt", bits: int = 64, signed: bool = True) -> int:
    """``text`` as Go's ``function`` parses a base-10 integer of ``bits`` bits; :class:`GoNumberError` if not."""
    if (_SIGNED if signed else _UNSIGNED).fullmatch(text) is None:
        raise GoNumberError(f'{function}: parsing "{text}": invalid syntax')
    number = int(text)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= number <= high:
        raise GoNumberError(f'{function}: parsing "{text}": value out of range')
    return number


def atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` (a 64-bit ``int``)."""
    return parse_int(text, function="strconv.Atoi")
