"""``memory``: an in-process store, private to the object that made it.

Useful for tests and single-process programs. Thread-safe; TTL keys vanish
on time (a reaper thread wakes at the next expiry so watchers hear of it).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import ClassVar

from .. import keys
from ..errors import KeyExistsError, KeyModifiedError, KeyNotFoundError
from ..store import Config, KVPair, Lock, Store, Watch, override
from ._local import ChangeSignal, LocalLock, children_or_none, start_polling_watch


class _Entry:
    __slots__ = ("expires", "index", "value")

    def __init__(self, value: bytes, index: int, expires: float | None) -> None:
        self.value = value
        self.index = index
        self.expires = expires


class MemoryStore(Store):
    """A dict behind a lock, with a global write counter for ``last_index``."""

    shared_across_processes: ClassVar[bool] = False

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        self._data: dict[str, _Entry] = {}
        self._mutex = threading.RLock()
        self._counter = itertools.count(1)
        self._signal = ChangeSignal()
        self._reaper_wake = threading.Condition(self._mutex)
        self._closed = False
        self._reaper: threading.Thread | None = None

    # -- helpers ---------------------------------------------------------------
    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= time.monotonic():
            return None
        return entry

    def _pair(self, key: str, entry: _Entry) -> KVPair:
        return KVPair(key, entry.value, entry.index)

    def _write(self, key: str, value: bytes, ttl: float | None) -> KVPair:
        expires = None if ttl is None else time.monotonic() + ttl
        entry = _Entry(value, next(self._counter), expires)
        self._data[key] = entry
        if expires is not None:
            self._ensure_reaper()
            self._reaper_wake.notify_all()
        return self._pair(key, entry)

    def _changed(self) -> None:
        self._signal.bump()

    def _ensure_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="kvstore-memory-ttl", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        """Drop expired keys as they expire, so watchers see TTL expiry as a change."""
        with self._mutex:
            while not self._closed:
                now = time.monotonic()
                expired = [k for k, e in self._data.items() if e.expires is not None and e.expires <= now]
                for key in expired:
                    del self._data[key]
                if expired:
                    self._changed()
                pending = [e.expires for e in self._data.values() if e.expires is not None]
                timeout = (min(pending) - now) if pending else None
                self._reaper_wake.wait(timeout)

    # -- the contract ------------------------------------------------------------
    @override
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        with self._mutex:
            self._write(key, value, ttl)
        self._changed()

    @override
    def _get(self, key: str) -> KVPair:
        with self._mutex:
            entry = self._live(key)
            if entry is None:
                raise KeyNotFoundError(f"key not found: {key}")
            return self._pair(key, entry)

    @override
    def _delete(self, key: str) -> None:
        with self._mutex:
            removed = self._data.pop(key, None)
        if removed is not None:
            self._changed()

    @override
    def _list(self, directory: str) -> list[KVPair]:
        with self._mutex:
            pairs = [
                self._pair(k, e)
                for k, e in self._data.items()
                if keys.is_below(directory, k) and self._live(k) is not None
            ]
            if not pairs and (not directory or self._live(directory) is None):
                raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return sorted(pairs, key=lambda p: p.key)

    @override
    def _delete_tree(self, directory: str) -> None:
        with self._mutex:
            doomed = [k for k in self._data if k == directory or keys.is_below(directory, k)]
            for key in doomed:
                del self._data[key]
        if doomed:
            self._changed()

    @override
    def _watch(self, key: str) -> Watch[KVPair]:
        return start_polling_watch(self._signal, lambda: self._get(key))

    @override
    def _watch_tree(self, directory: str) -> Watch[list[KVPair]]:
        return start_polling_watch(self._signal, lambda: children_or_none(self._list, directory))

    @override
    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        with self._mutex:
            entry = self._live(key)
            if previous is None:
                if entry is not None:
                    raise KeyExistsError(f"key exists: {key}")
            elif entry is None:
                raise KeyNotFoundError(f"key not found: {key}")
            elif entry.index != previous.last_index:
                raise KeyModifiedError(f"key modified: {key}")
            pair = self._write(key, value, ttl)
        self._changed()
        return pair

    @override
    def _atomic_delete(self, key: str, previous: KVPair) -> None:
        with self._mutex:
            entry = self._live(key)
            if entry is None:
                raise KeyNotFoundError(f"key not found: {key}")
            if entry.index != previous.last_index:
                raise KeyModifiedError(f"key modified: {key}")
            del self._data[key]
        self._changed()

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        return LocalLock(self, self._signal, key, value, ttl)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            self._reaper_wake.notify_all()
        self._signal.bump()
