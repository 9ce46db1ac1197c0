"""``new_lock`` for the ``zk`` backend: the lock is the ephemeral znode ``key`` itself.

Acquiring creates ``key`` as an ephemeral znode holding the lock's value, in
one atomic create, so while the lock is held ``get(key).value`` is the
holder's value (Swarm's leader election reads the primary's address that
way). Whoever finds the znode there leaves an existence watch on it and
tries again when it goes. A lock with a ``ttl`` lives in the store's session
for that ttl (see the store's docstring), so a holder that dies or freezes
loses it within ``ttl``.

The holder learns of a loss (the lost-event) when: the znode is deleted by
someone else; its session expires; or it has been disconnected for longer
than the session timeout, after which the server has, as far as the holder
can know, expired the session and handed the lock on.

Threads of one store share its sessions, and ZooKeeper cannot tell them
apart; they queue for the lock on a local mutex first, so that at most one
of them is contending in ZooKeeper and "was that create mine?" always has
an answer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import BadVersionError, NoNodeError  # type: ignore[import-untyped]
from kazoo.protocol.states import EventType  # type: ignore[import-untyped]

from ..errors import CannotLockError, KVStoreError, NotReachableError
from ..store import Lock
from .zookeeper_session import EXPIRED, RENEWED, RESUMED, Node, OutcomeUnknown, Session, drain, translate_errors

if TYPE_CHECKING:
    from .zookeeper import ZooKeeperStore

#: How often the holder's monitor checks the time without news.
_TICK = 0.2


def _setter(event: threading.Event) -> Callable[[Any], None]:
    """A watch callback that sets ``event``, whatever happened."""
    return lambda _watched: event.set()


class LocalQueue:
    """One per key and store: the store's own contenders for a lock queue here, not in ZooKeeper.

    All threads of a store share its sessions, so ZooKeeper cannot tell them
    apart; queueing them locally keeps "whose create was it" unambiguous.
    """

    def __init__(self) -> None:
        self.mutex = threading.Lock()


class _Stop:
    """Inbox marker: released (or abandoned); the monitor ends."""


class _Hold:
    """One acquisition: its znode, its session, its lost-event, and the inbox of its monitor.

    Watches and session callbacks are bound to the hold, not the lock: a
    watch left by an earlier acquisition of the same lock (its znode's
    deletion on release, say) must not reach a later one.
    """

    def __init__(self, session: Session, czxid: int) -> None:
        self.session = session
        self.czxid = czxid
        self.lost = threading.Event()
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def on_event(self, event: Any) -> None:
        self.inbox.put(event.type)

    def on_session(self, kind: str) -> None:
        self.inbox.put(kind)


class ZooKeeperLock(Lock):
    """A lock on ``key`` in a ZooKeeper store."""

    def __init__(self, store: ZooKeeperStore, key: str, path: str, value: bytes, ttl: float | None) -> None:
        self._store = store
        self._key = key
        self._path = path
        self._value = value
        self._ttl = ttl
        self._slot = store.local_queue(key)
        self._mutex = threading.Lock()
        self._hold: _Hold | None = None

    # -- acquire -------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> threading.Event:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._slot.mutex.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise CannotLockError(f"lock {self._key!r}: still held after {timeout} s")
        try:
            with translate_errors(f"lock {self._key}"):
                session, node = self._contend(deadline, timeout)
        except BaseException:
            self._slot.mutex.release()
            raise
        hold = _Hold(session, node.czxid)
        with self._mutex:
            self._hold = hold
        session.subscribe(hold.on_session)
        threading.Thread(target=self._monitor, args=(hold,), name=f"kvstore-zk-lock:{self._key}", daemon=True).start()
        hold.inbox.put(EventType.CHANGED)  # arm the first watch, from the monitor's thread
        return hold.lost

    def _contend(self, deadline: float | None, timeout: float | None) -> tuple[Session, Node]:
        store = self._store
        while True:
            call_deadline = store.deadline()
            session = store.session_for(self._ttl)
            before = session.client.last_zxid
            try:
                node = store.create_znode(
                    session, self._path, self._value, ephemeral=True, deadline=call_deadline, idempotent=False
                )
            except OutcomeUnknown:
                node = store.landed_znode(
                    session, self._path, self._value, before, ephemeral=True, deadline=call_deadline
                )
                if node is not None:
                    return session, node
                continue
            if node is not None:
                return session, node
            # Held: wait for the znode to go (or for the connection to drop: kazoo then fires every watch).
            gone = threading.Event()
            stat = session.exists(self._path, call_deadline, f"lock {self._key}", _setter(gone))
            if stat is None:
                continue
            while not gone.is_set():
                if session.closed:
                    raise NotReachableError(f"lock {self._key}: the store is closed")
                if deadline is None:
                    gone.wait(1.0)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
                gone.wait(min(remaining, 1.0))

    # -- while held ----------------------------------------------------------------------
    def _monitor(self, hold: _Hold) -> None:
        session = hold.session
        try:
            while True:
                items = drain(hold.inbox, _TICK)
                if any(isinstance(item, _Stop) for item in items) or hold.lost.is_set():
                    return
                if EventType.DELETED in items or EXPIRED in items or RENEWED in items:
                    self._lose(hold)
                    return
                if session.disconnected_for() > session.timeout:
                    # The server has expired the session by now, for all we can know.
                    self._lose(hold)
                    self._delete_if_ours(hold)  # in case it had not
                    return
                recheck = EventType.CHANGED in items or EventType.CREATED in items or RESUMED in items
                if recheck and not self._still_ours(hold):
                    self._lose(hold)
                    return
        finally:
            session.unsubscribe(hold.on_session)

    def _still_ours(self, hold: _Hold) -> bool:
        """Re-arm the watch on the znode; False if it is no longer the one we created."""
        try:
            with translate_errors(f"lock {self._key}"):
                # Not longer than the session may live unheard of: the monitor must get back to its clock.
                deadline = time.monotonic() + min(self._store.connection_timeout, hold.session.timeout)
                stat = hold.session.call(
                    lambda c: c.exists_async(self._path, hold.on_event), deadline, f"lock {self._key}"
                )
        except KVStoreError:
            return True  # cannot tell now; the session's fate decides
        return stat is not None and stat.czxid == hold.czxid

    def _lose(self, hold: _Hold) -> None:
        with self._mutex:
            if self._hold is not hold:
                return
            self._hold = None
            hold.lost.set()
        self._slot.mutex.release()

    # -- release ---------------------------------------------------------------------------
    def release(self) -> None:
        with self._mutex:
            hold, self._hold = self._hold, None
        if hold is None:
            return
        hold.inbox.put(_Stop())
        try:
            with translate_errors(f"unlock {self._key}"):
                self._delete_if_ours(hold, raise_errors=True)
        finally:
            self._slot.mutex.release()

    def abandon(self) -> None:
        """The store is closing: the lock goes with its session; tell the holder it is lost."""
        with self._mutex:
            hold, self._hold = self._hold, None
        if hold is None:
            return
        hold.lost.set()
        hold.inbox.put(_Stop())
        self._slot.mutex.release()

    def _delete_if_ours(self, hold: _Hold, *, raise_errors: bool = False) -> None:
        """Delete the znode if it is still the one this hold created."""
        session, path = hold.session, self._path

        def attempt() -> None:
            for _ in range(10):
                stat = session.wait(session.client.exists_async(path), deadline)
                if stat is None or stat.czxid != hold.czxid:
                    return
                try:
                    session.wait(session.client.delete_async(path, stat.version), deadline)
                    return
                except NoNodeError:
                    return
                except BadVersionError:
                    continue  # its value was rewritten meanwhile; still ours: again

        deadline = self._store.deadline()
        try:
            session.run(attempt, deadline, f"unlock {self._key}")
        except Exception:
            if raise_errors:
                raise
