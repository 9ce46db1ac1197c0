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


def has_range(entry: str) -> bool:
    return "[" in entry and _RANGE.search(entry) is not None


def expand(entry: str) -> list[str]:
    """Every address ``entry`` stands for, checked; ``SwarmctlError`` naming the entry if malformed."""
    text = entry.strip()
    pieces: list[list[str]] = []
    position = 0
    for match in _RANGE.finditer(text):
        pieces.append([text[position : match.start()]])
        low, high = match[1], match[2]
        if not (low.isdigit() and high.isdigit()):
            raise SwarmctlError(f"invalid entry {entry!r}: range [{low}:{high}] must be two numbers")
        if int(low) > int(high):
            raise SwarmctlError(f"invalid entry {entry!r}: range [{low}:{high}] goes backwards")
        pieces.append([str(n) for n in range(int(low), int(high) + 1)])
        position = match.end()
    pieces.append([text[position:]])
    if _unbalanced(text):
        raise SwarmctlError(f"invalid entry {entry!r}: malformed range (write [from:to])")
    if len(pieces) == 1:
        return [check_address(text, entry)]
    return [check_address("".join(parts), entry) for parts in itertools.product(*pieces)]


def _unbalanced(text: str) -> bool:
    """Brackets that are neither a range nor an IPv6 literal ``[::1]:p``."""
    rest = _RANGE.sub("", text)
    if rest.startswith("[") and "]" in rest:  # IPv6 literal
        rest = rest[rest.index("]") + 1 :]
    return "[" in rest or "]" in rest
