"""``watch`` and ``watch_tree`` for the ``zk`` backend, on ZooKeeper's one-shot watches.

A ZooKeeper watch fires once and carries no data, and kazoo forgets every
watch when its connection drops. So each kvstore watch keeps its own
thread and a mirror of what it watches: a watch event makes it re-read the
node it concerns (the re-read leaves the next watch, atomically with the
read, so no change can slip between two watches), and a reconnection makes
it re-read everything and re-arm every watch. It then emits the new state
only if it differs from the last one emitted, so a reconnect neither loses
nor repeats a state.

``watch_tree`` sees any depth: every node below the directory carries a
data watch (value changes, deletion) and a child watch (new children, even
under a key that had none), and the directory itself an existence watch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kazoo.exceptions import NoNodeError  # type: ignore[import-untyped]
from kazoo.protocol.states import EventType  # type: ignore[import-untyped]

from ..errors import KeyNotFoundError, KVStoreError, NotReachableError
from ..store import KVPair, Watch
from .zookeeper_session import (
    RENEWED,
    RESUMED,
    Node,
    OutcomeUnknown,
    Session,
    child_path,
    drain,
    kvstore_error,
    parent_of,
    read_nodes,
    translate_errors,
    walk,
)

T = TypeVar("T")

#: How long the watch thread sleeps without news at most: bounds how late it
#: notices that the store has been gone for longer than the connection timeout.
_TICK = 0.25


def _kind(event: object) -> Any:
    """The type of a kazoo ``WatchedEvent`` (``CREATED``, ``DELETED``, ``CHANGED``, ``CHILD``, ``NONE``)."""
    return getattr(event, "type", None)


_DATA_EVENTS = (EventType.CHANGED, EventType.CREATED, EventType.DELETED)


class _Close:
    """Inbox marker: the reader closed the watch."""


class _Resync:
    """Inbox marker: the connection is back; re-read everything and re-arm every watch."""


class Watcher(Generic[T]):
    """The thread behind one :class:`Watch`: reads kazoo's events from an inbox, emits states."""

    def __init__(self, session: Session, connection_timeout: float, name: str) -> None:
        self.session = session
        self.connection_timeout = connection_timeout
        self.name = name
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.watch: Watch[T] = Watch(on_close=lambda: self.inbox.put(_Close()))
        self.on_end: Callable[[], None] = lambda: None
        self._needs_resync = False

    # -- called from kazoo's threads: hand over only ---------------------------------
    def on_event(self, event: Any) -> None:
        """kazoo's watch callback (one bound method per watch, so kazoo keeps one copy per node)."""
        self.inbox.put(event)

    def on_session(self, kind: str) -> None:
        if kind in (RESUMED, RENEWED):
            self.inbox.put(_Resync())

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> Watch[T]:
        """Read the first state in the caller's thread (its errors are the caller's), then run."""
        self.session.subscribe(self.on_session)
        try:
            with translate_errors(self.name):
                self.resync()
        except BaseException:
            self.session.unsubscribe(self.on_session)
            raise
        threading.Thread(target=self._run, name=f"kvstore-zk-{self.name}", daemon=True).start()
        return self.watch

    def deadline(self) -> float:
        return time.monotonic() + self.connection_timeout

    def _run(self) -> None:
        try:
            self._loop()
        except KVStoreError as exc:
            self.watch.fail(exc)
        except Exception as exc:  # noqa: BLE001 - translated: no client exception reaches the reader
            self.watch.fail(kvstore_error(exc, self.name) or KVStoreError(f"{self.name}: {exc!r}"))
        finally:
            self.session.unsubscribe(self.on_session)
            self.on_end()

    def _loop(self) -> None:
        while True:
            batch = drain(self.inbox, _TICK)
            if self.ended or self.watch.closed or any(isinstance(item, _Close) for item in batch):
                return
            events = [item for item in batch if not isinstance(item, _Resync)]
            if len(events) != len(batch) or any(_kind(e) == EventType.NONE for e in events):
                # kazoo dropped every watch with the connection: all must be re-armed.
                self._needs_resync = True
            if not self.session.connected:
                self._check_outage(events)
                continue
            if events or self._needs_resync:
                self._catch_up(events)
            if self.ended:
                return

    def _check_outage(self, events: list[object]) -> None:
        """Disconnected: give up once that lasted past the connection timeout; else re-read once back."""
        if self.session.disconnected_for() > self.connection_timeout:
            raise NotReachableError(
                f"{self.name}: ZooKeeper at {self.session.hosts} unreachable for more than {self.connection_timeout} s"
            )
        if events:
            self._needs_resync = True

    def _catch_up(self, events: list[object]) -> None:
        """Connected, with news: re-read everything if watches were lost, else handle the events."""
        try:
            if self._needs_resync:
                self._needs_resync = False
                self.resync()
            else:
                self.handle([e for e in events if _kind(e) != EventType.NONE])
        except (NotReachableError, OutcomeUnknown):
            self._needs_resync = True  # the connection dropped meanwhile: start over once back

    # -- what a kind of watch defines ---------------------------------------------------
    ended = False

    def resync(self) -> None:
        """Re-read everything (re-arming every watch) and emit the state if it changed."""
        raise NotImplementedError

    def handle(self, events: list[Any]) -> None:
        """React to watch events (none of them a connection event)."""
        raise NotImplementedError


