"""Watches and locks for the embedded stores (``memory``, ``sqlite``).

Both embedded stores learn of changes the same way: a :class:`ChangeSignal`
is bumped after every write (and every TTL expiry), and whoever cares
re-reads what it watches. Keeping that in one place means a watch or a lock
behaves identically on both stores; only how the signal is fed differs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import CannotLockError, KeyExistsError, KeyModifiedError, KeyNotFoundError, KVStoreError
from ..store import KVPair, Lock, Store, Watch

T = TypeVar("T")

#: How long a waiter sleeps at most without a signal: bounds how late a
#: closed watch's thread notices, and how late an expiry nobody announced
#: is seen.
MAX_WAIT = 0.5


class ChangeSignal:
    """A generation counter with a condition: "something in the store changed"."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def bump(self) -> None:
        """Announce a change to every waiter."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation moves past ``seen`` or ``timeout`` passes; return it."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout)
            return self._generation


def start_polling_watch(
    signal: ChangeSignal,
    read: Callable[[], T],
    on_close: Callable[[], None] | None = None,
    name: str = "kvstore-watch",
) -> Watch[T]:
    """A watch whose thread re-reads on every signal and emits what differs.

    The first read happens here, in the caller's thread, so a missing key
    raises ``KeyNotFoundError`` from ``watch()`` itself. The generation is
    taken before that read, so a change racing with it is never missed.
    """
    seen = signal.generation
    last = read()
    watch: Watch[T] = Watch(on_close=lambda: _wake_then(signal, on_close))
    watch.emit(last)

    def run() -> None:
        nonlocal seen, last
        while not watch.closed:
            seen = signal.wait(seen, MAX_WAIT)
            if watch.closed:
                return
            try:
                current = read()
            except KeyNotFoundError:
                watch.finish()
                return
            except KVStoreError as exc:
                watch.fail(exc)
                return
            if current != last:
                last = current
                watch.emit(current)

    threading.Thread(target=run, name=name, daemon=True).start()
    return watch


def children_or_none(list_hook: Callable[[str], list[KVPair]], directory: str) -> list[KVPair]:
    """What a tree watch of ``directory`` shows: its keys, or ``[]`` where there are none (not an error)."""
    try:
        return list_hook(directory)
    except KeyNotFoundError:
        return []


def _wake_then(signal: ChangeSignal, then: Callable[[], None] | None) -> None:
    signal.bump()
    if then is not None:
        then()


class LocalLock(Lock):
    """A lock held as a key created atomically; the holder renews its TTL.

    Used by the embedded stores. The key's value is the lock's value, so
    ``get(key)`` tells who holds it (Swarm's leader election reads the
    primary's address that way). Losing the key, to its TTL running out or to
    someone deleting it, sets the lost-event.
    """

    def __init__(
        self,
        store: Store,
        signal: ChangeSignal,
        key: str,
        value: bytes,
        ttl: float | None,
    ) -> None:
        self._store = store
        self._signal = signal
        self._key = key
        self._value = value
        self._ttl = ttl
        self._pair: KVPair | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._mutex = threading.Lock()

    def acquire(self, timeout: float | None = None) -> threading.Event:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self._signal.generation
            try:
                pair = self._store.atomic_put(self._key, self._value, None, ttl=self._ttl)
                break
            except KeyExistsError:
                pass
            wait = MAX_WAIT
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
                wait = min(wait, remaining)
            self._signal.wait(seen, wait)
        with self._mutex:
            self._pair = pair
            self._lost = threading.Event()
            self._stop = threading.Event()
            self._monitor = threading.Thread(target=self._watch_holding, name=f"kvstore-lock:{self._key}", daemon=True)
            self._monitor.start()
            return self._lost

    def _watch_holding(self) -> None:
        """Renew the TTL while held; set the lost-event the moment the key is no longer ours.

        A store that fails to answer is retried at most every ``MAX_WAIT``; once
        no renewal has succeeded for a whole TTL the key has expired, and a
        closed store holds no lock at all: both end in the lost-event.
        """
        renew_every = self._ttl / 3 if self._ttl else None
        next_renewal = time.monotonic() + renew_every if renew_every else None
        held_until = time.monotonic() + self._ttl if self._ttl else None
        seen = self._signal.generation
        while not self._stop.is_set():
            wait = MAX_WAIT if next_renewal is None else max(0.0, min(MAX_WAIT, next_renewal - time.monotonic()))
            seen = self._signal.wait(seen, wait)
            with self._mutex:
                if self._stop.is_set() or self._pair is None:
                    return
                if self._store.closed:
                    self._lose()
                    return
                try:
                    if next_renewal is not None and time.monotonic() >= next_renewal:
                        self._pair = self._store.atomic_put(self._key, self._value, self._pair, ttl=self._ttl)
                        assert renew_every is not None and self._ttl is not None
                        next_renewal = time.monotonic() + renew_every
                        held_until = time.monotonic() + self._ttl
                    elif self._store.get(self._key).last_index != self._pair.last_index:
                        raise KeyModifiedError(self._key)
                except (KeyModifiedError, KeyNotFoundError):
                    self._lose()
                    return
                except KVStoreError:
                    expired = held_until is not None and time.monotonic() >= held_until
                    if expired:
                        self._lose()
                        return
                    if next_renewal is not None:  # retry soon, never in a tight loop
                        next_renewal = time.monotonic() + min(MAX_WAIT, renew_every or MAX_WAIT)

    def _lose(self) -> None:
        self._pair = None
        self._lost.set()

    def release(self) -> None:
        with self._mutex:
            pair, self._pair = self._pair, None
            self._stop.set()
        self._signal.bump()
        if pair is None:
            return
        with contextlib.suppress(KeyModifiedError, KeyNotFoundError):
            self._store.atomic_delete(self._key, pair)  # gone already: the lock was lost
