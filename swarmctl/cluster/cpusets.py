"""CPU sets as dockerd writes them (``--cpuset-cpus 0-2,4``): read into CPU numbers, and written back.

The scheduler counts a container pinned to CPUs as reserving those CPUs
whole, and needs the numbers, not the text: which CPUs a node has, which
are already pinned. The syntax (and the error dockerd gives for a value it
cannot read) is dockerd's, so the manager refuses what one engine would.
"""

from __future__ import annotations

from collections.abc import Iterable

#: dockerd's own limit: a CPU number above this is not a CPU any kernel has.
_MAX_CPU = 8192


class CpusetError(ValueError):
    """A cpuset dockerd would not read; the message is dockerd's."""


def parse_cpuset(text: str) -> frozenset[int]:
    """The CPU numbers of ``0-2,4`` (empty for ""); :class:`CpusetError` as dockerd words it."""
    found: set[int] = set()
    if not text:
        return frozenset()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        low = _number(first)
        high = _number(last) if sep else low
        if low < 0 or high < low or high > _MAX_CPU:
            raise CpusetError(f"Invalid value {text} for cpuset cpus: invalid format: {text}")
        found.update(range(low, high + 1))
    return frozenset(found)


def _number(text: str) -> int:
    """A CPU number written in ASCII digits; -1 for anything else (dockerd reads no signs nor spaces)."""
    return int(text) if text.isascii() and text.isdigit() else -1


def lenient_cpuset(text: object) -> frozenset[int]:
    """:func:`parse_cpuset` of what an engine reported (already checked by dockerd): empty if unreadable."""
    try:
        return parse_cpuset(str(text or ""))
    except CpusetError:
        return frozenset()


def cpuset_text(cpus: Iterable[int]) -> str:
    """CPU numbers written as dockerd writes them: ``{0, 1, 2, 4}`` -> ``0-2,4``."""
    ordered = sorted(set(cpus))
    runs: list[tuple[int, int]] = []
    for cpu in ordered:
        if runs and runs[-1][1] == cpu - 1:
            runs[-1] = (runs[-1][0], cpu)
        else:
            runs.append((cpu, cpu))
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)