class KeyWatcher(Watcher[KVPair]):
    """``watch(key)``: the value first, then every change; ends when the key is deleted.

    The common case takes a short cut: a watch event, while connected, is
    answered from kazoo's own threads by an asynchronous re-read (which
    re-arms the watch) whose answer is emitted when it arrives, without
    waking this watch's thread. That keeps delivery as quick as kazoo's own
    watch idiom. Reconnections, errors and closing still go through the thread.
    """

    def __init__(self, session: Session, connection_timeout: float, key: str, path: str) -> None:
        super().__init__(session, connection_timeout, f"watch({key})")
        self.key = key
        self.path = path
        self.last: KVPair | None = None
        self._emitting = threading.Lock()

    def on_event(self, event: Any) -> None:
        if (
            _kind(event) in _DATA_EVENTS
            and not self._needs_resync
            and not self.ended
            and not self.watch.closed
            and self.session.connected
        ):
            try:
                pending = self.session.client.get_async(self.path, self.on_event)
            except Exception:  # noqa: BLE001 - in kazoo's thread, which must not die; ours sorts it out
                self.inbox.put(event)
                return
            pending.rawlink(self._answered)
            return
        self.inbox.put(event)

    def _answered(self, pending: Any) -> None:
        """The re-read's answer (in kazoo's completion thread)."""
        try:
            data, stat = pending.get(block=False)
        except NoNodeError:
            data, stat = None, None
        except Exception:  # noqa: BLE001 - in kazoo's thread, which must not die; ours re-reads
            self.inbox.put(_Resync())
            return
        self._apply(data, stat)

    def _apply(self, data: bytes | None, stat: Any) -> None:
        """Emit what a read found, unless a newer state has been emitted already."""
        with self._emitting:
            if self.ended:
                return
            if data is None:  # gone, or only a bare parent now
                if self.last is None:
                    raise KeyNotFoundError(f"watch: key not found: {self.key}")
                self.ended = True
                self.watch.finish()
                return
            # zxids only grow, also across a delete and re-create: a smaller one is an older read.
            if self.last is None or stat.mzxid > self.last.last_index:
                self.last = KVPair(self.key, data, stat.mzxid)
                self.watch.emit(self.last)

    def resync(self) -> None:
        try:
            data, stat = self.session.call(lambda c: c.get_async(self.path, self.on_event), self.deadline(), self.name)
        except NoNodeError:
            data, stat = None, None
        self._apply(data, stat)

    def handle(self, events: list[Any]) -> None:
        # Deleted, changed or (after a delete and an atomic re-create) created again:
        # whatever it was, the key as it is now tells.
        if events:
            self.resync()


