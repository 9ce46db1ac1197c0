"""The one API every backend offers: :class:`Store`, and what it hands out.

:class:`Store` is a template: its public methods check and normalise their
arguments once, then call the ``_underscore`` methods a backend implements
with clean, prefix-relative keys. A backend (ours or a third party's) so
never has to repeat the argument checks, and every backend rejects bad
input with the same errors.

Those hooks are the only underscore methods a backend shares with this
class; the backends here mark each with :func:`override`, so that a reader
(and mypy) tells a hook from a backend's private helpers at a glance.
"""

from __future__ import annotations

import abc
import builtins
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from . import keys
from .errors import KeyNotFoundError, KVStoreError, PreviousNotSpecifiedError

T = TypeVar("T")

if TYPE_CHECKING:
    from typing_extensions import override as override
else:

    def override(method: Any) -> Any:
        """Marks a backend hook (typing's ``@override``, without depending on typing_extensions at run time)."""
        return method


@dataclass(frozen=True)
class KVPair:
    """One key, its value and the index of its last write.

    ``last_index`` changes on every write of the key and is never reused for
    it, even after a delete and re-create, so a stale ``previous`` handed to
    ``atomic_put``/``atomic_delete`` can never match.
    """

    key: str
    value: bytes
    last_index: int


@dataclass(frozen=True)
class ClientTLS:
    """Files for TLS to the store: the CA that signs the server, and our client certificate."""

    ca_cert_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class Config:
    """How to reach and use a store. Every field is optional.

    ``options`` carries what only one backend understands (documented with
    that backend), so the common fields stay common.
    """

    connection_timeout: float = 10.0
    tls: ClientTLS | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    options: dict[str, str] = field(default_factory=dict)


class _End:
    """Queue marker: the watch has ended (closed, or the watched key was deleted)."""


class _Failure:
    def __init__(self, error: KVStoreError) -> None:
        self.error = error


