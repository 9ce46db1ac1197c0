"""Durations as Docker Swarm wrote them: ``500ms``, ``10s``, ``1m30s``, ``2h``."""

from __future__ import annotations

import re

from .errors import SwarmctlError

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bare ``0`` is allowed, any other number needs a unit."""
    raw = text.strip()
    if raw in ("0", "0s"):
        return 0.0
    if not raw:
        raise SwarmctlError(f"invalid {what} {text!r}: empty")
    position = 0
    total = 0.0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match[1]) * _UNIT[match[2]]
        position = match.end()
    if position != len(raw) or position == 0:
        raise SwarmctlError(f"invalid {what} {text!r}: expected e.g. 500ms, 10s, 1m30s, 2h")
    return total


def format_duration(seconds: float) -> str:
    """The inverse, for messages: ``90`` -> ``1m30s``."""
    if seconds < 1 and seconds > 0:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or frac or not out:
        out += f"{secs + frac:g}s"
    return out
