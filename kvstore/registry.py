"""Finding a backend by name.

Built-in backends are named here and imported only when first asked for, so
``import kvstore`` pulls in no client library. Other packages add backends
through the ``kvstore.backends`` entry-point group (``name = "pkg.mod:Class"``)
or at run time with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence

from .errors import BackendNotSupportedError
from .store import Config, Store

StoreFactory = Callable[[Sequence[str], Config | None], Store]

ENTRY_POINT_GROUP = "kvstore.backends"

#: name -> (import path, the extra that installs its client library)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "memory": ("kvstore.backends.memory:MemoryStore", None),
    "sqlite": ("kvstore.backends.sqlite:SQLiteStore", None),
    "etcd": ("kvstore.backends.etcd:EtcdStore", "etcd"),
    "consul": ("kvstore.backends.consul:ConsulStore", "consul"),
    "zk": ("kvstore.backends.zookeeper:ZooKeeperStore", "zk"),
}

_registered: dict[str, StoreFactory] = {}
_lock = threading.Lock()


def register_backend(name: str, factory: StoreFactory) -> None:
    """Make ``new_store(name, ...)`` call ``factory(addrs, config)``."""
    with _lock:
        _registered[name] = factory


def backend_names() -> list[str]:
    """Every name ``new_store`` accepts right now."""
    from importlib import metadata  # only here: scanning installed packages costs ~20 ms

    names = set(_BUILTIN) | set(_registered)
    names.update(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _load(target: str, name: str, extra: str | None) -> StoreFactory:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (pip install 'kvstore[{extra}]')" if extra else ""
        raise BackendNotSupportedError(f"backend {name!r} cannot load its client library: {exc}{hint}") from exc
    factory: StoreFactory = getattr(module, attr)
    return factory


def get_backend(name: str) -> StoreFactory:
    """The factory for ``name``; ``BackendNotSupportedError`` if there is none."""
    with _lock:
        if name in _registered:
            return _registered[name]
    if name in _BUILTIN:
        target, extra = _BUILTIN[name]
        factory = _load(target, name, extra)
    else:
        from importlib import metadata

        points = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not points:
            raise BackendNotSupportedError(f"unknown backend {name!r} (known: {', '.join(backend_names())})")
        factory = _load(points[0].value, name, None)
    with _lock:
        _registered.setdefault(name, factory)
        return _registered[name]
