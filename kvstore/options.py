"""Reading backend options (``Config.options``): strings in, checked values out."""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidArgumentError


def positive_number(backend: str, options: Mapping[str, str], name: str, default: float) -> float:
    """``options[name]`` as a positive number (seconds, mostly); ``default`` when absent."""
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{backend} option {name}={raw!r} is not a number") from None
    if not value > 0:
        raise InvalidArgumentError(f"{backend} option {name}={raw!r} must be positive")
    return value
