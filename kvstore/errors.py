"""The errors of kvstore.

Every failure a caller can meet is a subclass of :class:`KVStoreError`, so
one ``except kvstore.KVStoreError`` is enough; no client library's own
exception (gRPC, kazoo, requests, sqlite3, OSError) leaves a backend.
"""

from __future__ import annotations


class KVStoreError(Exception):
    """Base class of every kvstore error."""


class KeyNotFoundError(KVStoreError, KeyError):
    """The key (or, for ``list``, the directory) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose.
        return str(self.args[0]) if self.args else "key not found"


class KeyModifiedError(KVStoreError):
    """``atomic_put``/``atomic_delete`` lost the race: the key changed since ``previous``."""


class KeyExistsError(KVStoreError):
    """``atomic_put`` with ``previous=None`` found the key already there."""


class PreviousNotSpecifiedError(KVStoreError):
    """``atomic_delete`` needs the pair it read before (``previous``)."""


class CallNotSupportedError(KVStoreError):
    """The backend cannot do this call at all."""


class BackendNotSupportedError(KVStoreError):
    """No backend of that name is registered."""


class NotReachableError(KVStoreError):
    """The store cannot be reached (down, refused, TLS failure, timeout)."""


class CannotLockError(KVStoreError):
    """``Lock.acquire`` gave up: the timeout passed while someone else held it."""


class InvalidArgumentError(KVStoreError, ValueError):
    """A malformed call: empty key, value that is not bytes, bad TTL, bad URL or address."""


__all__ = [
    "KVStoreError",
    "KeyNotFoundError",
    "KeyModifiedError",
    "KeyExistsError",
    "PreviousNotSpecifiedError",
    "CallNotSupportedError",
    "BackendNotSupportedError",
    "NotReachableError",
    "CannotLockError",
    "InvalidArgumentError",
]
