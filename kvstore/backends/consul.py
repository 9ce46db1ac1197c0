"""``consul``: the store on Consul's KV HTTP API, through python-consul2.

``new_store("consul", ["h1:8500", "h2:8500"], config)`` or
``from_url("consul://h1:8500,h2:8500/prefix")``. How each call maps to Consul:

* ``get``/``put``/``delete``/``list``/``delete_tree``: ``/v1/kv`` (``recurse`` on
  ``dir/``, so that ``list("a")`` never sees ``ab/...``). Every write carries the
  ``Flags`` Docker's libkv writes, so Swarm's own agents can share the store.
  Consul has no directories: ``is_dir`` keys are ordinary keys, and Consul's
  folder markers (keys ending in ``/``) are left out of listings.
* ``last_index`` is the key's ``ModifyIndex``: Consul's Raft index, global
  and never reused, so a deleted and re-created key never gets an old one.
* ``atomic_put``/``atomic_delete``: one ``/v1/txn`` each, a ``cas`` (or a
  ``check-index``) on ``ModifyIndex``, which returns the new ``ModifyIndex`` in
  the same answer: a ``cas`` followed by a ``get`` could return someone
  else's later write.
* TTL keys: a session per key (``TTL``, ``Behavior: delete``) holding the key
  with ``?acquire=``. The store renews the session for as long as the key is
  meant to live and destroys it when the TTL runs out, which deletes the key;
  a put again refreshes it. If the writer dies, nobody renews, and Consul
  deletes the key when the session expires: within the TTL, since the
  session's TTL is half the key's and Consul expires sessions up to twice
  their TTL late. (Consul refuses session TTLs under ``session_ttl_min``,
  10 s by default; the store learns the floor from the refusal, and keys
  with a TTL under twice the floor then outlive a dead writer by up to
  twice the floor.)
* ``watch``/``watch_tree``: blocking queries (see ``consul_watch``).
* ``new_lock``: a session and ``?acquire=`` (see ``consul_lock``).

Options (``Config.options``): ``token`` (ACL token, sent as
``X-Consul-Token``), ``watch_wait`` (seconds a blocking query waits, default
10), ``lock_ttl`` (TTL of locks made without one, default 20), ``lock_delay``
(the sessions' ``LockDelay``, default ``0s``: no delay, as Docker's libkv
nearly does), ``consistency`` (``default``, ``consistent`` or ``stale``),
``datacenter``. ``Config.username``/``password`` are sent as HTTP basic auth
(for a proxy in front of Consul); ``Config.tls`` switches to https, checks
the server against ``ca_cert_file`` and presents the client certificate.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .. import keys
from ..addresses import parse_host_port
from ..errors import (
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
)
from ..options import positive_number
from ..store import Config, KVPair, Lock, Store, Watch, override
from .consul_lock import ConsulLock
from .consul_transport import (
    LOCK_FLAG_VALUE,
    ConsulTransport,
    Endpoint,
    InvalidSession,
    format_wait,
)
from .consul_watch import BlockingLoop, header_index
from .tls_files import read_tls_files

DEFAULT_PORT = 8500

S = TypeVar("S")

_log = logging.getLogger("kvstore.consul")

#: How many times an atomic write retries when only the session part failed
#: (a lock-delay running on the key).
_LOCK_RETRIES = 5


def _tls_files(config: Config) -> tuple[bool | str, tuple[str, str] | None]:
    """``verify`` and ``cert`` for requests, after checking the files (a clear error now, not later)."""
    tls = config.tls
    if tls is None:
        return True, None
    read_tls_files("consul", tls)
    cert = (tls.cert_file, tls.key_file) if tls.cert_file and tls.key_file else None
    return tls.ca_cert_file or True, cert


@dataclass
class _Lease:
    """A TTL key we wrote: the session that holds it, and until when it is meant to live."""

    key: str
    session: str
    session_ttl: float
    deadline: float
    renewed: float
    retry_at: float = 0.0

    def next_renewal(self) -> float:
        """When to renew so the session outlives the deadline (never, once it will)."""
        if self.renewed + self.session_ttl >= self.deadline:
            return float("inf")
        return max(self.renewed + self.session_ttl / 2, self.retry_at)


class _Leases:
    """The TTL keys of one store, and the thread that renews and ends their sessions."""

    def __init__(self, store: ConsulStore) -> None:
        self._store = store
        self._transport = store.transport
        #: Serialises the TTL writes of this store with the ends of their TTLs, so a
        #: key put again at the very moment its TTL runs out is not lost.
        self.writing = threading.RLock()
        self._cond = threading.Condition()
        self._leases: dict[str, _Lease] = {}
        self._thread: threading.Thread | None = None
        self._stopped = False

    def get(self, key: str) -> _Lease | None:
        with self._cond:
            return self._leases.get(key)

    def pop(self, key: str) -> _Lease | None:
        with self._cond:
            return self._leases.pop(key, None)

    def pop_below(self, prefix: str) -> list[_Lease]:
        with self._cond:
            doomed = [k for k in self._leases if not prefix or k == prefix or k.startswith(prefix + "/")]
            return [self._leases.pop(k) for k in doomed]

    def set(self, lease: _Lease) -> _Lease | None:
        """Record ``lease``; the one it replaces (its session to be destroyed), if any."""
        with self._cond:
            old = self._leases.get(lease.key)
            self._leases[lease.key] = lease
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="kvstore-consul-ttl", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return old if old is not None and old.session != lease.session else None

    def extend(self, lease: _Lease, ttl: float) -> None:
        with self._cond:
            lease.deadline = time.monotonic() + ttl
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def forget(self, lease: _Lease | None) -> None:
        """Destroy a session we no longer need; it holds no key any more (or one that must go)."""
        if lease is None:
            return
        with contextlib.suppress(KVStoreError):
            self._transport.destroy_session(lease.session)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                due = min(
                    (min(lease.deadline, lease.next_renewal()) for lease in self._leases.values()),
                    default=now + 1.0,
                )
                if due > now:
                    self._cond.wait(min(due - now, 1.0))
                    continue
                leases = list(self._leases.values())
            for lease in leases:
                if self._stopped:
                    return
                now = time.monotonic()
                try:
                    if now >= lease.deadline:
                        self._expire(lease)
                    elif now >= lease.next_renewal():
                        self._renew(lease)
                except Exception:  # noqa: BLE001 - logged; a bug must not stop every other key's renewals
                    _log.exception("TTL upkeep of %s failed", lease.key)
                    with self._cond:
                        lease.retry_at = time.monotonic() + 1.0

    def _expire(self, lease: _Lease) -> None:
        with self.writing:
            with self._cond:
                if self._leases.get(lease.key) is not lease or time.monotonic() < lease.deadline:
                    return  # put again meanwhile
                del self._leases[lease.key]
            # Destroying the session deletes the key (Behavior: delete): the TTL ran out.
            # Unreachable: Consul expires the session itself, without renewals.
            with contextlib.suppress(KVStoreError):
                self._transport.destroy_session(lease.session)

    def _renew(self, lease: _Lease) -> None:
        started = time.monotonic()
        try:
            ttl = self._transport.renew_session(lease.session)
        except KVStoreError as exc:
            _log.debug("renewing the session of %s failed (will retry): %s", lease.key, exc)
            with self._cond:
                lease.retry_at = time.monotonic() + min(0.5, lease.session_ttl / 4)
            return
        with self._cond:
            if ttl is None:
                if self._leases.get(lease.key) is lease:
                    del self._leases[lease.key]  # the session, and so the key, is gone
                return
            lease.renewed = started
            lease.session_ttl = max(lease.session_ttl, ttl)


class ConsulStore(Store):
    """A store in a Consul cluster's KV; ``addrs`` are the agents' HTTP addresses."""

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        if not self.addrs:
            raise InvalidArgumentError("the consul backend needs at least one host:port address")
        endpoints = [Endpoint(*parse_host_port(addr, DEFAULT_PORT)) for addr in self.addrs]
        options = self.config.options
        self.watch_wait = positive_number("consul", options, "watch_wait", 10.0)
        self.lock_ttl = positive_number("consul", options, "lock_ttl", 20.0)
        self.lock_delay = options.get("lock_delay", "0s")
        consistency = options.get("consistency", "default")
        if consistency not in ("default", "consistent", "stale"):
            raise InvalidArgumentError(f"consul option consistency={consistency!r}: default, consistent or stale")
        verify, cert = _tls_files(self.config)
        auth = None
        if self.config.username is not None:
            auth = (self.config.username, self.config.password or "")
        elif self.config.password is not None:
            raise InvalidArgumentError(
                "consul: a password needs a username (HTTP basic auth); an ACL token goes in Config.options['token']"
            )
        self.transport = ConsulTransport(
            endpoints,
            timeout=self.config.connection_timeout,
            scheme="https" if self.config.tls else "http",
            verify=verify,
            cert=cert,
            token=options.get("token"),
            auth=auth,
            consistency=consistency,
            datacenter=options.get("datacenter"),
        )
        self._leases = _Leases(self)
        self._watches: weakref.WeakSet[Watch[Any]] = weakref.WeakSet()
        self._locks: weakref.WeakSet[ConsulLock] = weakref.WeakSet()
        self._track = threading.Lock()
        self._closed = threading.Event()
        try:
            self.transport.probe()
        except BaseException:
            self.transport.close()
            raise

    # -- key mapping ------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return keys.join(self.prefix, key)

    def _below(self, directory: str) -> str:
        """The Consul prefix of everything strictly below ``directory``."""
        full = self._full(directory)
        return f"{full}/" if full else ""

    def _pair(self, item: dict[str, Any]) -> KVPair:
        value = item.get("Value")
        return KVPair(keys.strip_prefix(self.prefix, item["Key"]), bytes(value or b""), int(item["ModifyIndex"]))

    def _pairs(self, items: list[dict[str, Any]] | None) -> list[KVPair]:
        """Listed entries as pairs: folder markers (``a/``) left out, sorted by key."""
        pairs = [self._pair(item) for item in items or [] if not item["Key"].endswith("/")]
        return sorted(pairs, key=lambda p: p.key)

    def _read(self, full: str) -> dict[str, Any] | None:
        _, item = self.transport.call(f"get {full}", lambda client: client.kv.get(full))
        return cast("dict[str, Any] | None", item)

    def _plain_put(self, full: str, value: bytes) -> None:
        ok = self.transport.call(f"put {full}", lambda client: client.kv.put(full, value, flags=LOCK_FLAG_VALUE))
        if not ok:
            raise KVStoreError(f"consul refused to write {full!r}")

    # -- the contract --------------------------------------------------------------------
    @override
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        full = self._full(key)
        if ttl is not None:
            self._put_with_ttl(full, value, ttl)
            return
        if self._leases.get(full) is None:
            self._plain_put(full, value)
            return
        with self._leases.writing:
            lease = self._leases.pop(full)
            if lease is None:
                self._plain_put(full, value)
                return
            # Written with a TTL before: release our session's hold while writing,
            # so the session's end no longer deletes the key.
            try:
                released = self.transport.acquire(full, value, lease.session, release=True)
            except InvalidSession:
                released = False
            if not released:
                self._plain_put(full, value)
            self._leases.forget(lease)

    def _put_with_ttl(self, full: str, value: bytes, ttl: float) -> None:
        with self._leases.writing:
            wanted = self.transport.session_ttl_for(ttl)
            lease = self._leases.get(full)
            if lease is not None and lease.session_ttl == wanted:
                try:
                    if self.transport.acquire(full, value, lease.session):
                        self._leases.extend(lease, ttl)  # the renewal thread takes it from here
                        return
                except InvalidSession:
                    pass
            session, session_ttl = self._new_ttl_session(full, wanted)
            started = time.monotonic()
            try:
                taken = self.transport.acquire(full, value, session)
                if not taken:
                    # Held by another session (another writer's TTL): take it over in
                    # one step, so that the other session's end cannot delete our value.
                    self._txn_with_lock_retries(
                        f"put {full}",
                        [_op("delete", full), _op("lock", full, value=value, session=session)],
                    )
            except BaseException:
                self._leases.forget(_Lease(full, session, session_ttl, 0.0, 0.0))
                raise
            replaced = self._leases.set(_Lease(full, session, session_ttl, started + ttl, started))
            self._leases.forget(replaced)

    def _new_ttl_session(self, full: str, session_ttl: float) -> tuple[str, float]:
        return self.transport.create_session(
            session_ttl, behavior="delete", lock_delay=self.lock_delay, name=f"kvstore ttl {full}"
        )

    def _txn_with_lock_retries(self, what: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A transaction whose only way to fail is its ``lock`` (a lock-delay): retried a few times."""
        for attempt in range(_LOCK_RETRIES):
            committed, results, errors = self.transport.txn(what, ops)
            if committed:
                return results
            if attempt + 1 < _LOCK_RETRIES:
                time.sleep(0.05 * (attempt + 1))
        raise KVStoreError(f"consul refused {what}: {_what(errors)}")

    @override
    def _get(self, key: str) -> KVPair:
        item = self._read(self._full(key))
        if item is None:
            raise KeyNotFoundError(f"key not found: {key}")
        return self._pair(item)

    @override
    def _delete(self, key: str) -> None:
        full = self._full(key)
        self.transport.call(f"delete {full}", lambda client: client.kv.delete(full))
        self._leases.forget(self._leases.pop(full))

    @override
    def _list(self, directory: str) -> builtins.list[KVPair]:
        below = self._below(directory)
        _, items = self.transport.call(f"list {below}", lambda client: client.kv.get(below, recurse=True))
        pairs = self._pairs(items)
        if not pairs and (not directory or self._read(self._full(directory)) is None):
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return pairs

    @override
    def _delete_tree(self, directory: str) -> None:
        full = self._full(directory)
        below = self._below(directory)
        self.transport.call(f"delete {below}*", lambda client: client.kv.delete(below, recurse=True))
        if full:
            self.transport.call(f"delete {full}", lambda client: client.kv.delete(full))
        for lease in self._leases.pop_below(full):
            self._leases.forget(lease)

    @override
    def _watch(self, key: str) -> Watch[KVPair]:
        def state(found: dict[str, Any] | None) -> KVPair | None:
            return None if found is None else self._pair(found)

        return self._follow(self._full(key), recurse=False, state=state, missing=f"key not found: {key}")

    @override
    def _watch_tree(self, directory: str) -> Watch[builtins.list[KVPair]]:
        return self._follow(self._below(directory), recurse=True, state=self._pairs, missing="")

    def _follow(self, path: str, *, recurse: bool, state: Callable[[Any], S | None], missing: str) -> Watch[S]:
        """A watch on ``path`` (with ``recurse``, everything below it) kept by blocking queries.

        ``state`` turns what Consul answers into what the watch delivers; a
        new state is emitted when it differs from the last one, and a state
        of None (the key is gone) ends the watch, or, at the start, raises
        ``KeyNotFoundError(missing)``.
        """
        name = f"{path}*" if recurse else path
        index, found = self.transport.call(f"watch {name}", lambda client: client.kv.get(path, recurse=recurse))
        last = state(found)
        if last is None:
            raise KeyNotFoundError(missing)
        watch, stopped = self._new_watch()
        watch.emit(last)

        def read(client: Any, index: int, wait: float) -> tuple[int | None, Any]:
            if index:
                raw, found = client.kv.get(path, recurse=recurse, index=index, wait=format_wait(wait))
            else:
                raw, found = client.kv.get(path, recurse=recurse)
            return header_index(raw), found

        def handle(found: Any) -> bool:
            nonlocal last
            current = state(found)
            if current is None:
                watch.finish()  # the key was deleted: the watch ends
                return False
            if current != last:
                last = current
                watch.emit(current)
            return True

        loop = BlockingLoop(
            self.transport, watch, f"watch {name}", read, handle, index=header_index(index) or 0,
            wait=self.watch_wait, stopped=stopped,
        )  # fmt: skip
        loop.start(f"kvstore-consul-watch:{name}")
        return watch

    def _new_watch(self) -> tuple[Watch[Any], threading.Event]:
        stopped = threading.Event()
        watch: Watch[Any] = Watch(on_close=stopped.set)
        with self._track:
            self._watches.add(watch)
        return watch, stopped

    @override
    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        full = self._full(key)
        index = 0 if previous is None else previous.last_index
        check = _op("check-not-exists", full) if previous is None else _op("check-index", full, index=index)
        with self._leases.writing:
            lease = self._leases.get(full)
            session: str | None = None
            session_ttl = 0.0
            if ttl is not None:
                session, session_ttl = self._new_ttl_session(full, self.transport.session_ttl_for(ttl))
                # Delete first: whichever session held the key lets go of it in the same step.
                ops = [check, _op("delete", full), _op("lock", full, value=value, session=session)]
            elif lease is not None:
                ops = [
                    check,
                    _op("delete", full),
                    _op("set", full, value=value),
                ]  # drop our TTL session's hold
            else:
                ops = [_op("cas", full, value=value, index=index)]
            started = time.monotonic()
            try:
                results = self._atomic_txn(key, full, ops, previous)
            except BaseException:
                if session is not None:
                    self._leases.forget(_Lease(full, session, session_ttl, 0.0, 0.0))
                raise
            written = results[-1]["KV"]
            if session is not None and ttl is not None:
                self._leases.forget(self._leases.set(_Lease(full, session, session_ttl, started + ttl, started)))
            elif lease is not None:
                self._leases.forget(self._leases.pop(full))
        return KVPair(keys.strip_prefix(self.prefix, full), value, int(written["ModifyIndex"]))

    def _atomic_txn(
        self, key: str, full: str, ops: list[dict[str, Any]], previous: KVPair | None
    ) -> list[dict[str, Any]]:
        for attempt in range(_LOCK_RETRIES):
            committed, results, errors = self.transport.txn(f"atomic_put {full}", ops)
            if committed:
                return results
            if any(error.get("OpIndex", 0) == 0 for error in errors):
                raise self._conflict(key, full, previous)
            if attempt + 1 < _LOCK_RETRIES:
                time.sleep(0.05 * (attempt + 1))  # the lock step failed: a lock-delay runs
        raise KVStoreError(f"consul refused atomic_put {full!r}: {_what(errors)}")

    def _conflict(self, key: str, full: str, previous: KVPair | None) -> KVStoreError:
        """Why a compare-and-swap failed, from what the key holds now."""
        exists = self._read(full) is not None
        if previous is None:
            return KeyExistsError(f"key already exists: {key}")
        if not exists:
            return KeyNotFoundError(f"key not found: {key}")
        return KeyModifiedError(f"key {key} was modified since index {previous.last_index}")

    @override
    def _atomic_delete(self, key: str, previous: KVPair) -> None:
        full = self._full(key)
        committed, _, _ = self.transport.txn(
            f"atomic_delete {full}",
            [_op("check-index", full, index=previous.last_index), _op("delete", full)],
        )
        if not committed:
            raise self._conflict(key, full, previous)
        self._leases.forget(self._leases.pop(full))

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        return ConsulLock(self, self._full(key), value, ttl if ttl is not None else self.lock_ttl)

    def track_lock(self, lock: ConsulLock) -> None:
        """Remember a held lock, so that ``close`` gives it up."""
        with self._track:
            self._locks.add(lock)

    def close(self) -> None:
        """Stop watches, give up held locks, stop renewing TTL keys (they then expire by themselves)."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._track:
            watches, locks = list(self._watches), list(self._locks)
        for watch in watches:
            watch.close()
        for lock in locks:
            with contextlib.suppress(KVStoreError):
                lock.release()
        self._leases.stop()
        self.transport.close()


def _op(
    verb: str, key: str, *, value: bytes | None = None, index: int = 0, session: str | None = None
) -> dict[str, Any]:
    """One KV operation of a ``/v1/txn`` body."""
    body: dict[str, Any] = {"Verb": verb, "Key": key}
    if value is not None:
        body["Value"] = base64.b64encode(value).decode()
        body["Flags"] = LOCK_FLAG_VALUE
    if index:
        body["Index"] = index
    if session is not None:
        body["Session"] = session
    return {"KV": body}


def _what(errors: list[dict[str, Any]]) -> str:
    return "; ".join(str(error.get("What", error)) for error in errors) or "rolled back"
