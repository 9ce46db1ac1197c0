"""One ZooKeeper session as the ``zk`` backend uses it, and the helpers around kazoo.

A :class:`Session` is one :class:`kazoo.client.KazooClient`: one connection,
one ZooKeeper session with one timeout. It adds what the store needs on top:

* connecting within a deadline, with the reason of the last failed attempt
  (refused, TLS alert, certificate not trusted...) in the error, because kazoo
  itself retries silently and would otherwise look like a hang;
* calls bounded by a deadline that ride out a dropped connection (kazoo
  queues requests while it reconnects, and fails the ones in flight with
  ``ConnectionLoss``; idempotent calls are simply sent again);
* its state (connected, for how long disconnected, which session) and a
  fan-out of state changes to the watches and locks that depend on it.

Everything here speaks kazoo; :func:`translate_errors` is the one place that
turns kazoo's exceptions into kvstore's, so none leaks out of the backend.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kazoo.client import KazooClient, KazooState  # type: ignore[import-untyped]
from kazoo.exceptions import (  # type: ignore[import-untyped]
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    InvalidACLError,
    KazooException,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    RequestTimeoutError,
    SessionExpiredError,
    SessionMovedError,
    ThrottledOpError,
)
from kazoo.handlers.threading import KazooTimeoutError  # type: ignore[import-untyped]
from kazoo.retry import KazooRetry  # type: ignore[import-untyped]

from ..errors import (
    CallNotSupportedError,
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
    NotReachableError,
)

T = TypeVar("T")

#: Failures after which the same request may simply be sent again once the
#: session is connected (for idempotent requests).
RETRYABLE = (
    ConnectionLoss,
    SessionExpiredError,
    OperationTimeoutError,
    RequestTimeoutError,
    SessionMovedError,
    ThrottledOpError,
)

#: Session states, as the store's subscribers hear of them.
SUSPENDED = "suspended"  # connection lost; the session may well survive
EXPIRED = "expired"  # the session is gone (its ephemeral nodes with it)
RESUMED = "resumed"  # connected again, same session: ephemerals kept, watches need re-arming
RENEWED = "renewed"  # connected with a new session (the first one, or after expiry)

_log = logging.getLogger("kvstore.zookeeper")
_kazoo_log = logging.getLogger("kvstore.zookeeper.kazoo")
_names = itertools.count(1)


class OutcomeUnknown(Exception):
    """A non-idempotent request was in flight when the connection dropped.

    It may or may not have been applied; the caller looks before trying again.
    Never leaves the backend.
    """


@dataclass(frozen=True, slots=True)
class Node:
    """What the backend keeps of a znode: its data (None for a bare parent) and the stat fields it uses."""

    data: bytes | None
    mzxid: int
    czxid: int
    version: int
    owner: int
    children: int

    @classmethod
    def of(cls, data: bytes | None, stat: Any) -> Node:
        return cls(data, stat.mzxid, stat.czxid, stat.version, stat.ephemeralOwner, stat.numChildren)


#: kazoo's exceptions (and the socket's) in the order they are tested (a subclass before its base):
#: each with the kvstore error it becomes, made from the call's description and the exception.
_MEANINGS: tuple[tuple[tuple[type[BaseException], ...], Callable[[str, BaseException], KVStoreError]], ...] = (
    ((NoNodeError,), lambda what, _exc: KeyNotFoundError(f"{what}: not found")),
    ((NodeExistsError,), lambda what, _exc: KeyExistsError(f"{what}: already exists")),
    ((BadVersionError,), lambda what, _exc: KeyModifiedError(f"{what}: modified meanwhile")),
    (
        (NoChildrenForEphemeralsError,),
        lambda what, _exc: CallNotSupportedError(
            f"{what}: ZooKeeper cannot keep keys below a key written with a ttl (an ephemeral node)"
        ),
    ),
    (
        (NotEmptyError,),
        lambda what, _exc: CallNotSupportedError(
            f"{what}: ZooKeeper cannot give a ttl to a key that has keys below it (an ephemeral node has no children)"
        ),
    ),
    (
        (BadArgumentsError, ValueError),
        lambda what, exc: InvalidArgumentError(f"{what}: ZooKeeper rejected the key or value ({exc!r})"),
    ),
    (
        (NoAuthError, InvalidACLError),
        lambda what, exc: KVStoreError(f"{what}: permission denied by ZooKeeper ({type(exc).__name__})"),
    ),
    ((ConnectionClosedError,), lambda what, _exc: NotReachableError(f"{what}: the store is closed")),
    (
        (*RETRYABLE, AuthFailedError, KazooTimeoutError, OutcomeUnknown, OSError),
        lambda what, exc: NotReachableError(f"{what}: ZooKeeper not reachable ({exc!r})"),
    ),
    ((KazooException,), lambda what, exc: KVStoreError(f"{what}: ZooKeeper error {exc!r}")),
)


def kvstore_error(exc: BaseException, what: str) -> KVStoreError | None:
    """The kvstore error for a kazoo (or socket) exception; None for anything else.

    ``what`` names the call and key for the message. The backend raises the
    precise kvstore errors itself where it knows the meaning; this is the net
    under it, so that no client exception ever reaches a caller.
    """
    if isinstance(exc, KVStoreError):
        return exc
    for kinds, meaning in _MEANINGS:
        if isinstance(exc, kinds):
            return meaning(what, exc)
    return None


class translate_errors:
    """``with translate_errors("get k"):`` turns kazoo exceptions escaping the block into kvstore's.

    A class rather than a generator-based context manager: it wraps every
    call, and this costs a fraction of contextlib's overhead.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, KVStoreError):
            return
        mapped = kvstore_error(exc, self.what)
        if mapped is not None:
            raise mapped from None


