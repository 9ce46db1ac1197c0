"""A sync :class:`~kvstore.Store` behind the async face, its blocking calls on a thread of its own.

For a backend whose client library is built on threads and blocking calls
(kazoo, for ZooKeeper), where a native asyncio client does not exist. The
event loop never blocks: each call runs on the store's one worker thread
(so the client sees one caller, in order) and is awaited; each watch is
pumped by a thread of its own into the loop (``call_soon_threadsafe``); a
lock's acquire waits on a thread, and its lost-event is mirrored into an
``asyncio.Event`` by a thread that waits on the sync one.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import KVStoreError
from ..store import KVPair, Lock, Store, Watch, override
from .fed import FedWatch
from .store import AsyncLock, AsyncStore, AsyncWatch

T = TypeVar("T")

#: How often a mirroring thread looks whether its lock was released (its only way to learn of it).
MIRROR_POLL = 0.2


def _deliver(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """``callback(*args)`` in ``loop``; nothing once the loop is closed (the reader is gone)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _settle_error(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


async def on_own_thread(call: Callable[[], T], abandoned: Callable[[T], None] | None = None) -> T:
    """``call()`` on a new thread, awaited. Not the loop's shared executor: a lock's acquire may wait long,
    and a pool full of waiting acquires would leave no thread for the release that ends their wait.

    If the awaiting task is cancelled, ``abandoned(result)`` runs on that thread once ``call`` returns
    (a lock acquired for nobody is released there).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    gone = threading.Event()

    def run() -> None:
        try:
            result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which raises it
            _deliver(loop, _settle_error, future, exc)
            return
        if gone.is_set() and abandoned is not None:
            abandoned(result)
            return
        _deliver(loop, hand_over, result)

    def hand_over(result: T) -> None:
        if not future.cancelled():
            future.set_result(result)
        elif abandoned is not None:  # cancelled between the check above and now
            threading.Thread(target=abandoned, args=(result,), daemon=True).start()

    threading.Thread(target=run, name="kvstore-aio-lock", daemon=True).start()
    try:
        return await future
    except asyncio.CancelledError:
        gone.set()
        raise


class ThreadedStore(AsyncStore):
    """Wraps an open sync store; the hooks await its public calls (keys are already prefix-relative)."""

    def __init__(self, sync: Store, worker_name: str) -> None:
        super().__init__(sync.addrs, sync.config)
        self.sync = sync
        #: Whether the wrapped backend's TTL keys live as long as its session (read by the conformance suite).
        self.ttl_bound_to_session = bool(getattr(sync, "ttl_bound_to_session", False))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=worker_name)
        self._closed = False

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on the worker thread, awaited."""
        if self._closed:
            raise KVStoreError(f"the {self.backend or 'threaded'} store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(call, *args))

    @override
    async def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        await self.run(functools.partial(self.sync.put, ttl=ttl, is_dir=is_dir), key, value)

    @override
    async def _get(self, key: str) -> KVPair:
        return await self.run(self.sync.get, key)

    @override
    async def _delete(self, key: str) -> None:
        await self.run(self.sync.delete, key)

    @override
    async def _exists(self, key: str) -> bool:
        return await self.run(self.sync.exists, key)

    @override
    async def _list(self, directory: str) -> builtins.list[KVPair]:
        return await self.run(self.sync.list, directory)

    @override
    async def _delete_tree(self, directory: str) -> None:
        await self.run(self.sync.delete_tree, directory)

    @override
    def _watch(self, key: str) -> AsyncWatch[KVPair]:
        return PumpedWatch(self, lambda: self.sync.watch(key))

    @override
    def _watch_tree(self, directory: str) -> AsyncWatch[builtins.list[KVPair]]:
        return PumpedWatch(self, lambda: self.sync.watch_tree(directory))

    @override
    async def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        return await self.run(functools.partial(self.sync.atomic_put, ttl=ttl), key, value, previous)

    @override
    async def _atomic_delete(self, key: str, previous: KVPair) -> None:
        await self.run(self.sync.atomic_delete, key, previous)

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> AsyncLock:
        return ThreadedLock(self.sync.new_lock(key, value=value, ttl=ttl))

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        if self._closed:
            return
        await self.run(self.sync.close)
        self._closed = True
        self._worker.shutdown(wait=False)


class PumpedWatch(FedWatch[T]):
    """A sync watch read by a thread of its own, each state handed to the loop."""

    def __init__(self, store: ThreadedStore, open_watch: Callable[[], Watch[T]]) -> None:
        super().__init__()
        self._store = store
        self._open_watch = open_watch
        self._sync: Watch[T] | None = None

    async def _first(self) -> T:
        self._sync = await self._store.run(self._open_watch)  # KeyNotFoundError here, as in the sync API
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, args=(self._sync, loop), name="kvstore-aio-watch", daemon=True).start()
        return await self._next(None)

    def _pump(self, sync: Watch[T], loop: asyncio.AbstractEventLoop) -> None:
        try:
            for item in sync:
                _deliver(loop, self.emit, item)
        except KVStoreError as exc:
            _deliver(loop, self.fail, exc)
            return
        _deliver(loop, self.finish)

    async def _release(self) -> None:
        if self._sync is not None:
            self._sync.close()  # safe from any thread, returns at once


class ThreadedLock(AsyncLock):
    """A sync lock; acquiring waits on a thread, the lost-event is mirrored into the loop."""

    def __init__(self, sync: Lock) -> None:
        self._sync = sync
        self._released = threading.Event()

    async def acquire(self, timeout: float | None = None) -> asyncio.Event:
        sync_lost = await on_own_thread(lambda: self._sync.acquire(timeout), lambda _lost: self._sync.release())
        lost = asyncio.Event()
        self._released = released = threading.Event()
        loop = asyncio.get_running_loop()

        def mirror() -> None:
            while not released.is_set():
                if sync_lost.wait(MIRROR_POLL):
                    if not released.is_set():
                        _deliver(loop, lost.set)
                    return

        threading.Thread(target=mirror, name="kvstore-aio-lock-lost", daemon=True).start()
        return lost

    async def release(self) -> None:
        self._released.set()
        await on_own_thread(self._sync.release)
