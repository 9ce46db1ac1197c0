"""Finding an async backend by name: the built-ins, ``kvstore.aio.backends`` entry points, run-time registrations.

Kept apart from :mod:`kvstore.registry` because an async backend is another
class (an :class:`~kvstore.aio.AsyncStore`), but named the same way, so one
URL opens a store on either face.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from ..errors import BackendNotSupportedError
from ..store import Config
from .store import AsyncStore

AsyncStoreFactory = Callable[[Sequence[str], Config | None], AsyncStore]

ENTRY_POINT_GROUP = "kvstore.aio.backends"

#: name -> (import path, the extra that installs its client library)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "memory": ("kvstore.aio.memory:AsyncMemoryStore", None),
    "sqlite": ("kvstore.aio.sqlite:AsyncSQLiteStore", None),
    "etcd": ("kvstore.aio.etcd:AsyncEtcdStore", "etcd"),
    "zk": ("kvstore.aio.zookeeper:AsyncZooKeeperStore", "zk"),
}

_registered: dict[str, AsyncStoreFactory] = {}


def register_backend(name: str, factory: AsyncStoreFactory) -> None:
    """Make ``kvstore.aio.new_store(name, ...)`` call ``factory(addrs, config)``."""
    _registered[name] = factory


def backend_names() -> list[str]:
    """Every name ``kvstore.aio.new_store`` accepts right now."""
    from importlib import metadata  # only here: scanning installed packages costs ~20 ms

    names = set(_BUILTIN) | set(_registered)
    names.update(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _load(target: str, name: str, extra: str | None) -> AsyncStoreFactory:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (pip install 'kvstore[{extra}]')" if extra else ""
        raise BackendNotSupportedError(f"async backend {name!r} cannot load its client library: {exc}{hint}") from exc
    factory: AsyncStoreFactory = getattr(module, attr)
    return factory


def get_backend(name: str) -> AsyncStoreFactory:
    """The factory for ``name``; ``BackendNotSupportedError`` if there is none."""
    if name in _registered:
        return _registered[name]
    if name in _BUILTIN:
        target, extra = _BUILTIN[name]
        factory = _load(target, name, extra)
    else:
        from importlib import metadata

        points = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not points:
            known = ", ".join(backend_names())
            raise BackendNotSupportedError(f"unknown async backend {name!r} (known: {known})")
        factory = _load(points[0].value, name, None)
    return _registered.setdefault(name, factory)
