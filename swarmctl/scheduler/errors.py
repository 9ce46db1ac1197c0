"""Why a container cannot be placed."""

from __future__ import annotations


class NoNodeError(Exception):
    """No node can take the container; the message says which requirement no node meets."""


class NoResourcesError(NoNodeError):
    """Nodes pass the filters, but none has the CPUs or memory the container reserves free."""
