"""The one error type swarmctl shows a user: a single clear line, exit status 1."""

from __future__ import annotations


class SwarmctlError(Exception):
    """Bad input or an unusable environment; the CLI prints ``swarmctl: <message>`` and exits 1."""


class DiscoveryError(SwarmctlError):
    """The discovery source cannot be read or written right now (may pass: callers retry)."""
