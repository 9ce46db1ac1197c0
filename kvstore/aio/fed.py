"""A watch fed by a producer (a stream's task, or a client library's thread): states queue up for the reader.

The embedded stores' watches re-read on demand (:mod:`kvstore.aio.local`);
the network stores' are pushed to: a task reading an etcd watch stream, a
Consul blocking query, a kazoo callback. :class:`FedWatch` is the reader's
side of that push, with the ending rules of :class:`~kvstore.aio.AsyncWatch`.
"""

from __future__ import annotations

import abc
import asyncio
from typing import TypeVar

from ..errors import KVStoreError
from .store import AsyncWatch

T = TypeVar("T")


class _End:
    """Queue marker: the watch has ended (closed, or the watched key was deleted)."""


class _Failure:
    def __init__(self, error: KVStoreError) -> None:
        self.error = error


class FedWatch(AsyncWatch[T]):
    """A watch whose producer calls :meth:`emit`, :meth:`fail` and :meth:`finish` (from the loop's thread).

    A backend implements :meth:`_first` (read the current state, start the
    producer) and :meth:`_release` (stop it).
    """

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    # -- producer side -------------------------------------------------------------
    def emit(self, item: T) -> None:
        """Deliver the next state to the reader."""
        if not self.closed:
            self._queue.put_nowait(item)

    def fail(self, error: KVStoreError) -> None:
        """End the watch by raising ``error`` in the reader."""
        self._queue.put_nowait(_Failure(error))

    def finish(self) -> None:
        """End the watch normally (the watched key was deleted)."""
        self._queue.put_nowait(_End())

    # -- reader side -----------------------------------------------------------------
    @abc.abstractmethod
    async def _first(self) -> T: ...

    async def _next(self, timeout: float | None) -> T:
        if timeout is None:
            item = await self._queue.get()
        else:
            try:
                async with asyncio.timeout(timeout):
                    item = await self._queue.get()
            except TimeoutError:
                raise TimeoutError(f"no change within {timeout} s") from None
        if isinstance(item, _End):
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            raise item.error
        return item  # type: ignore[return-value]

    def _wake(self) -> None:
        self._queue.put_nowait(_End())
