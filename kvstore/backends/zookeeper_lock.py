"""``new_lock`` for the ``zk`` backend, in the layout of Docker's libkv (go-zookeeper's lock recipe).

Go Swarm managers hold ``docker/swarm/leader`` through libkv, whose
ZooKeeper lock is go-zookeeper's lock recipe. This lock uses the same
znodes the same way, so a Go manager and a kvstore holder see each other
and queue in one line:

* the key is a persistent znode; each contender is an ephemeral sequential
  child of it named ``_c_<guid>-lock-<seq>`` (go-zookeeper's "protected"
  name: the random guid lets a contender whose create lost its answer find
  its node after reconnecting, instead of leaving an orphan in the queue);
* the contender with the lowest sequence number (the digits after the
  name's last ``-``) holds the lock; every other one watches the contender
  just before it, not the holder, so a release wakes one waiter, not all;
* the new holder writes its value as the key's data, as libkv does once
  go-zookeeper's lock is taken: while held, ``get(key).value`` is the
  holder's value, whichever kind of client holds it.

Where this lock keeps kvstore's contract beyond what libkv does (libkv
leaves the value behind on unlock and never reports a loss):

* releasing clears the key's data if it still holds our write: the key is
  then a bare parent (see the store's docstring), which ``get`` and
  ``exists`` do not see. A Go follower reads that as an empty value until
  the next holder writes its own. The key's znode itself stays: a Go
  follower's watch (libkv's ``GetW`` loop) would end with it. A holder that dies leaves its value, as a
  Go one does; the next holder overwrites it.
* the lost-event is set when our contender node goes (deleted, or its
  session expired), when the connection has been gone longer than the
  session timeout (the server has expired it by then, for all we can know),
  or when someone else writes or deletes the key. The value is then cleared
  (when still ours) and our contender withdrawn, so that the store agrees.
* our contenders hold no data (null), so they never show up as keys; a Go
  contender's empty data shows as a key of value ``b""`` below the lock key.

A lock with a ``ttl`` contends from the store's session for that ttl (see
the store's docstring), so a holder that dies or freezes loses it within
``ttl``. Threads of one store share its sessions; they queue on a local
mutex first (:class:`LocalQueue`), so at most one of them contends in
ZooKeeper per key and store.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import BadVersionError, KazooException, NoNodeError  # type: ignore[import-untyped]
from kazoo.protocol.states import EventType  # type: ignore[import-untyped]

from ..errors import CannotLockError, KVStoreError, NotReachableError
from ..store import Lock
from .zookeeper_session import (
    EXPIRED,
    RENEWED,
    RESUMED,
    OutcomeUnknown,
    Session,
    child_path,
    drain,
    list_children,
    translate_errors,
)

if TYPE_CHECKING:
    from .zookeeper import ZooKeeperStore

#: go-zookeeper's ``protectedPrefix`` and the name its lock gives its nodes.
PROTECTED_PREFIX = "_c_"
LOCK_NAME = "lock-"

#: How often the holder's monitor, and a waiter, look at the clock without news.
_TICK = 0.2
_WAITER_TICK = 1.0


def contender_prefix(guid: str) -> str:
    """The name of a contender before ZooKeeper appends its sequence number: ``_c_<guid>-lock-``."""
    return f"{PROTECTED_PREFIX}{guid}-{LOCK_NAME}"


def sequence_number(name: str) -> int | None:
    """A contender's place in the queue, read as go-zookeeper reads it: the digits after its last ``-``.

    None for a child that is no contender (go-zookeeper's lock would fail on it; this one passes it by).
    """
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _setter(event: threading.Event) -> Callable[[Any], None]:
    """A watch callback that sets ``event``, whatever happened."""
    return lambda _watched: event.set()


class LocalQueue:
    """One per key and store: the store's own contenders for a lock queue here first.

    All threads of a store share its sessions; queueing them locally keeps
    one contender per store and key in ZooKeeper, and the lost-event of one
    holder apart from another's.
    """

    def __init__(self) -> None:
        self.mutex = threading.Lock()


class _Requeue(Exception):
    """Our contender node is gone while we waited (its session expired): queue again."""


class _Stop:
    """Inbox marker: released (or abandoned); the monitor ends."""


class _Hold:
    """One acquisition: its contender node, its write of the key, its lost-event, its monitor's inbox.

    Watches and session callbacks are bound to the hold, not the lock: a
    watch left by an earlier acquisition of the same lock must not reach a
    later one.
    """

    def __init__(self, session: Session, node: str, key_version: int, key_mzxid: int) -> None:
        self.session = session
        self.node = node
        self.key_version = key_version
        self.key_mzxid = key_mzxid
        self.lost = threading.Event()
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def on_event(self, event: Any) -> None:
        self.inbox.put(event.type)

    def on_session(self, kind: str) -> None:
        self.inbox.put(kind)


class ZooKeeperLock(Lock):
    """A lock on ``key`` in a ZooKeeper store (see the module docstring for the layout)."""

    def __init__(self, store: ZooKeeperStore, key: str, path: str, value: bytes, ttl: float | None) -> None:
        self._store = store
        self._key = key
        self._path = path
        self._value = value
        self._ttl = ttl
        self._queue = store.local_queue(key)
        self._mutex = threading.Lock()
        self._hold: _Hold | None = None

    # -- acquire -------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> threading.Event:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._queue.mutex.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise CannotLockError(f"lock {self._key!r}: still held after {timeout} s")
        try:
            with translate_errors(f"lock {self._key}"):
                hold = self._contend(deadline, timeout)
        except BaseException:
            self._queue.mutex.release()
            raise
        with self._mutex:
            self._hold = hold
        hold.session.subscribe(hold.on_session)
        threading.Thread(target=self._monitor, args=(hold,), name=f"kvstore-zk-lock:{self._key}", daemon=True).start()
        hold.inbox.put(EventType.CHANGED)  # arm the first watches, from the monitor's thread
        return hold.lost

    def _contend(self, deadline: float | None, timeout: float | None) -> _Hold:
        """Queue a contender node, wait for its turn, write the value: the hold."""
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise CannotLockError(f"lock {self._key!r}: not got within {timeout} s")
            session = self._store.session_for(self._ttl)
            node = self._enqueue(session)
            try:
                self._wait_turn(session, node, deadline, timeout)
                stat = session.set(self._path, self._value, self._store.deadline(), f"lock {self._key}")
                self._store.wrote_through(session)
                return _Hold(session, node, stat.version, stat.mzxid)
            except (_Requeue, NoNodeError):
                # Our node (or the key with it) went meanwhile: queue again, at the end of the line.
                self._withdraw(session, node)
            except BaseException:
                self._withdraw(session, node)
                raise

    def _enqueue(self, session: Session) -> str:
        """Create our contender node below the key (the key and its parents first, if missing): its path."""
        guid = uuid.uuid4().hex
        prefix = child_path(self._path, contender_prefix(guid))
        deadline = self._store.deadline()
        what = f"lock {self._key}"
        for _ in range(20):
            try:
                created = session.call(
                    lambda c: c.create_async(prefix, None, ephemeral=True, sequence=True),
                    deadline,
                    what,
                    idempotent=False,
                )
                return str(created)
            except NoNodeError:
                self._store.make_parents(session, prefix, deadline)
            except OutcomeUnknown:
                # The answer was lost with the connection: did the create land? The guid tells.
                session.wait_connected(deadline, what)
                names = list_children(session, self._path, deadline) or []
                mine = [name for name in names if name.startswith(contender_prefix(guid))]
                if mine:
                    return child_path(self._path, mine[0])
        raise KVStoreError(f"{what}: the key's parents keep vanishing (a concurrent delete_tree?)")

    def _wait_turn(self, session: Session, node: str, deadline: float | None, timeout: float | None) -> None:
        """Return once ``node`` is the lowest contender; meanwhile watch the one just before it."""
        name = node.rsplit("/", 1)[1]
        mine = sequence_number(name) or 0
        what = f"lock {self._key}"
        while True:
            names = list_children(session, self._path, self._store.deadline())
            if names is None or name not in names:
                raise _Requeue(node)
            ahead = [(seq, other) for other in names if (seq := sequence_number(other)) is not None and seq < mine]
            if not ahead:
                return
            _, before = max(ahead)
            # Wait for it to go (or for the connection to drop: kazoo then fires every watch).
            gone = threading.Event()
            if session.exists(child_path(self._path, before), self._store.deadline(), what, _setter(gone)) is None:
                continue
            self._wait(gone, session, deadline, timeout)

    def _wait(self, gone: threading.Event, session: Session, deadline: float | None, timeout: float | None) -> None:
        while not gone.is_set():
            if session.closed:
                raise NotReachableError(f"lock {self._key}: the store is closed")
            if deadline is None:
                gone.wait(_WAITER_TICK)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
            gone.wait(min(remaining, _WAITER_TICK))

    # -- while held ----------------------------------------------------------------------
    def _monitor(self, hold: _Hold) -> None:
        session = hold.session
        try:
            while True:
                items = drain(hold.inbox, _TICK)
                if any(isinstance(item, _Stop) for item in items) or hold.lost.is_set():
                    return
                if EventType.DELETED in items or EXPIRED in items or RENEWED in items:
                    self._lose(hold, tidy_first=True)
                    return
                if session.disconnected_for() > session.timeout:
                    # The server has expired the session by now, for all we can know: say so at once.
                    self._lose(hold, tidy_first=False)
                    return
                recheck = EventType.CHANGED in items or EventType.CREATED in items or RESUMED in items
                if recheck and not self._still_ours(hold):
                    self._lose(hold, tidy_first=True)
                    return
        finally:
            session.unsubscribe(hold.on_session)

    def _still_ours(self, hold: _Hold) -> bool:
        """Re-arm the watches on our node and on the key; False if either is no longer as we left it."""
        session, what = hold.session, f"lock {self._key}"
        try:
            with translate_errors(what):
                # Not longer than the session may live unheard of: the monitor must get back to its clock.
                deadline = time.monotonic() + min(self._store.connection_timeout, session.timeout)
                if session.exists(hold.node, deadline, what, hold.on_event) is None:
                    return False
                key = session.exists(self._path, deadline, what, hold.on_event)
        except KVStoreError:
            return True  # cannot tell now; the session's fate decides
        return key is not None and key.mzxid == hold.key_mzxid

    def _lose(self, hold: _Hold, *, tidy_first: bool) -> None:
        """The lock is lost: make the store agree (our value cleared, our node withdrawn), set the event.

        ``tidy_first`` when the server is there to answer (it told us, or a
        watch fired), so that the event comes when the store already agrees;
        otherwise the event comes at once and the tidying after.
        """
        with self._mutex:
            if self._hold is not hold:
                return
            self._hold = None
        if tidy_first:
            self._tidy(hold)
        else:
            threading.Thread(target=self._tidy, args=(hold,), name="kvstore-zk-lock-tidy", daemon=True).start()
        hold.lost.set()
        self._queue.mutex.release()

    def _tidy(self, hold: _Hold, budget: float | None = None) -> None:
        with contextlib.suppress(KVStoreError, KazooException):
            self._clear_value(hold, budget)
        self._withdraw(hold.session, hold.node, budget)

    # -- release ---------------------------------------------------------------------------
    def release(self) -> None:
        with self._mutex:
            hold, self._hold = self._hold, None
        if hold is None:
            return
        hold.inbox.put(_Stop())
        try:
            with translate_errors(f"unlock {self._key}"):
                self._clear_value(hold)
                self._withdraw(hold.session, hold.node, raise_errors=True)
        finally:
            self._queue.mutex.release()

    def abandon(self) -> None:
        """The store is closing: clear our value if that is quick, and tell the holder the lock is lost.

        The contender node goes with the session.
        """
        with self._mutex:
            hold, self._hold = self._hold, None
        if hold is None:
            return
        hold.inbox.put(_Stop())
        with contextlib.suppress(KVStoreError, KazooException):
            self._clear_value(hold, budget=min(1.0, self._store.connection_timeout))
        hold.lost.set()
        self._queue.mutex.release()

    def _clear_value(self, hold: _Hold, budget: float | None = None) -> None:
        """Make the key a bare parent again, if it still holds our write (anyone else's stays)."""
        deadline = self._store.deadline() if budget is None else time.monotonic() + budget
        with contextlib.suppress(BadVersionError, NoNodeError):
            hold.session.set(self._path, None, deadline, f"unlock {self._key}", version=hold.key_version)
            self._store.wrote_through(hold.session)

    def _withdraw(
        self, session: Session, node: str, budget: float | None = None, *, raise_errors: bool = False
    ) -> None:
        """Delete our contender node (gone already is fine)."""
        deadline = self._store.deadline() if budget is None else time.monotonic() + budget
        try:
            with contextlib.suppress(NoNodeError):
                session.delete(node, deadline, f"unlock {self._key}")
        except (KVStoreError, KazooException):
            if raise_errors:
                raise
