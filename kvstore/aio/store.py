"""The asyncio face of kvstore: :class:`AsyncStore` and what it hands out.

The same template as :class:`kvstore.Store`: the public coroutines check and
normalise their arguments once (through :mod:`kvstore.keys`, so both faces
reject bad input with the same errors), then await the ``_underscore`` hooks
a backend implements, marked with :func:`kvstore.store.override`.

The results are the sync API's own types (:class:`~kvstore.KVPair`,
:class:`~kvstore.Config`) and errors (:mod:`kvstore.errors`): a program may
use both faces side by side and catch one set of errors.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import ClassVar, Generic, TypeVar

from .. import keys
from ..errors import KeyNotFoundError, KVStoreError, PreviousNotSpecifiedError
from ..store import Config, KVPair

T = TypeVar("T")


class AsyncWatch(abc.ABC, Generic[T]):
    """An async iterator over a key's (or a directory's) successive states.

    ``async for state in store.watch(key)``: the first item is the current
    state, then one item per change. The first read happens on entering
    ``async with`` (or on the first ``__anext__``), so a missing key raises
    ``KeyNotFoundError`` there. Iteration ends when the watched key is
    deleted, on :meth:`aclose` (from any task), or when the reading task is
    cancelled; the watch's resources are released in every case.

    A backend implements :meth:`_first` and :meth:`_next`, and :meth:`_wake`
    when a reader blocked in ``_next`` needs a nudge to notice :meth:`aclose`.
    """

    def __init__(self) -> None:
        self._started = False
        self._starting = False
        self._held: builtins.list[T] = []
        self._closed = False
        self._ended = False
        self._released = False

    # -- what a backend implements ---------------------------------------------
    @abc.abstractmethod
    async def _first(self) -> T:
        """The current state; ``KeyNotFoundError`` if a watched key is absent."""

    @abc.abstractmethod
    async def _next(self, timeout: float | None) -> T:
        """The next different state; ``StopAsyncIteration`` at the end, ``TimeoutError`` after ``timeout``."""

    def _wake(self) -> None:
        """Make a reader blocked in :meth:`_next` return (it then sees :attr:`closed`)."""
        return  # nothing to nudge in the base class

    async def _release(self) -> None:
        """Free what the watch holds (a stream, a task); called once."""
        return  # nothing held in the base class

    # -- the reader's side -------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the watch was closed: producers should stop."""
        return self._closed

    async def start(self) -> None:
        """Take the first state now (``async with`` does); ``KeyNotFoundError`` if the key is absent."""
        if self._started:
            return
        self._started = self._starting = True
        try:
            item = await self._first()
        except BaseException:
            self._ended = True
            self._starting = False
            await self._finish()
            raise
        self._starting = False
        self._held.append(item)
        if self._closed:  # closed by another task while the first read ran: release what it started
            await self._finish()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.next()

    async def next(self, timeout: float | None = None) -> T:
        """The next state, waiting at most ``timeout`` seconds (``TimeoutError`` after; the watch stays open)."""
        if self._ended or self._closed:
            raise StopAsyncIteration
        await self.start()
        if self._held:
            return self._held.pop()
        try:
            item = await self._next(timeout)
        except (StopAsyncIteration, KVStoreError):
            self._ended = True
            await self._finish()
            raise
        except asyncio.CancelledError:
            self._close_now()
            await self._finish()
            raise
        if self._closed:
            raise StopAsyncIteration
        return item

    def _close_now(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()

    async def _finish(self) -> None:
        if not self._released:
            self._released = True
            await self._release()

    async def aclose(self) -> None:
        """Stop the watch; safe from any task and more than once."""
        self._close_now()
        if not self._starting:  # else start() releases once its first read is done
            await self._finish()

    async def __aenter__(self) -> AsyncWatch[T]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncLock(abc.ABC):
    """A distributed mutex: one holder at a time, across processes, machines and both faces of kvstore."""

    @abc.abstractmethod
    async def acquire(self, timeout: float | None = None) -> asyncio.Event:
        """Wait until held (``CannotLockError`` after ``timeout`` seconds).

        Returns an event that is set if the lock is later lost while held,
        e.g. because its TTL ran out or its session expired.
        """

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the lock up; nothing happens if it is not held."""

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


class AsyncStore(abc.ABC):
    """A key/value store for asyncio programs. Construct through :func:`kvstore.aio.new_store` or ``from_url``.

    Constructing one does no I/O; the connection is made on first use, in the
    event loop that uses it. Close with ``await store.aclose()`` or
    ``async with``. The hooks receive what :class:`kvstore.Store`'s hooks
    receive: normalised, prefix-relative keys, bytes, positive TTLs or None.
    """

    #: False for stores private to one object (``memory``).
    shared_across_processes: ClassVar[bool] = True

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        self.addrs: builtins.list[str] = list(addrs)
        self.config: Config = config or Config()
        #: The name the store was created under (set by ``new_store``).
        self.backend: str = ""
        self.prefix: str = keys.normalize(self.config.prefix, allow_root=True)

    # -- the public API ------------------------------------------------------
    async def put(self, key: str, value: bytes, *, ttl: float | None = None, is_dir: bool = False) -> None:
        """Write ``value`` at ``key``; with ``ttl`` the key vanishes unless written again."""
        await self._put(keys.normalize(key), keys.check_value(value), keys.check_ttl(ttl), is_dir)

    async def get(self, key: str) -> KVPair:
        """The pair at ``key``; ``KeyNotFoundError`` if absent."""
        return await self._get(keys.normalize(key))

    async def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        await self._delete(keys.normalize(key))

    async def exists(self, key: str) -> bool:
        """True if ``key`` is present."""
        return await self._exists(keys.normalize(key))

    async def list(self, directory: str) -> builtins.list[KVPair]:
        """Every key below ``directory/`` at any depth, sorted by key, not the directory itself."""
        return await self._list(keys.normalize(directory, allow_root=True))

    async def delete_tree(self, directory: str) -> None:
        """Remove ``directory`` and everything below it."""
        await self._delete_tree(keys.normalize(directory, allow_root=True))

    def watch(self, key: str) -> AsyncWatch[KVPair]:
        """Current value first, then one item per change; ends when the key is deleted."""
        return self._watch(keys.normalize(key))

    def watch_tree(self, directory: str) -> AsyncWatch[builtins.list[KVPair]]:
        """Current children first (maybe ``[]``), then the whole list after every change."""
        return self._watch_tree(keys.normalize(directory, allow_root=True))

    async def atomic_put(self, key: str, value: bytes, previous: KVPair | None, *, ttl: float | None = None) -> KVPair:
        """Create (``previous=None``) or compare-and-swap on ``previous.last_index``."""
        return await self._atomic_put(keys.normalize(key), keys.check_value(value), previous, keys.check_ttl(ttl))

    async def atomic_delete(self, key: str, previous: KVPair | None) -> None:
        """Delete only if the key is still at ``previous.last_index``."""
        if previous is None:
            raise PreviousNotSpecifiedError(f"atomic_delete({key!r}) needs the previous pair")
        await self._atomic_delete(keys.normalize(key), previous)

    def new_lock(self, key: str, *, value: bytes = b"", ttl: float | None = None) -> AsyncLock:
        """A lock at ``key``; while held, ``get(key).value`` is ``value``."""
        return self._new_lock(keys.normalize(key), keys.check_value(value), keys.check_ttl(ttl))

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called (for backends that track it)."""
        return False

    async def aclose(self) -> None:
        """Release connections and background tasks; the store is unusable after."""
        return  # nothing to release in the base class

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- what a backend implements ---------------------------------------
    @abc.abstractmethod
    async def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None: ...

    @abc.abstractmethod
    async def _get(self, key: str) -> KVPair: ...

    @abc.abstractmethod
    async def _delete(self, key: str) -> None: ...

    async def _exists(self, key: str) -> bool:
        try:
            await self._get(key)
        except KeyNotFoundError:
            return False
        return True

    @abc.abstractmethod
    async def _list(self, directory: str) -> builtins.list[KVPair]: ...

    @abc.abstractmethod
    async def _delete_tree(self, directory: str) -> None: ...

    @abc.abstractmethod
    def _watch(self, key: str) -> AsyncWatch[KVPair]: ...

    @abc.abstractmethod
    def _watch_tree(self, directory: str) -> AsyncWatch[builtins.list[KVPair]]: ...

    @abc.abstractmethod
    async def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair: ...

    @abc.abstractmethod
    async def _atomic_delete(self, key: str, previous: KVPair) -> None: ...

    @abc.abstractmethod
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> AsyncLock: ...
