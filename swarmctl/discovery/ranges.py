"""IP and port ranges in discovery entries: ``10.0.0.[11:100]:2375``, ``192.168.1.2:[2:20]375``.

A range ``[from:to]`` (inclusive) may stand anywhere in an entry, and several
ranges expand to every combination. Expansion is a cartesian product of
string pieces, so ``10.0.[0:255].[0:255]:2375`` (65,536 entries) costs one
join per entry; each result is then checked as an address.
"""

from __future__ import annotations

import itertools
import re

from ..errors import SwarmctlError
from .entry import check_address

_RANGE = re.compile(r"\[([^\[\]:]*):([^\[\]:]*)\]")
#: A range's bound: ASCII digits (``str.isdigit`` takes "²", which ``int`` refuses), short enough for ``int``.
_NUMBER = re.compile(r"[0-9]{1,18}")
#: The most addresses one entry may stand for: 16 times ``10.0.[0:255].[0:255]:2375``.
MAX_ADDRESSES = 1 << 20


def has_range(entry: str) -> bool:
    return "[" in entry and _RANGE.search(entry) is not None


def expand(entry: str) -> list[str]:
    """Every address ``entry`` stands for, checked; ``SwarmctlError`` naming the entry if malformed.

    An entry standing for more than :data:`MAX_ADDRESSES` addresses is refused
    before anything is built (``[0:99999999999]`` would exhaust memory).
    """
    text = entry.strip()
    pieces: list[list[str] | range] = []
    position = 0
    count = 1
    for match in _RANGE.finditer(text):
        pieces.append([text[position : match.start()]])
        low, high = match[1], match[2]
        if not (_NUMBER.fullmatch(low) and _NUMBER.fullmatch(high)):
            raise SwarmctlError(f"invalid entry {entry!r}: range [{low}:{high}] must be two numbers")
        if int(low) > int(high):
            raise SwarmctlError(f"invalid entry {entry!r}: range [{low}:{high}] goes backwards")
        numbers = range(int(low), int(high) + 1)
        count *= len(numbers)
        if count > MAX_ADDRESSES:
            raise SwarmctlError(f"invalid entry {entry!r}: it stands for more than {MAX_ADDRESSES:,} addresses")
        pieces.append(numbers)
        position = match.end()
    pieces.append([text[position:]])
    if _unbalanced(text):
        raise SwarmctlError(f"invalid entry {entry!r}: malformed range (write [from:to])")
    if len(pieces) == 1:
        return [check_address(text, entry)]
    strings = [piece if isinstance(piece, list) else [str(n) for n in piece] for piece in pieces]
    return [check_address("".join(parts), entry) for parts in itertools.product(*strings)]


def _unbalanced(text: str) -> bool:
    """Brackets that are neither a range nor an IPv6 literal ``[::1]:p``."""
    rest = _RANGE.sub("", text)
    if rest.startswith("[") and "]" in rest:  # IPv6 literal
        rest = rest[rest.index("]") + 1 :]
    return "[" in rest or "]" in rest
