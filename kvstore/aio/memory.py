"""``memory`` for asyncio: an in-process store, private to the object that made it.

Native: a dict used from the event loop only, so no lock at all. TTL keys are
dropped by a loop timer set for the next expiry, so watchers hear of expiry
as of any other change.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import ClassVar

from .. import keys
from ..errors import KeyExistsError, KeyModifiedError, KeyNotFoundError
from ..store import Config, KVPair, override
from .local import AsyncChangeSignal, LocalAsyncLock, PollingWatch, children_or_none
from .store import AsyncLock, AsyncStore, AsyncWatch


class _Entry:
    __slots__ = ("expires", "index", "value")

    def __init__(self, value: bytes, index: int, expires: float | None) -> None:
        self.value = value
        self.index = index
        self.expires = expires


class AsyncMemoryStore(AsyncStore):
    """A dict with a global write counter for ``last_index``."""

    shared_across_processes: ClassVar[bool] = False

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        self._data: dict[str, _Entry] = {}
        self._counter = itertools.count(1)
        self._signal = AsyncChangeSignal()
        self._reaper: asyncio.TimerHandle | None = None
        self._reaper_at: float | None = None
        self._closed = False

    # -- helpers ---------------------------------------------------------------
    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= time.monotonic():
            return None
        return entry

    def _write(self, key: str, value: bytes, ttl: float | None) -> KVPair:
        expires = None if ttl is None else time.monotonic() + ttl
        entry = _Entry(value, next(self._counter), expires)
        self._data[key] = entry
        if expires is not None:
            self._reap_at(expires)
        self._signal.bump()
        return KVPair(key, value, entry.index)

    def _reap_at(self, when: float) -> None:
        """Have the reaper run at ``when`` (monotonic seconds) unless it already runs earlier."""
        if self._closed or (self._reaper_at is not None and self._reaper_at <= when):
            return
        if self._reaper is not None:
            self._reaper.cancel()
        loop = asyncio.get_running_loop()
        self._reaper_at = when
        self._reaper = loop.call_later(max(0.0, when - time.monotonic()), self._reap)

    def _reap(self) -> None:
        """Drop the expired keys, announce it, and set the timer for the next expiry."""
        self._reaper = self._reaper_at = None
        now = time.monotonic()
        expired = [k for k, e in self._data.items() if e.expires is not None and e.expires <= now]
        for key in expired:
            del self._data[key]
        if expired:
            self._signal.bump()
        pending = [e.expires for e in self._data.values() if e.expires is not None]
        if pending:
            self._reap_at(min(pending))

    # -- the contract ------------------------------------------------------------
    @override
    async def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        self._write(key, value, ttl)

    @override
    async def _get(self, key: str) -> KVPair:
        entry = self._live(key)
        if entry is None:
            raise KeyNotFoundError(f"key not found: {key}")
        return KVPair(key, entry.value, entry.index)

    @override
    async def _delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self._signal.bump()

    @override
    async def _list(self, directory: str) -> list[KVPair]:
        pairs = [
            KVPair(k, e.value, e.index)
            for k, e in self._data.items()
            if keys.is_below(directory, k) and self._live(k) is not None
        ]
        if not pairs and (not directory or self._live(directory) is None):
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return sorted(pairs, key=lambda p: p.key)

    @override
    async def _delete_tree(self, directory: str) -> None:
        doomed = [k for k in self._data if k == directory or keys.is_below(directory, k)]
        for key in doomed:
            del self._data[key]
        if doomed:
            self._signal.bump()

    @override
    def _watch(self, key: str) -> AsyncWatch[KVPair]:
        return PollingWatch(self._signal, lambda: self._get(key))

    @override
    def _watch_tree(self, directory: str) -> AsyncWatch[list[KVPair]]:
        return PollingWatch(self._signal, lambda: children_or_none(self._list, directory))

    @override
    async def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        entry = self._live(key)
        if previous is None:
            if entry is not None:
                raise KeyExistsError(f"key exists: {key}")
        elif entry is None:
            raise KeyNotFoundError(f"key not found: {key}")
        elif entry.index != previous.last_index:
            raise KeyModifiedError(f"key modified: {key}")
        return self._write(key, value, ttl)

    @override
    async def _atomic_delete(self, key: str, previous: KVPair) -> None:
        entry = self._live(key)
        if entry is None:
            raise KeyNotFoundError(f"key not found: {key}")
        if entry.index != previous.last_index:
            raise KeyModifiedError(f"key modified: {key}")
        del self._data[key]
        self._signal.bump()

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> AsyncLock:
        return LocalAsyncLock(self, self._signal, key, value, ttl)

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = self._reaper_at = None
        self._signal.bump()
