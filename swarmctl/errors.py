"""The one error type swarmctl shows a user: a single clear line, exit status 1."""

from __future__ import annotations


class SwarmctlError(Exception):
    """Bad input or an unusable environment; the CLI prints ``swarmctl: <message>`` and exits 1."""


class DiscoveryError(SwarmctlError):
    """The discovery source cannot be read or written right now (may pass: callers retry)."""


#: What a failure that says nothing itself means to a user (``str(TimeoutError())`` is empty).
_WITHOUT_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "no answer in time"),
    (ConnectionResetError, "the connection was reset"),
    (ConnectionRefusedError, "the connection was refused"),
    (ConnectionError, "the connection failed"),
    (OSError, "a network error"),
)


def in_words(exc: BaseException) -> str:
    """Why ``exc`` happened, in words for a user: its own message, or what its kind means (never its class name)."""
    text = str(exc).strip()
    if text:
        return text
    return next((words for kind, words in _WITHOUT_WORDS if isinstance(exc, kind)), "an unexpected failure")