class Watch(Generic[T]):
    """A blocking iterator over a key's (or a directory's) successive states.

    Backends feed it from their own threads with :meth:`emit`, :meth:`fail`
    and :meth:`finish`; the caller iterates. :meth:`close` may be called from
    any thread: iteration then ends at once, even while blocked in ``next``.
    """

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_close = on_close
        self._closed = threading.Event()
        self._ended = False

    # -- producer side (backends) ------------------------------------------
    def emit(self, item: T) -> None:
        """Deliver the next state to the reader."""
        if not self._closed.is_set():
            self._queue.put(item)

    def fail(self, error: KVStoreError) -> None:
        """End the watch by raising ``error`` in the reader."""
        self._queue.put(_Failure(error))

    def finish(self) -> None:
        """End the watch normally (the watched key was deleted)."""
        self._queue.put(_End())

    @property
    def closed(self) -> bool:
        """True once the reader closed the watch: producers should stop."""
        return self._closed.is_set()

    # -- reader side ---------------------------------------------------------
    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return self._take(None)

    def next(self, timeout: float | None = None) -> T:
        """The next state, waiting at most ``timeout`` seconds (``TimeoutError`` after)."""
        return self._take(timeout)

    def _take(self, timeout: float | None) -> T:
        if self._ended or self._closed.is_set():
            self._ended = True
            raise StopIteration
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no change within {timeout} s") from None
        if self._closed.is_set() or isinstance(item, _End):
            self._ended = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._ended = True
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the watch; safe from any thread and more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_End())
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> Watch[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Lock(abc.ABC):
    """A distributed mutex: one holder at a time, across processes and machines."""

    @abc.abstractmethod
    def acquire(self, timeout: float | None = None) -> threading.Event:
        """Block until held (``CannotLockError`` after ``timeout`` seconds).

        Returns an event that is set if the lock is later lost while held,
        e.g. because its TTL ran out or its session expired.
        """

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; nothing happens if it is not held."""

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Store(abc.ABC):
    """A key/value store. Construct through :func:`kvstore.new_store` or :func:`kvstore.from_url`.

    Subclasses implement the ``_underscore`` methods. They receive keys
    already normalised and relative to the prefix (``a/b``; ``""`` for the
    root in directory calls), values already checked to be bytes, and TTLs as
    positive floats or None.
    """

    #: False for stores private to one object (``memory``); the conformance
    #: suite then skips its cross-process checks, which cannot apply.
    shared_across_processes: ClassVar[bool] = True

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        self.addrs: list[str] = list(addrs)
        self.config: Config = config or Config()
        #: The name the store was created under (set by ``new_store``), so a
        #: second process can open the same store: ``new_store(s.backend, s.addrs, s.config)``.
        self.backend: str = ""
        self.prefix: str = keys.normalize(self.config.prefix, allow_root=True)

    # -- the public API ------------------------------------------------------
    def put(self, key: str, value: bytes, *, ttl: float | None = None, is_dir: bool = False) -> None:
        """Write ``value`` at ``key``; with ``ttl`` the key vanishes unless written again."""
        self._put(keys.normalize(key), keys.check_value(value), keys.check_ttl(ttl), is_dir)

    def get(self, key: str) -> KVPair:
        """The pair at ``key``; ``KeyNotFoundError`` if absent."""
        return self._get(keys.normalize(key))

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        self._delete(keys.normalize(key))

    def exists(self, key: str) -> bool:
        """True if ``key`` is present."""
        return self._exists(keys.normalize(key))

    def list(self, directory: str) -> builtins.list[KVPair]:
        """Every key below ``directory/`` at any depth, sorted by key, not the directory itself."""
        return self._list(keys.normalize(directory, allow_root=True))

    def delete_tree(self, directory: str) -> None:
        """Remove ``directory`` and everything below it."""
        self._delete_tree(keys.normalize(directory, allow_root=True))

    def watch(self, key: str) -> Watch[KVPair]:
        """Current value first, then one item per change; ends when the key is deleted."""
        return self._watch(keys.normalize(key))

    def watch_tree(self, directory: str) -> Watch[builtins.list[KVPair]]:
        """Current children first (maybe ``[]``), then the whole list after every change."""
        return self._watch_tree(keys.normalize(directory, allow_root=True))

    def atomic_put(self, key: str, value: bytes, previous: KVPair | None, *, ttl: float | None = None) -> KVPair:
        """Create (``previous=None``) or compare-and-swap on ``previous.last_index``."""
        return self._atomic_put(keys.normalize(key), keys.check_value(value), previous, keys.check_ttl(ttl))

    def atomic_delete(self, key: str, previous: KVPair | None) -> None:
        """Delete only if the key is still at ``previous.last_index``."""
        if previous is None:
            raise PreviousNotSpecifiedError(f"atomic_delete({key!r}) needs the previous pair")
        self._atomic_delete(keys.normalize(key), previous)

    def new_lock(self, key: str, *, value: bytes = b"", ttl: float | None = None) -> Lock:
        """A lock at ``key``; while held, ``get(key).value`` is ``value``."""
        return self._new_lock(keys.normalize(key), keys.check_value(value), keys.check_ttl(ttl))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (for backends that track it; the base class cannot know)."""
        return False

    def close(self) -> None:
        """Release connections and background threads; the store is unusable after."""
        return  # nothing to release in the base class

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a backend implements ---------------------------------------
    @abc.abstractmethod
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None: ...

    @abc.abstractmethod
    def _get(self, key: str) -> KVPair: ...

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...

    def _exists(self, key: str) -> bool:
        try:
            self._get(key)
        except KeyNotFoundError:
            return False
        return True

    @abc.abstractmethod
    def _list(self, directory: str) -> builtins.list[KVPair]: ...

    @abc.abstractmethod
    def _delete_tree(self, directory: str) -> None: ...

    @abc.abstractmethod
    def _watch(self, key: str) -> Watch[KVPair]: ...

    @abc.abstractmethod
    def _watch_tree(self, directory: str) -> Watch[builtins.list[KVPair]]: ...

    @abc.abstractmethod
    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair: ...

    @abc.abstractmethod
    def _atomic_delete(self, key: str, previous: KVPair) -> None: ...

    @abc.abstractmethod
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock: ...
