"""Durations as Docker Swarm wrote them: ``500ms``, ``10s``, ``1m30s``, ``2h``.

The syntax is Go's ``time.ParseDuration`` without a sign (no flag takes a
negative duration): decimal numbers, each with a unit (``ns``, ``us``/``µs``,
``ms``, ``s``, ``m``, ``h``), a bare ``0`` allowed. As in Go, a duration is a
whole number of nanoseconds up to 2^63 - 1 (about 292 years); anything larger
is refused here rather than becoming a float too large for a timer (a wait of
``1e30h`` would fail with ``OverflowError`` deep inside a thread).

Parsing adds whole nanoseconds, so ``parse_duration(format_duration(s)) == s``
for any ``s`` that is a whole number of nanoseconds.
"""

from __future__ import annotations

import math
import re

from .errors import SwarmctlError

# ASCII digits only: \d would take other scripts' digits, which Go refuses.
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_NANOS["h"] = 60 * _NANOS["m"]
#: Go's largest Duration, in nanoseconds.
MAX_NANOS = 2**63 - 1
#: More digits than this in a whole part overflow MAX_NANOS whatever the unit.
_MAX_WHOLE_DIGITS = len(str(MAX_NANOS))
#: Fraction digits past nanosecond precision of the largest unit (hours) change nothing.
_MAX_FRACTION_DIGITS = 15


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bare ``0`` is allowed, any other number needs a unit.

    Raises :class:`SwarmctlError` (never anything else) naming ``what`` when
    ``text`` is not a duration or is longer than Go's largest.
    """
    raw = text.strip()
    if raw in ("0", "0s"):
        return 0.0
    if not raw:
        raise SwarmctlError(f"invalid {what} {text!r}: empty")
    position = 0
    total = 0
    for match in _PART.finditer(raw):
        whole, fraction, unit = match[1], match[2], match[3]
        if match.start() != position or not (whole or fraction):
            break
        whole = whole.lstrip("0")
        if len(whole) > _MAX_WHOLE_DIGITS:
            raise SwarmctlError(f"invalid {what} {text!r}: longer than the largest duration (about 292 years)")
        total += int(whole or "0") * _NANOS[unit]
        if fraction:
            digits = fraction[:_MAX_FRACTION_DIGITS]
            total += int(digits) * _NANOS[unit] // 10 ** len(digits)
        position = match.end()
    if position != len(raw) or position == 0:
        raise SwarmctlError(f"invalid {what} {text!r}: expected e.g. 500ms, 10s, 1m30s, 2h")
    if total > MAX_NANOS:
        raise SwarmctlError(f"invalid {what} {text!r}: longer than the largest duration (about 292 years)")
    return total / 1e9


def format_duration(seconds: float) -> str:
    """The inverse, for messages: ``90`` -> ``1m30s``, ``0.5`` -> ``500ms``, ``3600`` -> ``1h``.

    Go's notation, with the zero parts left out (``1h``, not ``1h0m0s``), to
    the nanosecond.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    nanos = round(seconds * 1e9)
    if nanos < 0:
        return f"-{format_duration(-seconds)}"
    if nanos == 0:
        return "0s"
    if nanos < _NANOS["s"]:
        for unit in ("ms", "µs", "ns"):
            if nanos >= _NANOS[unit]:
                return _decimal(nanos, _NANOS[unit]) + unit
    hours, rest = divmod(nanos, _NANOS["h"])
    minutes, rest = divmod(rest, _NANOS["m"])
    out = f"{hours}h" if hours else ""
    if minutes:
        out += f"{minutes}m"
    if rest:
        out += _decimal(rest, _NANOS["s"]) + "s"
    return out


def _decimal(nanos: int, unit: int) -> str:
    """``nanos`` in ``unit``s, exactly: whole part, then the fraction without trailing zeros."""
    whole, part = divmod(nanos, unit)
    if not part:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{part:0{width}d}".rstrip("0")
