"""Why a container cannot be placed."""

from __future__ import annotations


class NoNodeError(Exception):
    """No node can take the container; the message says which requirement no node meets.

    ``reason`` names it in one word for ``/metrics`` (the filter's name, or
    the resource that is short).
    """

    def __init__(self, message: str, *, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


class NoResourcesError(NoNodeError):
    """Nodes pass the filters, but none has the CPUs or memory the container reserves free."""
