"""Watches and locks for the embedded async stores (``memory``, ``sqlite``), without threads.

The same scheme as :mod:`kvstore.backends._local`, in asyncio terms: an
:class:`AsyncChangeSignal` is bumped after every write and TTL expiry, and a
watch or a lock re-reads what it cares about when it moves. Waiting on the
signal is a future with a timer, so a watch costs no task and no thread
while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import CannotLockError, KeyExistsError, KeyModifiedError, KeyNotFoundError, KVStoreError
from ..store import KVPair
from .store import AsyncLock, AsyncStore, AsyncWatch

T = TypeVar("T")

#: How long a waiter waits at most without a signal before it re-reads:
#: bounds how late an expiry nobody announced is seen.
MAX_WAIT = 0.5


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncChangeSignal:
    """A generation counter with waiters: "something in the store changed". Used from the loop only."""

    def __init__(self) -> None:
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def generation(self) -> int:
        return self._generation

    def bump(self) -> None:
        """Announce a change to every waiter."""
        self._generation += 1
        waiters, self._waiters = self._waiters, set()
        for future in waiters:
            _settle(future)

    async def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation moves past ``seen`` or ``timeout`` passes; return it."""
        if self._generation != seen:
            return self._generation
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.add(future)
        timer = loop.call_later(max(0.0, timeout), _settle, future)
        try:
            await future
        finally:
            timer.cancel()
            self._waiters.discard(future)
        return self._generation


class PollingWatch(AsyncWatch[T]):
    """A watch that re-reads on every signal and yields what differs from the last state it gave."""

    def __init__(self, signal: AsyncChangeSignal, read: Callable[[], Awaitable[T]]) -> None:
        super().__init__()
        self._signal = signal
        self._read = read
        self._seen = 0
        self._last: T | None = None

    async def _first(self) -> T:
        # The generation is taken before the read, so a change racing with it is never missed.
        self._seen = self._signal.generation
        self._last = await self._read()
        return self._last

    async def _next(self, timeout: float | None) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = MAX_WAIT
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no change within {timeout} s")
                wait = min(wait, remaining)
            self._seen = await self._signal.wait(self._seen, wait)
            if self.closed:
                raise StopAsyncIteration
            try:
                current = await self._read()
            except KeyNotFoundError:
                raise StopAsyncIteration from None
            if current != self._last:
                self._last = current
                return current

    def _wake(self) -> None:
        self._signal.bump()


async def children_or_none(list_hook: Callable[[str], Awaitable[list[KVPair]]], directory: str) -> list[KVPair]:
    """What a tree watch of ``directory`` shows: its keys, or ``[]`` where there are none (not an error)."""
    try:
        return await list_hook(directory)
    except KeyNotFoundError:
        return []


class LocalAsyncLock(AsyncLock):
    """A lock held as a key created atomically; a task of the holder renews its TTL.

    The same protocol as the sync embedded stores' lock (a key whose value is
    the holder's), so a sync and an async holder on one sqlite file exclude
    each other. Losing the key, to its TTL or to someone deleting it, or
    closing the store, sets the lost-event.
    """

    def __init__(self, store: AsyncStore, signal: AsyncChangeSignal, key: str, value: bytes, ttl: float | None) -> None:
        self._store = store
        self._signal = signal
        self._key = key
        self._value = value
        self._ttl = ttl
        self._pair: KVPair | None = None
        self._lost = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._mutex = asyncio.Lock()

    async def acquire(self, timeout: float | None = None) -> asyncio.Event:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self._signal.generation
            try:
                pair = await self._store.atomic_put(self._key, self._value, None, ttl=self._ttl)
                break
            except KeyExistsError:
                pass
            wait = MAX_WAIT
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
                wait = min(wait, remaining)
            await self._signal.wait(seen, wait)
        self._pair = pair
        self._lost = asyncio.Event()
        self._keeper = asyncio.get_running_loop().create_task(self._keep(pair), name=f"kvstore-lock:{self._key}")
        return self._lost

    async def _keep(self, pair: KVPair) -> None:
        """Renew the TTL while held; set the lost-event the moment the key is no longer ours."""
        renew_every = self._ttl / 3 if self._ttl else None
        now = time.monotonic()
        next_renewal = now + renew_every if renew_every else None
        held_until = now + self._ttl if self._ttl else None
        seen = self._signal.generation
        while self._pair is pair:
            wait = MAX_WAIT if next_renewal is None else max(0.0, min(MAX_WAIT, next_renewal - time.monotonic()))
            seen = await self._signal.wait(seen, wait)
            async with self._mutex:
                if self._pair is not pair:
                    return
                renew = next_renewal is not None and time.monotonic() >= next_renewal
                outcome = await self._check(pair, renew, held_until)
                if outcome is None:
                    self._lose()
                    return
                if outcome is not pair:
                    pair = self._pair = outcome
                    assert renew_every is not None and self._ttl is not None
                    next_renewal = time.monotonic() + renew_every
                    held_until = time.monotonic() + self._ttl
                elif renew:  # the store did not answer: retry soon, never in a tight loop
                    next_renewal = time.monotonic() + min(MAX_WAIT, renew_every or MAX_WAIT)

    async def _check(self, pair: KVPair, renew: bool, held_until: float | None) -> KVPair | None:
        """The pair still held (renewed when ``renew``), or None once the lock is lost."""
        if self._store.closed:
            return None
        try:
            if renew:
                return await self._store.atomic_put(self._key, self._value, pair, ttl=self._ttl)
            if (await self._store.get(self._key)).last_index != pair.last_index:
                return None
        except (KeyModifiedError, KeyNotFoundError):
            return None
        except KVStoreError:
            if held_until is not None and time.monotonic() >= held_until:
                return None
        return pair

    def _lose(self) -> None:
        self._pair = None
        self._lost.set()

    async def release(self) -> None:
        async with self._mutex:
            pair, self._pair = self._pair, None
        keeper, self._keeper = self._keeper, None
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        self._signal.bump()
        if pair is None:
            return
        with contextlib.suppress(KeyModifiedError, KeyNotFoundError):
            await self._store.atomic_delete(self._key, pair)  # gone already: the lock was lost
