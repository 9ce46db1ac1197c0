"""Locks on Consul: a session, ``?acquire=`` on the key, and a thread that keeps it and watches it.

This is Consul's documented leader-election pattern. The holder creates a
session with a TTL and ``Behavior: delete`` and acquires the key with it,
the lock's value as the key's contents (Swarm's leader election reads the
primary's address from the key). Waiters block on the key with blocking
queries until it is free, then try to acquire it themselves.

While held, one thread per lock renews the session and blocks on the key.
The lost-event is set when the key is no longer held by our session (it was
deleted, or released by someone else), when a renewal finds the session
gone, or when no renewal has succeeded for a whole session TTL (the server
may have invalidated it meanwhile: a holder frozen by SIGSTOP or a long GC
pause learns this the moment it runs again). ``release`` destroys the
session, which deletes the key in the same step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import CannotLockError, KVStoreError
from ..store import Lock
from .consul_transport import InvalidSession, format_wait
from .consul_watch import IndexCursor, header_index

if TYPE_CHECKING:
    from .consul import ConsulStore

_log = logging.getLogger("kvstore.consul")

#: How long a waiter pauses when the key looks free but acquiring it failed
#: (another session's lock-delay is still running).
_RETRY_PAUSE = 0.1


class ConsulLock(Lock):
    """One lock object; it can be acquired and released many times, by one holder at a time."""

    def __init__(self, store: ConsulStore, full_key: str, value: bytes, ttl: float) -> None:
        self._store = store
        self._transport = store.transport
        self._key = full_key
        self._value = value
        self._ttl = ttl
        self._mutex = threading.Lock()
        self._session: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()

    @property
    def _wait(self) -> float:
        return self._store.watch_wait

    def acquire(self, timeout: float | None = None) -> threading.Event:
        with self._mutex:
            if self._session is not None:
                return self._lost  # already ours
        deadline = None if timeout is None else time.monotonic() + timeout
        session: str | None = None
        session_ttl = 0.0
        renewed = 0.0
        cursor = IndexCursor()
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
                wait = self._wait if remaining is None else min(self._wait, remaining)
                index, item = self._read(cursor, wait)
                cursor.update(index)
                if item is not None and item.get("Session"):
                    continue  # held: block until the key changes
                if session is None or time.monotonic() - renewed > session_ttl / 3:
                    session, session_ttl = self._fresh_session(session)
                    renewed = time.monotonic()
                try:
                    got = self._transport.acquire(self._key, self._value, session)
                except InvalidSession:
                    session = None
                    cursor.reset()
                    continue
                if got:
                    break
                # Free, yet refused: a lock-delay runs. Look again shortly.
                cursor.reset()
                pause = _RETRY_PAUSE if remaining is None else min(_RETRY_PAUSE, max(0.0, remaining))
                time.sleep(pause)
        except BaseException:
            if session is not None:
                self._forget(session)
            raise
        with self._mutex:
            self._session = session
            self._lost = threading.Event()
            self._stop = threading.Event()
            lost, stop = self._lost, self._stop
        self._store.track_lock(self)
        threading.Thread(
            target=self._keep,
            args=(session, session_ttl, lost, stop),
            name=f"kvstore-consul-lock:{self._key}",
            daemon=True,
        ).start()
        return lost

    def _read(self, cursor: IndexCursor, wait: float) -> tuple[int | None, dict[str, Any] | None]:
        def get(client: Any) -> tuple[int | None, dict[str, Any] | None]:
            if cursor.index:
                raw_index, item = client.kv.get(self._key, index=cursor.index, wait=format_wait(wait))
            else:
                raw_index, item = client.kv.get(self._key)
            return header_index(raw_index), item

        return self._transport.call(
            f"lock {self._key}",
            get,
            read_timeout=self._transport.blocking_timeout(wait),
            on_retry=cursor.reset,
        )

    def _fresh_session(self, old: str | None) -> tuple[str, float]:
        """A session to acquire with: the old one renewed, or a new one if it is gone."""
        wanted = self._transport.session_ttl_for(self._ttl)
        if old is not None:
            ttl = self._transport.renew_session(old)
            if ttl is not None:
                return old, max(ttl, wanted)
        return self._transport.create_session(
            wanted, behavior="delete", lock_delay=self._store.lock_delay, name=f"kvstore lock {self._key}"
        )

    def _keep(self, session: str, session_ttl: float, lost: threading.Event, stop: threading.Event) -> None:
        """Renew the session and watch the key until released, or until the lock is lost."""
        try:
            self._hold(session, session_ttl, stop)
        except Exception:  # noqa: BLE001 - logged; after a bug nobody renews, so the lock is as good as lost
            _log.exception("keeping the lock %s failed", self._key)
        if stop.is_set():
            return
        with self._mutex:
            if self._session == session:
                self._session = None
        lost.set()
        self._forget(session)

    def _hold(self, session: str, session_ttl: float, stop: threading.Event) -> None:
        """Return when released (``stop``) or when the lock is lost."""
        renew_every = session_ttl / 3
        confirmed = time.monotonic()
        next_renewal = confirmed + renew_every
        cursor = IndexCursor()
        while not stop.is_set():
            now = time.monotonic()
            if now - confirmed > session_ttl:
                return  # not renewed for a whole TTL: the server may have let it go
            if now >= next_renewal:
                try:
                    ttl = self._transport.renew_session(session)
                except KVStoreError:
                    next_renewal = now + min(0.2, renew_every)
                    continue
                if ttl is None:
                    return  # the session is gone
                confirmed = now
                renew_every = max(ttl, session_ttl) / 3
                next_renewal = now + renew_every
                continue
            wait = max(0.01, next_renewal - now)
            try:
                index, item = self._read(cursor, wait)
            except KVStoreError:
                stop.wait(min(0.2, wait))
                continue
            if stop.is_set():
                return
            cursor.update(index)
            if item is None or item.get("Session") != session:
                return  # deleted, or released and maybe taken by someone else

    def _forget(self, session: str) -> None:
        with contextlib.suppress(KVStoreError):  # it expires by its TTL anyway
            self._transport.destroy_session(session)

    def release(self) -> None:
        with self._mutex:
            session, self._session = self._session, None
            self._stop.set()
        if session is None:
            return
        # Destroying the session deletes the key (Behavior: delete) if it is still ours.
        self._transport.destroy_session(session)
