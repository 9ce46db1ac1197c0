"""The one error type swarmctl shows a user: a single clear line, exit status 1."""

from __future__ import annotations

import os


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
    connect = _connect_failure(exc)
    if connect:
        return connect
    text = str(exc).strip()
    if text:
        return text
    return next((words for kind, words in _WITHOUT_WORDS if isinstance(exc, kind)), "an unexpected failure")


def _connect_failure(exc: BaseException) -> str:
    """A failed connection to ``host:port`` (aiohttp's connector error) as ``cannot connect to H:P: <reason>``.

    aiohttp words it ``Cannot connect to host H:P ssl:default [Connect call
    failed ('H', P)]``, its own settings and a tuple included; what a user
    needs is the address and the system's reason. Read by its attributes
    (``host``, ``port``, ``os_error``), so this ground module needs no aiohttp.
    """
    reason = connect_reason(exc)
    if not reason:
        return ""
    host, port = getattr(exc, "host", ""), getattr(exc, "port", 0)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"cannot connect to {address}: {reason}"


def connect_reason(exc: BaseException) -> str:
    """Why a connection could not be made (``connection refused``), for a message that names the address itself.

    Empty for anything but a failed connection (see :func:`in_words`).
    """
    host, port, cause = getattr(exc, "host", None), getattr(exc, "port", None), getattr(exc, "os_error", None)
    if not isinstance(host, str) or not isinstance(port, int) or not isinstance(cause, OSError):
        return ""
    if isinstance(cause.errno, int) and cause.errno > 0:
        reason = os.strerror(cause.errno)
    else:
        reason = (cause.strerror or str(cause)).strip() or in_words(cause)
    return f"{reason[:1].lower()}{reason[1:]}"
