"""Key and argument normalisation shared by every backend.

Callers may write ``a/b``, ``/a/b`` or ``a/b/``: all name one key. Doing this
once, before a backend sees the key, is what makes ``list("a")`` never
return ``ab/c`` on any backend.
"""

from __future__ import annotations

from .errors import InvalidArgumentError


def normalize(key: str, *, allow_root: bool = False) -> str:
    """Return ``key`` without leading, trailing or doubled slashes.

    ``allow_root`` admits the empty key, which means "the whole store (below
    its prefix)" for the directory calls ``list``, ``watch_tree`` and
    ``delete_tree``; a single key can never be empty.
    """
    if not isinstance(key, str):
        raise InvalidArgumentError(f"key must be a str, not {type(key).__name__}")
    parts = [part for part in key.split("/") if part]
    if not parts and not allow_root:
        raise InvalidArgumentError(f"empty key: {key!r}")
    for part in parts:
        if part in (".", ".."):
            raise InvalidArgumentError(f"key {key!r}: segment {part!r} is not allowed")
    return "/".join(parts)


def join(prefix: str, key: str) -> str:
    """``prefix`` and ``key`` (both normalised) joined by one slash."""
    if not prefix:
        return key
    if not key:
        return prefix
    return f"{prefix}/{key}"


def strip_prefix(prefix: str, full_key: str) -> str:
    """The inverse of :func:`join`: the key as the caller named it."""
    if not prefix:
        return full_key
    if full_key == prefix:
        return ""
    return full_key[len(prefix) + 1 :]


def is_below(directory: str, key: str) -> bool:
    """True when ``key`` lies strictly below ``directory`` (segment-wise)."""
    if not directory:
        return bool(key)
    return key.startswith(directory + "/")


def check_value(value: object) -> bytes:
    """Values are bytes; ``bytearray`` and ``memoryview`` are taken as bytes too."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidArgumentError(f"value must be bytes, not {type(value).__name__} (encode text first)")


def check_ttl(ttl: float | None) -> float | None:
    """A TTL is a positive number of seconds, or None for "forever"."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise InvalidArgumentError(f"ttl must be a number of seconds, not {ttl!r}")
    if not ttl > 0:
        raise InvalidArgumentError(f"ttl must be positive, not {ttl!r}")
    return float(ttl)
