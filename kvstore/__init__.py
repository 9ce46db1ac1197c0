"""kvstore: one key/value API over etcd, Consul, ZooKeeper and embedded stores.

A Python counterpart of Docker's libkv::

    import kvstore
    with kvstore.from_url("sqlite:///tmp/kv.db") as store:
        store.put("a/b", b"value", ttl=30)
        for pair in store.watch_tree("a"):
            ...

Importing this package loads no store client library; a backend's client is
imported when that backend is first used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from . import url as _url
from ._version import __version__
from .errors import (
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
from .registry import backend_names, register_backend
from .store import ClientTLS, Config, KVPair, Lock, Store, Watch


def new_store(backend: str, addrs: Sequence[str], config: Config | None = None) -> Store:
    """Open a store of the named backend (``etcd``, ``consul``, ``zk``, ``sqlite``, ``memory``...)."""
    from .registry import get_backend

    if isinstance(addrs, str):
        raise InvalidArgumentError(f"addrs must be a list of addresses, not the string {addrs!r}")
    if config is not None and not isinstance(config, Config):
        raise InvalidArgumentError(f"config must be a kvstore.Config, not {type(config).__name__}")
    factory = get_backend(backend)
    store = factory(list(addrs), config)
    store.backend = backend
    return store


def from_url(url: str, config: Config | None = None) -> Store:
    """Open the store a URL names: ``etcd://h1:p1,h2:p2/prefix``, ``sqlite:///abs/kv.db``.

    A prefix in the URL takes the place of ``config.prefix``.
    """
    parsed = _url.parse(url)
    config = config or Config()
    if parsed.prefix:
        config = dataclasses.replace(config, prefix=parsed.prefix)
    return new_store(parsed.backend, parsed.addrs, config)


__all__ = [
    "__version__",
    "new_store",
    "from_url",
    "register_backend",
    "backend_names",
    "Store",
    "KVPair",
    "Config",
    "ClientTLS",
    "Watch",
    "Lock",
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
