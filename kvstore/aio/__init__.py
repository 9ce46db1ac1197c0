"""kvstore for asyncio programs: the calls of :class:`kvstore.Store` as coroutines.

::

    import kvstore.aio

    async with kvstore.aio.from_url("sqlite:///tmp/kv.db") as store:
        await store.put("a/b", b"value", ttl=30)
        async for pairs in store.watch_tree("a"):
            ...

The same backend names, URL forms, :class:`~kvstore.Config`, :class:`~kvstore.KVPair`
and errors as the sync API. ``import kvstore`` does not import this package;
it is loaded only when asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .. import url as store_url
from ..errors import (
    BackendNotSupportedError,
    CallNotSupportedError,
    CannotLockError,
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
    NotReachableError,
    PreviousNotSpecifiedError,
)
from ..store import ClientTLS, Config, KVPair
from .registry import backend_names, get_backend, register_backend
from .store import AsyncLock, AsyncStore, AsyncWatch


def new_store(backend: str, addrs: Sequence[str], config: Config | None = None) -> AsyncStore:
    """An async store of the named backend; no I/O happens until its first call."""
    if isinstance(addrs, str):
        raise InvalidArgumentError(f"addrs must be a list of addresses, not the string {addrs!r}")
    if config is not None and not isinstance(config, Config):
        raise InvalidArgumentError(f"config must be a kvstore.Config, not {type(config).__name__}")
    store = get_backend(backend)(list(addrs), config)
    store.backend = backend
    return store


def from_url(url: str, config: Config | None = None) -> AsyncStore:
    """The async store a URL names (``etcd://h1:p1,h2:p2/prefix``, ``sqlite:///abs/kv.db``), as ``kvstore.from_url``."""
    parsed = store_url.parse(url)
    config = config or Config()
    if parsed.prefix:
        config = dataclasses.replace(config, prefix=parsed.prefix)
    return new_store(parsed.backend, parsed.addrs, config)


__all__ = [
    "new_store",
    "from_url",
    "register_backend",
    "backend_names",
    "AsyncStore",
    "AsyncWatch",
    "AsyncLock",
    "KVPair",
    "Config",
    "ClientTLS",
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
