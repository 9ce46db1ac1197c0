"""``zk``: ZooKeeper 3.5+ through kazoo.

``new_store("zk", ["h1:2181", "h2:2181"], config)`` or ``zk://h1:2181,h2:2181/prefix``.

How the contract maps onto znodes
---------------------------------

* A key is the znode ``/<prefix>/<key>``. Parents are created as needed.
* **Real keys and bare parents.** A znode can hold data *and* have children,
  and parents created on the way to a key are not keys. The backend tells
  them apart by ZooKeeper's null data: a parent it creates has *no* data
  (null, not the empty string), while every key holds bytes, ``b""``
  included. ``get``/``exists``/``list`` see only znodes with data. Deleting a
  key that has keys below it keeps its znode as a bare parent (its data set
  to null). Bare parents are not removed when they empty; ``delete_tree``
  removes them. (Docker's libkv creates its parents with empty data; such
  parents show up as keys with value ``b""``, which is what they are to it.)
* **last_index** is the znode's ``mzxid``, the id of the transaction that last
  wrote it. Zxids are unique across the whole ensemble and grow, so the index
  changes on every write and a key deleted and created again never gets an
  old one back (a znode's ``version`` would restart at 0). ZooKeeper can
  only guard a write with a ``version``, so the compare-and-swap reads the
  node, compares ``mzxid`` and writes with that ``version`` as the guard. A
  stale ``previous`` never matches; the one gap left is a delete *and*
  re-create by someone else between that read and that write (one round
  trip), which the version guard cannot see.
* **TTL is a session.** A key written with a ``ttl`` is an ephemeral znode: it
  lives while the writing store's session lives, and the server removes it
  when that session ends: at once on ``close()``, or once the session times
  out after the process died or froze. For "vanishes within ttl" the owning
  session's timeout must not exceed the ttl, so the store keeps one session
  per timeout: the main one (option ``session_timeout``, default 10 s, which
  also carries reads, watches, permanent keys and locks without a ttl) and,
  for a ttl shorter than that, a session whose timeout *is* that ttl (reused
  by every ttl at least as long). The server clamps timeouts into its
  ``[minSessionTimeout, maxSessionTimeout]`` (by default 2 and 20 ticks): a
  ttl below its minimum lives as long as the minimum. Writing the key again
  with a ttl keeps it alive (and moves it to the session of that ttl);
  writing it without one makes it permanent. An ephemeral znode cannot have
  children: a ttl on a key with keys below it, or a key below a ttl key, is
  ``CallNotSupportedError``.
* **Sessions that expire** (the process froze past the timeout, the network
  was gone as long) are replaced by kazoo; the store then re-creates the ttl
  keys it owned in that session, re-arms every watch, and sets the lost-event
  of every lock it held there.
* **Watches** are ZooKeeper's one-shot watches re-armed on every read (see
  ``zookeeper_watch``); they survive reconnects and session expiry.
* **Locks** follow the layout of Docker's libkv (go-zookeeper's lock recipe), so
  Go Swarm managers and kvstore share one leader key: the key is a persistent
  znode, contenders are ephemeral sequential children ``_c_<guid>-lock-<seq>``
  below it, the lowest holds the lock and each waiter watches the one before
  it. The holder writes its value as the key's data, so ``get(key).value``
  names the holder (Swarm's leader election reads it); releasing clears it
  (the key is then a bare parent). See ``zookeeper_lock``.
* **TLS**: ``Config.tls`` connects to the server's ``secureClientPort`` (Netty,
  ``ssl.clientAuth=need``) with kazoo's ``use_ssl``/``ca``/``certfile``/
  ``keyfile``; the server's certificate must name the host dialled (option
  ``tls_check_hostname=false`` turns that check off).
* ``username``/``password`` authenticate with the ``digest`` scheme, and the
  znodes this store creates get an ACL that admits only that user.
* ``Config.connection_timeout`` bounds the first connection and every call;
  a call that cannot get through in time raises ``NotReachableError``. (kazoo
  keeps a request made while disconnected queued until it reconnects: a
  write that timed out may still happen then, as with any network store.)
  Writes whose answer was lost with the connection are retried when that is
  harmless (``put``, ``delete``); for the atomic calls and lock creation the
  store first looks whether the write landed.
* ``is_dir`` changes nothing: any key can have keys below it.

``list`` and ``watch_tree`` read a whole subtree one level per round trip,
every read of a level sent before the first answer is awaited, so a
directory of 10,000 keys costs two round trips rather than Swarm's 10,000.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import random
import ssl
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from kazoo.exceptions import (  # type: ignore[import-untyped]
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.security import make_digest_acl  # type: ignore[import-untyped]

from .. import keys
from ..addresses import parse_host_port
from ..errors import (
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
    NotReachableError,
)
from ..options import positive_number
from ..store import Config, KVPair, Lock, Store, Watch, override
from .tls_files import read_tls_files
from .zookeeper_lock import LocalQueue, ZooKeeperLock
from .zookeeper_session import (
    RENEWED,
    Node,
    OutcomeUnknown,
    Session,
    translate_errors,
    walk,
)
from .zookeeper_watch import KeyWatcher, TreeWatcher, Watcher

T = TypeVar("T")

DEFAULT_PORT = 2181
DEFAULT_SESSION_TIMEOUT = 10.0

_log = logging.getLogger("kvstore.zookeeper")


class ZooKeeperStore(Store):
    """A store in a ZooKeeper ensemble (see the module docstring for the mapping)."""

    #: TTL keys live as long as the writer's session (the conformance suite checks exactly that).
    ttl_bound_to_session: ClassVar[bool] = True

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        if not self.addrs:
            raise InvalidArgumentError("zk needs at least one host:port")
        hosts = []
        for addr in self.addrs:
            host, port = parse_host_port(addr, DEFAULT_PORT)
            hosts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        # One random order per store, shared by its sessions (kazoo must not shuffle each on its
        # own): stores spread over the ensemble, and a store's sessions meet on one server.
        random.shuffle(hosts)
        self._hosts = hosts
        self.connection_timeout = float(self.config.connection_timeout)
        if not self.connection_timeout > 0:
            raise InvalidArgumentError(f"connection_timeout must be positive, not {self.connection_timeout!r}")
        options = self.config.options
        self.session_timeout = positive_number("zk", options, "session_timeout", DEFAULT_SESSION_TIMEOUT)
        self._tls = _tls_arguments(self.config, options)
        self._auth: tuple[str, str] | None = None
        self._acl: list[Any] | None = None
        if self.config.username is not None or self.config.password is not None:
            user, password = self.config.username or "", self.config.password or ""
            self._auth = (user, password)
            self._acl = [make_digest_acl(user, password, all=True)]
        self._mutex = threading.RLock()
        self._closed = False
        #: A write went through a session other than the main one since the last read:
        #: the next read on the main session syncs first (read-your-writes across sessions).
        self._fence = False
        #: ttl keys this store wrote, by key: (the session that owns them, their value).
        self._owned: dict[str, tuple[Session, bytes]] = {}
        self._watchers: set[Watcher[Any]] = set()
        self._locks: weakref.WeakSet[ZooKeeperLock] = weakref.WeakSet()
        self._queues: weakref.WeakValueDictionary[str, LocalQueue] = weakref.WeakValueDictionary()
        self._main = self._open_session(self.session_timeout, "main")
        self._sessions: dict[float, Session] = {self.session_timeout: self._main}

    # -- sessions -----------------------------------------------------------------------
    def _open_session(self, timeout: float, label: str) -> Session:
        session = Session(self._hosts, timeout, tls=self._tls, auth=self._auth, default_acl=self._acl, label=label)
        session.start(self.deadline())
        session.subscribe(lambda kind: self._on_session(session, kind))
        return session

    def session_for(self, ttl: float | None) -> Session:
        """The session whose timeout is the longest not above ``ttl`` (a new one if none is)."""
        if ttl is None:
            return self._main
        with self._mutex:
            if self._closed:
                raise NotReachableError("the store is closed")
            fitting = [timeout for timeout in self._sessions if timeout <= ttl]
            if fitting:
                return self._sessions[max(fitting)]
            session = self._open_session(ttl, f"ttl={ttl:g}")
            self._sessions[ttl] = session
            return session

    @property
    def sessions(self) -> list[Session]:
        """The store's live sessions, the main one first (for tests and diagnostics)."""
        with self._mutex:
            return sorted(self._sessions.values(), key=lambda s: s is not self._main)

    def _on_session(self, session: Session, kind: str) -> None:
        """A session was replaced after expiring: put back the ttl keys it owned.

        In a thread of its own: this runs in kazoo's connection thread, which must not block.
        """
        if kind == RENEWED and not self._closed:
            threading.Thread(
                target=self._recreate_owned, args=(session,), name="kvstore-zk-recreate", daemon=True
            ).start()

    def _recreate_owned(self, session: Session) -> None:
        with self._mutex:
            owned = [(key, value) for key, (owner, value) in self._owned.items() if owner is session]
        for key, value in owned:
            path = self._path(key)
            try:
                with translate_errors(f"re-create {key}"):
                    node = self._create(session, path, value, ephemeral=True, deadline=self.deadline())
                    if node is None:  # written meanwhile: ours only if this session owns it now
                        now = session.get(path, self.deadline(), key)
                        if now is None or now.owner != session.current_session_id():
                            self._disown(key, session)
            except KeyNotFoundError:
                self._disown(key, session)
            except KVStoreError as exc:
                _log.warning("zk: could not re-create ttl key %s after session expiry: %s", key, exc)

    def deadline(self) -> float:
        """When a call begun now must have got through (``connection_timeout`` from now)."""
        return time.monotonic() + self.connection_timeout

    def _reader(self) -> Session:
        """The main session, synced first if this store wrote through another one since."""
        if self._fence:
            self._fence = False
            self._main.client.sync_async("/")  # same session: the read after it waits for it
        return self._main

    def wrote_through(self, session: Session) -> None:
        """A write went through ``session``: if that is not the main one, the next read syncs first."""
        if session is not self._main:
            self._fence = True

    # -- paths and ownership ------------------------------------------------------------
    def _path(self, key: str) -> str:
        return "/" + keys.join(self.prefix, key)

    def _key_of(self, path: str) -> str:
        return keys.strip_prefix(self.prefix, path[1:])

    def _own(self, key: str, session: Session, value: bytes) -> None:
        with self._mutex:
            self._owned[key] = (session, value)

    def _disown(self, key: str, session: Session | None = None) -> None:
        with self._mutex:
            entry = self._owned.get(key)
            if entry is not None and (session is None or entry[0] is session):
                del self._owned[key]

    def _disown_tree(self, directory: str) -> None:
        with self._mutex:
            for key in [k for k in self._owned if not directory or k == directory or keys.is_below(directory, k)]:
                del self._owned[key]

    # -- znode operations shared by the calls ---------------------------------------------
    def make_parents(self, session: Session, path: str, deadline: float) -> None:
        """Create every missing ancestor of ``path`` as a bare parent (null data), in one round trip.

        With :meth:`session_for`, :meth:`deadline`, :meth:`wrote_through` and
        :meth:`local_queue`, this is what the store's locks use of it.
        """
        parts = path.strip("/").split("/")[:-1]
        pending = [session.client.create_async("/" + "/".join(parts[: i + 1]), None) for i in range(len(parts))]
        for result in pending:
            with contextlib.suppress(NodeExistsError, NoNodeError):  # NoNode: raced a delete_tree; retried
                session.wait(result, deadline)

    def _create(
        self,
        session: Session,
        path: str,
        value: bytes,
        *,
        ephemeral: bool,
        deadline: float,
        idempotent: bool = True,
    ) -> Node | None:
        """Create the znode (and its parents); None if it exists already."""

        def attempt() -> Node | None:
            for _ in range(20):
                try:
                    _, stat = session.wait(
                        session.client.create_async(path, value, ephemeral=ephemeral, include_data=True),
                        deadline,
                    )
                    return Node.of(value, stat)
                except NodeExistsError:
                    return None
                except NoNodeError:
                    self.make_parents(session, path, deadline)
            raise KVStoreError(f"{path}: its parents keep vanishing (a concurrent delete_tree?)")

        node = session.run(attempt, deadline, f"create {path}", idempotent=idempotent)
        self.wrote_through(session)
        return node

    def _replace(
        self, session: Session, path: str, value: bytes, version: int, *, ephemeral: bool, deadline: float
    ) -> Node:
        """Swap the znode at ``version`` for a new one of the other kind (ephemeral/persistent), atomically.

        The trailing set_data adds nothing but its answer: the new node's stat.
        """

        def attempt() -> Node:
            transaction = session.client.transaction()
            transaction.delete(path, version)
            transaction.create(path, value, ephemeral=ephemeral)
            transaction.set_data(path, value)
            results = session.wait(transaction.commit_async(), deadline)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, (RolledBackError, RuntimeInconsistency)):
                    raise result
            return Node.of(value, results[2])

        node = session.run(attempt, deadline, f"replace {path}", idempotent=False)
        self.wrote_through(session)
        return node

    def _read(self, session: Session, path: str, deadline: float) -> Node | None:
        """The znode at ``path`` (None if absent; a bare parent has ``data`` None)."""
        return session.get(path, deadline, f"get {path}")

    def _landed(
        self, session: Session, path: str, value: bytes, before: int, *, ephemeral: bool, deadline: float
    ) -> Node | None:
        """After a write whose answer was lost: the node if it now holds what that write wrote.

        "Ours" means: written after ``before`` (the last zxid the session had
        seen when it sent the write), holding our value, and for an ephemeral
        node, owned by our session. A concurrent identical write would pass
        too, and would have had the same effect.
        """
        session.wait_connected(deadline, f"write {path}")
        node = self._read(session, path, deadline)
        if node is None or node.data != value or node.mzxid <= before:
            return None
        if ephemeral and node.owner != session.current_session_id():
            return None
        return node

    # -- the contract -----------------------------------------------------------------------
    @override
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        # is_dir needs nothing: any znode can have children.
        with translate_errors(f"put {key}"):
            session = self.session_for(ttl)
            path = self._path(key)
            deadline = self.deadline()
            if ttl is None:
                self._put_permanent(session, path, value, deadline)
                self._disown(key)
            else:
                self._put_ephemeral(session, key, path, value, deadline)
                self._own(key, session, value)

    def _put_permanent(self, session: Session, path: str, value: bytes, deadline: float) -> None:
        """Write first (one round trip for the usual overwrite); a ttl key is then made permanent."""
        while True:
            try:
                stat = session.set(path, value, deadline, f"put {path}")
            except NoNodeError:
                if self._create(session, path, value, ephemeral=False, deadline=deadline) is None:
                    continue  # created meanwhile by someone else: overwrite it
                return
            if stat.ephemeralOwner == 0:
                return
            # It was a ttl key (an ephemeral node, which has no children): swap it for a permanent one.
            try:
                self._replace(session, path, value, stat.version, ephemeral=False, deadline=deadline)
            except (BadVersionError, NoNodeError, OutcomeUnknown):
                continue  # changed meanwhile: look again
            return

    def _put_ephemeral(self, session: Session, key: str, path: str, value: bytes, deadline: float) -> None:
        """Refresh a ttl key this session owns in one write; otherwise look before writing.

        Looking first means a key that cannot become ephemeral (it has keys
        below it) is refused untouched.
        """
        owned = self._owned.get(key)
        if owned is not None and owned[0] is session:
            try:
                stat = session.set(path, value, deadline, f"put {key}")
                if stat.ephemeralOwner == session.current_session_id():
                    self.wrote_through(session)
                    return
            except NoNodeError:
                pass
        while True:
            node = self._read(session, path, deadline)
            try:
                if node is None:
                    if self._create(session, path, value, ephemeral=True, deadline=deadline) is not None:
                        return
                elif node.owner == session.current_session_id():
                    session.set(path, value, deadline, f"put {key}", version=node.version)
                    self.wrote_through(session)
                    return
                else:
                    self._replace(session, path, value, node.version, ephemeral=True, deadline=deadline)
                    return
            except (BadVersionError, NoNodeError, OutcomeUnknown):
                continue  # changed meanwhile: look again

    @override
    def _get(self, key: str) -> KVPair:
        with translate_errors(f"get {key}"):
            node = self._read(self._reader(), self._path(key), self.deadline())
        if node is None or node.data is None:
            raise KeyNotFoundError(f"key not found: {key}")
        return KVPair(key, node.data, node.mzxid)

    @override
    def _delete(self, key: str) -> None:
        with translate_errors(f"delete {key}"):
            path = self._path(key)
            deadline = self.deadline()
            while True:
                try:
                    self._main.delete(path, deadline, f"delete {key}")
                except NoNodeError:
                    pass
                except NotEmptyError:
                    # Keys live below it: it stays as their bare parent.
                    node = self._read(self._main, path, deadline)
                    if node is not None and node.data is not None:
                        try:
                            self._main.set(path, None, deadline, key, version=node.version)
                        except (BadVersionError, NoNodeError):
                            continue
                self._disown(key)
                return

    @override
    def _list(self, directory: str) -> builtins.list[KVPair]:
        with translate_errors(f"list {directory or '/'}"):
            session = self._reader()
            root = self._path(directory)
            deadline = self.deadline()
            found = session.run(lambda: walk(session, root, deadline), deadline, f"list {directory}")
            pairs = []
            if found is not None:
                nodes, _ = found
                pairs = [KVPair(self._key_of(p), n.data, n.mzxid) for p, n in nodes.items() if n.data is not None]
            if not pairs:
                itself = None if not directory else self._read(session, root, deadline)
                if itself is None or itself.data is None:
                    raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return sorted(pairs, key=lambda pair: pair.key)

    @override
    def _delete_tree(self, directory: str) -> None:
        with translate_errors(f"delete_tree {directory or '/'}"):
            root = self._path(directory)
            deadline = self.deadline()
            session = self._main
            for _ in range(20):
                found = session.run(lambda: walk(session, root, deadline), deadline, f"delete_tree {directory}")
                if found is None:
                    break
                paths = list(found[0])
                if root != "/":
                    paths.append(root)
                if self._delete_deepest_first(session, paths, deadline):
                    break
            else:
                raise KVStoreError(f"delete_tree {directory}: keys keep appearing below it")
            self._disown_tree(directory)

    def _delete_deepest_first(self, session: Session, paths: list[str], deadline: float) -> bool:
        """Delete ``paths`` a level at a time, deepest first; False if a node gained children meanwhile."""
        by_depth: dict[int, list[str]] = {}
        for path in paths:
            by_depth.setdefault(path.count("/"), []).append(path)

        def attempt() -> bool:
            complete = True
            for depth in sorted(by_depth, reverse=True):
                pending = [session.client.delete_async(p) for p in by_depth[depth]]
                for result in pending:
                    try:
                        session.wait(result, deadline)
                    except NoNodeError:
                        pass
                    except NotEmptyError:
                        complete = False
            return complete

        return session.run(attempt, deadline, "delete_tree")

    @override
    def _watch(self, key: str) -> Watch[KVPair]:
        watcher = KeyWatcher(self._reader(), self.connection_timeout, key, self._path(key))
        return self._start_watcher(watcher)

    @override
    def _watch_tree(self, directory: str) -> Watch[builtins.list[KVPair]]:
        watcher = TreeWatcher(self._reader(), self.connection_timeout, directory, self._path(directory), self._key_of)
        return self._start_watcher(watcher)

    def _start_watcher(self, watcher: Watcher[T]) -> Watch[T]:
        with self._mutex:
            if self._closed:
                raise NotReachableError("the store is closed")
            self._watchers.add(watcher)

        def ended() -> None:
            with self._mutex:
                self._watchers.discard(watcher)

        watcher.on_end = ended
        try:
            return watcher.start()
        except BaseException:
            ended()
            raise

    @override
    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        with translate_errors(f"atomic_put {key}"):
            session = self.session_for(ttl)
            path = self._path(key)
            deadline = self.deadline()
            ephemeral = ttl is not None
            node = (
                self._create_only(session, key, path, value, ephemeral, deadline)
                if previous is None
                else self._swap(session, key, path, value, previous, ephemeral, deadline)
            )
            if ephemeral:
                self._own(key, session, value)
            else:
                self._disown(key)
            return KVPair(key, value, node.mzxid)

    def _create_only(
        self, session: Session, key: str, path: str, value: bytes, ephemeral: bool, deadline: float
    ) -> Node:
        while True:
            before = session.client.last_zxid
            try:
                node = self._create(session, path, value, ephemeral=ephemeral, deadline=deadline, idempotent=False)
            except OutcomeUnknown:
                node = self._landed(session, path, value, before, ephemeral=ephemeral, deadline=deadline)
                if node is not None:
                    return node
                continue  # it did not land: try again (and meet whoever got there)
            if node is not None:
                return node
            existing = self._read(session, path, deadline)
            if existing is None:
                continue  # deleted meanwhile: try again
            if existing.data is not None:
                raise KeyExistsError(f"key exists: {key}")
            # A bare parent is no key: claim it.
            try:
                if ephemeral:
                    return self._replace(session, path, value, existing.version, ephemeral=True, deadline=deadline)
                stat = session.set(path, value, deadline, key, version=existing.version, idempotent=False)
                self.wrote_through(session)
                return Node.of(value, stat)
            except (BadVersionError, NoNodeError, OutcomeUnknown):
                continue

    def _still_at(self, session: Session, key: str, path: str, previous: KVPair, deadline: float) -> Node:
        """The key's znode, if it is still at ``previous``; else why not, as the contract's error."""
        current = self._read(session, path, deadline)
        if current is None or current.data is None:
            raise KeyNotFoundError(f"key not found: {key}")
        if current.mzxid != previous.last_index:
            raise KeyModifiedError(f"key modified: {key}")
        return current

    def _swap(
        self,
        session: Session,
        key: str,
        path: str,
        value: bytes,
        previous: KVPair,
        ephemeral: bool,
        deadline: float,
    ) -> Node:
        while True:
            current = self._still_at(session, key, path, previous, deadline)
            before = session.client.last_zxid
            same_kind = current.owner == 0 if not ephemeral else current.owner == session.current_session_id()
            try:
                if same_kind:
                    stat = session.set(path, value, deadline, key, version=current.version, idempotent=False)
                    self.wrote_through(session)
                    return Node.of(value, stat)
                return self._replace(session, path, value, current.version, ephemeral=ephemeral, deadline=deadline)
            except (BadVersionError, NoNodeError) as exc:
                raise _guard_failed(exc, key) from None
            except OutcomeUnknown:
                node = self._landed(session, path, value, before, ephemeral=ephemeral, deadline=deadline)
                if node is not None:
                    return node
                # Not ours: the loop reads again and reports what happened instead.

    @override
    def _atomic_delete(self, key: str, previous: KVPair) -> None:
        with translate_errors(f"atomic_delete {key}"):
            session = self._reader()
            path = self._path(key)
            deadline = self.deadline()
            while True:
                current = self._still_at(session, key, path, previous, deadline)
                try:
                    try:
                        session.delete(path, deadline, key, version=current.version, idempotent=False)
                    except NotEmptyError:  # keys below it: keep the znode as their bare parent
                        session.set(path, None, deadline, key, version=current.version, idempotent=False)
                except (BadVersionError, NoNodeError) as exc:
                    raise _guard_failed(exc, key) from None
                except OutcomeUnknown:
                    after = self._read(session, path, deadline)
                    if after is not None and after.data is not None and after.mzxid == current.mzxid:
                        continue  # it did not happen: try again
                    # Gone (or no longer this key): the delete went through, ours or not.
                self._disown(key)
                return

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        lock = ZooKeeperLock(self, key, self._path(key), value, ttl)
        with self._mutex:
            self._locks.add(lock)
        return lock

    def local_queue(self, key: str) -> LocalQueue:
        """The queue this store's own contenders for the lock at ``key`` wait in (one per key, shared)."""
        with self._mutex:
            queue = self._queues.get(key)
            if queue is None:
                queue = LocalQueue()
                self._queues[key] = queue
            return queue

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            watchers = list(self._watchers)
            locks = list(self._locks)
            sessions = self.sessions
        for watcher in watchers:
            watcher.watch.close()
        for lock in locks:
            lock.abandon()
        for session in reversed(sessions):  # the main one last
            session.close()

    @property
    def closed(self) -> bool:
        return self._closed


def _guard_failed(exc: BadVersionError | NoNodeError, key: str) -> KVStoreError:
    """A write guarded by the version read failed: the contract's error for why."""
    if isinstance(exc, BadVersionError):
        return KeyModifiedError(f"key modified: {key}")
    return KeyNotFoundError(f"key not found: {key}")


def _tls_arguments(config: Config, options: dict[str, str]) -> dict[str, Any]:
    """kazoo's TLS arguments for ``config.tls``, after checking the files load (a clear error now,
    rather than kazoo retrying a connection that can never work)."""
    tls = config.tls
    if tls is None:
        return {}
    read_tls_files("zk", tls, key_may_be_in_cert=True)
    cert, key, ca = tls.cert_file, tls.key_file, tls.ca_cert_file
    check_hostname = options.get("tls_check_hostname", "true").lower() not in ("false", "0", "no")
    try:  # the files are PEM; do they load, and does the key fit the certificate?
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            context.load_verify_locations(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"zk TLS files unusable: {exc}") from None
    return {
        "use_ssl": True,
        "ca": ca,
        "certfile": cert,
        # kazoo loads a client certificate only with both; a cert file may hold its key too.
        "keyfile": key or cert,
        "verify_certs": True,
        "check_hostname": check_hostname,
    }