class TreeWatcher(Watcher[list[KVPair]]):
    """``watch_tree(directory)``: the sorted keys below it, again after every change at any depth."""

    def __init__(
        self,
        session: Session,
        connection_timeout: float,
        directory: str,
        root: str,
        key_of: Callable[[str], str],
    ) -> None:
        super().__init__(session, connection_timeout, f"watch_tree({directory or '/'})")
        self.root = root
        self.key_of = key_of
        #: Every znode below the root (bare parents too), and the child names of each listed node.
        self.nodes: dict[str, Node] = {}
        self.kids: dict[str, set[str]] = {}
        self.last: list[KVPair] | None = None

    def _emit_if_changed(self) -> None:
        pairs = sorted(
            (
                KVPair(self.key_of(path), node.data, node.mzxid)
                for path, node in self.nodes.items()
                if node.data is not None
            ),
            key=lambda pair: pair.key,
        )
        if pairs != self.last:
            self.last = pairs
            self.watch.emit(pairs)

    def resync(self) -> None:
        def load() -> None:
            deadline = self.deadline()
            # An existence watch on the directory tells when it is created (or deleted).
            exists = self.session.wait(self.session.client.exists_async(self.root, self.on_event), deadline)
            found = None if exists is None else walk(self.session, self.root, deadline, self.on_event, every_node=True)
            self.nodes, self.kids = {}, {}
            if found is not None:
                self._merge(*found)

        self.session.run(load, self.deadline(), self.name)
        self._emit_if_changed()

    def handle(self, events: list[Any]) -> None:
        seen: set[tuple[Any, str]] = set()
        for event in events:
            if (event.type, event.path) in seen:
                continue  # a deletion fires both the data and the child watch
            seen.add((event.type, event.path))
            if event.path == self.root:
                if event.type == EventType.CHILD:
                    self._refresh_children(self.root)
                elif event.type in (EventType.CREATED, EventType.DELETED):
                    self.resync()
                    return
            elif event.type == EventType.DELETED:
                # Gone, or gone and back already: a child event of its parent handled in this
                # same batch may have seen it there still, so only a fresh read can tell.
                self._reload(event.path)
            elif event.path not in self.nodes:
                continue  # a watch left on a node since dropped
            elif event.type == EventType.CHANGED:
                self._refresh_node(event.path)
            elif event.type == EventType.CHILD:
                self._refresh_children(event.path)
        self._emit_if_changed()

    def _reload(self, path: str) -> None:
        """Replace what the mirror holds of ``path`` and below with a fresh read (re-arming its watches)."""
        nodes, kids = self.session.run(
            lambda: read_nodes(self.session, [path], self.deadline(), self.on_event, every_node=True),
            self.deadline(),
            self.name,
        )
        self._drop(path)
        parent = parent_of(path)
        if path in nodes and (parent == self.root or parent in self.nodes):
            self._merge(nodes, kids)
            self.kids.setdefault(parent, set()).add(path.rsplit("/", 1)[1])

    def _refresh_node(self, path: str) -> None:
        try:
            data, stat = self.session.call(lambda c: c.get_async(path, self.on_event), self.deadline(), self.name)
        except NoNodeError:
            self._drop(path)
            return
        self.nodes[path] = Node.of(data, stat)

    def _refresh_children(self, path: str) -> None:
        def read() -> list[str] | None:
            try:
                names = self.session.wait(self.session.client.get_children_async(path, self.on_event), self.deadline())
            except NoNodeError:
                return None
            return [n for n in names if not (path == "/" and n == "zookeeper")]

        names = self.session.run(read, self.deadline(), self.name)
        if names is None:
            if path == self.root:
                self.resync()
            else:
                self._drop(path)
            return
        known = self.kids.get(path, set())
        current = set(names)
        for gone in known - current:
            self._drop(child_path(path, gone))
        added = [child_path(path, name) for name in sorted(current - known)]
        if added:
            nodes, kids = self.session.run(
                lambda: read_nodes(self.session, added, self.deadline(), self.on_event, every_node=True),
                self.deadline(),
                self.name,
            )
            self._merge(nodes, kids)
        self.kids[path] = {name for name in current if child_path(path, name) in self.nodes}

    def _merge(self, nodes: dict[str, Node], kids: dict[str, set[str]]) -> None:
        """Take in a fresh read. A child named in a listing but gone before its read is not
        recorded, so that its return (a new child event) counts as new."""
        self.nodes.update(nodes)
        for parent, names in kids.items():
            self.kids[parent] = {name for name in names if child_path(parent, name) in self.nodes}

    def _drop(self, path: str) -> None:
        """Forget ``path`` and everything below it (known through ``kids``, so no scan of the mirror)."""
        stack = [path]
        while stack:
            current = stack.pop()
            self.nodes.pop(current, None)
            stack.extend(child_path(current, name) for name in self.kids.pop(current, ()))
        siblings = self.kids.get(parent_of(path))
        if siblings is not None:
            siblings.discard(path.rsplit("/", 1)[1])