class _KazooLogCapture(logging.Handler):
    """Keeps the reason of the last failed connection attempt; forwards kazoo's chatter at DEBUG.

    kazoo logs each failed attempt as a warning ("Connection dropped: [SSL:
    ...] certificate verify failed") and tries again, forever. Those lines
    would reach stderr through logging's last resort, which a command-line
    tool cannot have; the reason is what a caller needs, in the error.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last_error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg
        if isinstance(message, str) and message.startswith(("Connection dropped", "Connection time-out")):
            args = record.args if isinstance(record.args, tuple) else ()
            self.last_error = str(args[0]) if args else record.getMessage()
        if _kazoo_log.isEnabledFor(logging.DEBUG):
            _kazoo_log.debug("%s", record.getMessage())


def _cap_connect_waits(client: Any, limit: float) -> None:
    """Bound how long kazoo waits on one server while (re)connecting: ``limit`` seconds, not the session timeout.

    kazoo gives the TCP connect and the session handshake each the whole
    session timeout (divided by the number of hosts). A server that accepts
    and then never answers (ZooKeeper 3.8.0 does that to a client arriving
    while it loads its database after a restart: the connection is refused
    but, through an exception in its clean-up, never closed) then holds the
    client until its session has expired, though a retry a moment later
    would have saved it. Both waits are private to kazoo, hence the care:
    anything unexpected leaves kazoo as it is.
    """
    connection = getattr(client, "_connection", None)
    invoke = getattr(connection, "_invoke", None)
    handler = getattr(client, "handler", None)
    create_connection = getattr(handler, "create_connection", None)
    if connection is None or not callable(invoke) or handler is None or not callable(create_connection):
        return

    def capped_invoke(timeout: float, request: Any, xid: int | None = None) -> Any:
        return invoke(min(timeout, limit), request, xid)

    def capped_create_connection(*args: Any, **kwargs: Any) -> Any:
        if isinstance(kwargs.get("timeout"), (int, float)):
            kwargs["timeout"] = min(kwargs["timeout"], limit)
        return create_connection(*args, **kwargs)

    connection._invoke = capped_invoke  # noqa: SLF001 - kazoo offers no setting for it; checked above
    handler.create_connection = capped_create_connection


class Session:
    """One kazoo client: its connection, its ZooKeeper session, its timeout.

    ``timeout`` (seconds) is the session timeout asked of the server, which
    may negotiate it into its own [minSessionTimeout, maxSessionTimeout].
    """

    def __init__(
        self,
        hosts: Sequence[str],
        timeout: float,
        *,
        tls: dict[str, Any],
        auth: tuple[str, str] | None,
        default_acl: list[Any] | None,
        label: str,
    ) -> None:
        self.timeout = timeout
        self.hosts = ",".join(hosts)
        self.label = label
        self._capture = _KazooLogCapture()
        logger = logging.Logger(f"kvstore.zookeeper.kazoo.{next(_names)}", logging.INFO)
        logger.addHandler(self._capture)
        logger.propagate = False
        self.client: Any = KazooClient(
            hosts=self.hosts,
            timeout=timeout,
            # Reconnect at once and keep trying: the store, not kazoo, decides when to give up.
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5, max_jitter=0.3),
            # One order for every session of a store: they land on the same server,
            # which keeps a store's reads after its own writes consistent.
            randomize_hosts=False,
            auth_data=[("digest", f"{auth[0]}:{auth[1]}")] if auth else None,
            default_acl=default_acl,
            logger=logger,
            **tls,
        )
        _cap_connect_waits(self.client, max(3.0, timeout / 3))
        self._cond = threading.Condition()
        self._closed = False
        self._subscribers: list[Callable[[str], None]] = []
        #: The id of the session we last had (None before the first).
        self.session_id: int | None = None
        self._disconnected_since: float | None = time.monotonic()
        self.client.add_listener(self._on_state)

    # -- connection state ------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    def disconnected_for(self) -> float:
        """Seconds since the connection was lost (0 while connected)."""
        since = self._disconnected_since
        return 0.0 if since is None else time.monotonic() - since

    def current_session_id(self) -> int | None:
        """The live session's id, or None while disconnected."""
        client_id = self.client.client_id
        return None if client_id is None else int(client_id[0])

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(state)`` on every state change; it must not block (it runs in kazoo's thread)."""
        with self._cond:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[str], None]) -> None:
        with self._cond, contextlib.suppress(ValueError):
            self._subscribers.remove(callback)

    def _on_state(self, state: Any) -> None:
        """kazoo's listener: runs in its connection thread, so it only records and hands on."""
        with self._cond:
            if self._closed:
                return
            if state == KazooState.CONNECTED:
                session_id = self.current_session_id()
                kind = RESUMED if session_id is not None and session_id == self.session_id else RENEWED
                self.session_id = session_id
                self._disconnected_since = None
            elif state == KazooState.SUSPENDED:
                kind = SUSPENDED
                if self._disconnected_since is None:
                    self._disconnected_since = time.monotonic()
            else:
                kind = EXPIRED
                if self._disconnected_since is None:
                    self._disconnected_since = time.monotonic()
            self._cond.notify_all()
            subscribers = list(self._subscribers)
        _log.debug("zk session %s (%s): %s", self.label, self.hosts, kind)
        for callback in subscribers:
            try:
                callback(kind)
            except Exception:  # noqa: BLE001 - logged; a subscriber's bug must not kill kazoo's connection thread
                _log.exception("zk session subscriber failed")

    def unreachable(self, what: str) -> NotReachableError:
        """The error for "could not talk to ZooKeeper", with the last reason kazoo gave."""
        reason = self._capture.last_error
        detail = ""
        if reason:
            reason = reason.removeprefix("socket connection error: ")
            if "SSL" in reason or "certificate" in reason:
                reason = f"TLS handshake failed: {reason}"
            detail = f" (last error: {reason})"
        return NotReachableError(f"{what}: ZooKeeper at {self.hosts} not reachable{detail}")

    def start(self, deadline: float) -> None:
        """Connect; ``NotReachableError`` (with the reason) if not connected by ``deadline``."""
        started = time.monotonic()
        try:
            self.client.start_async()
        except KazooException as exc:
            raise NotReachableError(f"cannot start a ZooKeeper client for {self.hosts}: {exc!r}") from None
        try:
            self.wait_connected(deadline, f"connect within {max(0.0, deadline - started):g} s")
        except NotReachableError:
            # kazoo's connection thread may sit in a handshake with a server that never
            # answers (for up to the session timeout); stopping it must not hold up the error.
            threading.Thread(target=self.close, name="kvstore-zk-abandon", daemon=True).start()
            raise

    def wait_connected(self, deadline: float, what: str) -> None:
        """Block until connected; ``NotReachableError`` once ``deadline`` passes."""
        with self._cond:
            while not self.client.connected:
                if self._closed:
                    raise NotReachableError(f"{what}: the store is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self.unreachable(what)
                self._cond.wait(min(remaining, 0.1))

    def close(self) -> None:
        """End the session: the server drops its ephemeral nodes at once."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._subscribers.clear()
            self._cond.notify_all()
        with contextlib.suppress(Exception):
            self.client.stop()
        with contextlib.suppress(Exception):
            self.client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- requests ---------------------------------------------------------------------
    def wait(self, async_result: Any, deadline: float) -> Any:
        """The value of a kazoo async result, waiting until ``deadline`` at most."""
        remaining = deadline - time.monotonic()
        try:
            return async_result.get(timeout=max(remaining, 0.001))
        except KazooTimeoutError:
            raise self.unreachable("no answer in time") from None

    def run(self, attempt: Callable[[], T], deadline: float, what: str, *, idempotent: bool = True) -> T:
        """Run ``attempt`` (which talks to ZooKeeper) until it gets through or ``deadline`` passes.

        A dropped connection fails the requests in flight; an idempotent
        ``attempt`` is run again once connected. A non-idempotent one raises
        :class:`OutcomeUnknown` instead, so its caller can look at what happened.
        """
        while True:
            try:
                return attempt()
            except RETRYABLE as exc:
                self._recover(exc, deadline, what, idempotent)

    def _recover(self, exc: BaseException, deadline: float, what: str, idempotent: bool) -> None:
        """After a retryable failure: return once trying again makes sense, or raise."""
        if isinstance(exc, ConnectionClosedError):
            raise NotReachableError(f"{what}: the store is closed") from None
        if not idempotent:
            raise OutcomeUnknown(f"{what}: {exc!r}") from None
        if isinstance(exc, ThrottledOpError):
            time.sleep(0.01)
        self.wait_connected(deadline, what)
        if time.monotonic() >= deadline:
            raise self.unreachable(what) from None

    def call(self, start: Callable[[Any], Any], deadline: float, what: str, *, idempotent: bool = True) -> Any:
        """``start(client)`` returns a kazoo async result: its value, within ``deadline``, as :meth:`run`."""
        # The common case first, without run()'s closure: this is every get and put.
        try:
            return self.wait(start(self.client), deadline)
        except RETRYABLE as exc:
            self._recover(exc, deadline, what, idempotent)
        return self.run(lambda: self.wait(start(self.client), deadline), deadline, what, idempotent=idempotent)

    # -- the requests the backend makes, named ----------------------------------------------
    def get(self, path: str, deadline: float, what: str, watcher: Callable[[Any], None] | None = None) -> Node | None:
        """The znode at ``path``, None if absent (a bare parent is a node with ``data`` None)."""
        try:
            data, stat = self.call(lambda c: c.get_async(path, watcher), deadline, what)
        except NoNodeError:
            return None
        return Node.of(data, stat)

    def exists(self, path: str, deadline: float, what: str, watcher: Callable[[Any], None] | None = None) -> Any:
        """The stat of ``path`` or None; with ``watcher``, a watch that also fires on creation."""
        return self.call(lambda c: c.exists_async(path, watcher), deadline, what)

    def set(
        self,
        path: str,
        data: bytes | None,
        deadline: float,
        what: str,
        *,
        version: int = -1,
        idempotent: bool = True,
    ) -> Any:
        """Write ``data`` (None: make it a bare parent) if the node is at ``version``; its new stat."""
        return self.call(lambda c: c.set_async(path, data, version), deadline, what, idempotent=idempotent)

    def delete(self, path: str, deadline: float, what: str, *, version: int = -1, idempotent: bool = True) -> None:
        self.call(lambda c: c.delete_async(path, version), deadline, what, idempotent=idempotent)


def drain(inbox: queue.SimpleQueue[object], timeout: float) -> list[object]:
    """What arrived in ``inbox``: the first item waited for up to ``timeout`` seconds, then all the rest."""
    items: list[object] = []
    with contextlib.suppress(queue.Empty):
        items.append(inbox.get(timeout=timeout))
        while True:
            items.append(inbox.get_nowait())
    return items


def parent_of(path: str) -> str:
    """The parent znode path (``/`` for a top-level node)."""
    head = path.rsplit("/", 1)[0]
    return head or "/"


def child_path(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def read_nodes(
    session: Session,
    paths: Sequence[str],
    deadline: float,
    watcher: Callable[[Any], None] | None = None,
    *,
    every_node: bool = False,
) -> tuple[dict[str, Node], dict[str, set[str]]]:
    """Read ``paths`` and everything below them, one level per round trip.

    Every read of a level is sent before the first answer is awaited (kazoo
    pipelines them on the one connection), so 10,000 keys in one directory
    cost two round trips, not 10,000. Nodes that vanish meanwhile are
    skipped. With ``watcher``, each read also leaves a watch; with
    ``every_node``, the children of every node are listed (so that a watch
    learns of new children even under a leaf); otherwise only of nodes that
    have children. Returns the nodes and the child names of each node listed.
    """
    client = session.client
    nodes: dict[str, Node] = {}
    kids: dict[str, set[str]] = {}
    level = list(paths)
    while level:
        reads = [(path, client.get_async(path, watcher)) for path in level]
        listed: list[str] = []
        for path, pending in reads:
            try:
                data, stat = session.wait(pending, deadline)
            except NoNodeError:
                continue
            node = Node.of(data, stat)
            nodes[path] = node
            if every_node or node.children:
                listed.append(path)
        level = []
        lists = [(path, client.get_children_async(path, watcher)) for path in listed]
        for path, pending in lists:
            try:
                names = session.wait(pending, deadline)
            except NoNodeError:
                continue
            kids[path] = set(names)
            level.extend(child_path(path, name) for name in names)
    return nodes, kids


def list_children(
    session: Session, path: str, deadline: float, watcher: Callable[[Any], None] | None = None
) -> list[str] | None:
    """Child names of ``path`` (None if it does not exist); hides ``/zookeeper`` under the root."""
    try:
        names = session.wait(session.client.get_children_async(path, watcher), deadline)
    except NoNodeError:
        return None
    return [name for name in names if not (path == "/" and name == "zookeeper")]


def walk(
    session: Session,
    root: str,
    deadline: float,
    watcher: Callable[[Any], None] | None = None,
    *,
    every_node: bool = False,
) -> tuple[dict[str, Node], dict[str, set[str]]] | None:
    """Every node strictly below ``root`` (None if ``root`` does not exist), as :func:`read_nodes`."""
    names = list_children(session, root, deadline, watcher)
    if names is None:
        return None
    nodes, kids = read_nodes(session, [child_path(root, n) for n in names], deadline, watcher, every_node=every_node)
    kids[root] = set(names)
    return nodes, kids
