"""``etcd``: the store over etcd's v3 gRPC API.

Keys are stored as ``prefix/key`` with no leading slash, values verbatim.
How the contract maps onto etcd:

- ``last_index`` is the key's ``mod_revision``: etcd's revision counter only
  grows, so a deleted and re-created key never gets an old index back.
- ``ttl`` attaches the key to a fresh lease of that many seconds (rounded up;
  etcd grants at least about 2 s). Putting the key again moves it to a new
  lease, which is how a re-put refreshes it; a put without ttl detaches it.
- ``atomic_put``/``atomic_delete`` are transactions comparing the key's
  ``create_revision`` with 0 (create) or its ``mod_revision`` with
  ``previous.last_index`` (compare-and-swap); the failure branch reads the
  key, so telling "modified" from "gone" costs no second round trip.
- Directories do not exist in etcd: ``is_dir`` puts an ordinary key, and
  "below ``d``" is the key range ``[d/, d0)`` (``0`` follows ``/``), which is
  exactly the keys whose path starts with the segment ``d``.
- ``watch``/``watch_tree`` read the current state at some revision, then
  watch from the revision after it (:class:`~.etcd_client.WatchStream`), so
  nothing falls between the read and the watch, nor between two streams.
- A lock is its key, created with a lease only if absent; while held, a
  thread keeps the lease alive and a watch reports the key being deleted or
  overwritten. Waiters watch the key and try again when it is deleted.

Options (``Config.options``): ``lock_ttl``, the lease of locks made without
a ttl, in seconds (default 20: a holder that dies loses the lock within it).
"""

from __future__ import annotations

import builtins
import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc  # type: ignore[import-untyped]

from .. import keys
from ..errors import (
    CannotLockError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
    NotReachableError,
)
from ..options import positive_number
from ..store import Config, KVPair, Lock, Store, Watch
from .etcd_client import Connection, Endpoint, WatchStream, is_lease_not_found, time_left

#: etcd's event types (``mvccpb.Event.EventType``).
_PUT = 0
_DELETE = 1

DEFAULT_LOCK_TTL = 20.0

#: Every key, for the root directory of a store without prefix.
_ALL = b"\0"


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def _lease_seconds(ttl: float) -> int:
    """etcd leases count whole seconds: round up, so a key never vanishes early."""
    return max(1, math.ceil(ttl))


class EtcdStore(Store):
    """A store in an etcd (v3) cluster; ``addrs`` are its members' ``host:port``.

    Nothing is sent at construction: certificate files are read (a missing
    one is an immediate :class:`NotReachableError` naming it), and the first
    call connects. Calls go to the first address until it fails; each call
    then tries the members in turn for at most ``connection_timeout``
    seconds before raising :class:`NotReachableError`, and the member that
    answered stays in use.
    """

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        self._lock_ttl = positive_number("etcd", self.config.options, "lock_ttl", DEFAULT_LOCK_TTL)
        self._conn = Connection(self.addrs, self.config)
        self._mutex = threading.Lock()
        self._streams: set[WatchStream] = set()
        self._locks: set[EtcdLock] = set()

    # -- keys -------------------------------------------------------------------------------
    def _full(self, key: str) -> bytes:
        return _encode(keys.join(self.prefix, key))

    def _pair(self, kv: Any) -> KVPair:
        return KVPair(keys.strip_prefix(self.prefix, _decode(kv.key)), bytes(kv.value), int(kv.mod_revision))

    def _below(self, directory: str) -> tuple[bytes, bytes]:
        """The key range strictly below ``directory``, segment-wise."""
        full = keys.join(self.prefix, directory)
        if not full:
            return _ALL, _ALL
        return _encode(full + "/"), _encode(full + "0")

    # -- bookkeeping for close() --------------------------------------------------------------
    def _track(self, stream: WatchStream) -> WatchStream:
        with self._mutex:
            if self._conn.closed.is_set():
                raise KVStoreError("the etcd store is closed")
            self._streams.add(stream)
        return stream

    def _untrack(self, stream: WatchStream) -> None:
        stream.stop()
        with self._mutex:
            self._streams.discard(stream)

    def close(self) -> None:
        """Stop watches, give up held locks (their leases are revoked), close the channels."""
        with self._mutex:
            if self._conn.closed.is_set():
                return
            locks = list(self._locks)
        for lock in locks:
            with contextlib.suppress(KVStoreError):
                lock.release(budget=min(1.0, self._conn.timeout))
        with self._mutex:
            self._conn.closed.set()
            streams = list(self._streams)
            self._streams.clear()
        for stream in streams:
            stream.abort(KVStoreError("watch: the etcd store was closed"))
        self._conn.close()

    # -- plain calls ----------------------------------------------------------------------------
    def _grant(self, endpoint: Endpoint, ttl: float, timeout: float, metadata: Any) -> int:
        request = etcdrpc.LeaseGrantRequest(TTL=_lease_seconds(ttl))
        return int(endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata).ID)

    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        full = self._full(key)

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            # The grant and the put are one attempt: together within its timeout.
            started = time.monotonic()
            lease = 0 if ttl is None else self._grant(endpoint, ttl, timeout, metadata)
            request = etcdrpc.PutRequest(key=full, value=value, lease=lease)
            endpoint.kv.Put(request, timeout=time_left(started, timeout), metadata=metadata)

        self._conn.call(f"put {key!r}", invoke)

    def _range(self, what: str, key: bytes, range_end: bytes | None = None, **fields: Any) -> Any:
        request = etcdrpc.RangeRequest(key=key, **fields)
        if range_end is not None:
            request.range_end = range_end

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> Any:
            return endpoint.kv.Range(request, timeout=timeout, metadata=metadata)

        return self._conn.call(what, invoke)

    def _get(self, key: str) -> KVPair:
        response = self._range(f"get {key!r}", self._full(key))
        if not response.kvs:
            raise KeyNotFoundError(f"key not found: {key}")
        return self._pair(response.kvs[0])

    def _exists(self, key: str) -> bool:
        response = self._range(f"exists {key!r}", self._full(key), count_only=True)
        return bool(response.count)

    def _delete(self, key: str) -> None:
        request = etcdrpc.DeleteRangeRequest(key=self._full(key))

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            endpoint.kv.DeleteRange(request, timeout=timeout, metadata=metadata)

        self._conn.call(f"delete {key!r}", invoke)

    def _children(self, directory: str) -> tuple[builtins.list[KVPair], int]:
        """The pairs below ``directory`` (sorted: etcd returns ranges in key order) and the revision read."""
        start, end = self._below(directory)
        response = self._range(f"list {directory or '/'!r}", start, end)
        return [self._pair(kv) for kv in response.kvs], int(response.header.revision)

    def _list(self, directory: str) -> builtins.list[KVPair]:
        pairs, _ = self._children(directory)
        if not pairs and (not directory or not self._exists(directory)):
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return pairs

    def _delete_tree(self, directory: str) -> None:
        start, end = self._below(directory)
        operations = [etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=start, range_end=end))]
        if directory:
            own = etcdrpc.DeleteRangeRequest(key=self._full(directory))
            operations.append(etcdrpc.RequestOp(request_delete_range=own))
        request = etcdrpc.TxnRequest(success=operations)

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            endpoint.kv.Txn(request, timeout=timeout, metadata=metadata)

        self._conn.call(f"delete_tree {directory or '/'!r}", invoke)

    # -- atomic calls -------------------------------------------------------------------------------
    def _txn(self, what: str, compare: Any, success: Any, full: bytes, ttl: float | None = None) -> Any:
        """Run ``compare ? success : read(full)``; ``success`` may take the lease id (for ttl)."""
        failure = [etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=full))]

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> Any:
            started = time.monotonic()
            lease = 0 if ttl is None else self._grant(endpoint, ttl, timeout, metadata)
            request = etcdrpc.TxnRequest(compare=[compare], success=success(lease), failure=failure)
            return endpoint.kv.Txn(request, timeout=time_left(started, timeout), metadata=metadata)

        return self._conn.call(what, invoke)

    @staticmethod
    def _failed_read(response: Any) -> Any:
        """The key as the failure branch read it, or None when it is absent."""
        kvs = response.responses[0].response_range.kvs
        return kvs[0] if kvs else None

    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        full = self._full(key)
        if previous is None:
            compare = etcdrpc.Compare(
                key=full, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
            )
        else:
            compare = etcdrpc.Compare(
                key=full,
                target=etcdrpc.Compare.MOD,
                result=etcdrpc.Compare.EQUAL,
                mod_revision=previous.last_index,
            )

        def success(lease: int) -> list[Any]:
            put = etcdrpc.PutRequest(key=full, value=value, lease=lease)
            return [etcdrpc.RequestOp(request_put=put)]

        response = self._txn(f"atomic_put {key!r}", compare, success, full, ttl)
        if response.succeeded:
            # The transaction's one write has the header's revision.
            return KVPair(key, value, int(response.header.revision))
        current = self._failed_read(response)
        if previous is None:
            raise KeyExistsError(f"key exists: {key}")
        if current is None:
            raise KeyNotFoundError(f"key not found: {key}")
        raise KeyModifiedError(f"key {key} changed since index {previous.last_index}")

    def _atomic_delete(self, key: str, previous: KVPair) -> None:
        full = self._full(key)
        compare = etcdrpc.Compare(
            key=full,
            target=etcdrpc.Compare.MOD,
            result=etcdrpc.Compare.EQUAL,
            mod_revision=previous.last_index,
        )
        delete = [etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=full))]
        response = self._txn(f"atomic_delete {key!r}", compare, lambda _lease: delete, full)
        if response.succeeded:
            return
        if self._failed_read(response) is None:
            raise KeyNotFoundError(f"key not found: {key}")
        raise KeyModifiedError(f"key {key} changed since index {previous.last_index}")

    # -- watches -------------------------------------------------------------------------------------
    def _stop_streams(self, streams: builtins.list[WatchStream]) -> None:
        for stream in streams:
            self._untrack(stream)

    def _feed(
        self,
        watch: Watch[Any],
        streams: builtins.list[WatchStream],
        key: bytes,
        range_end: bytes | None,
        revision: int,
        on_events: Callable[[Sequence[Any]], bool],
        on_compacted: Callable[[], int | None],
        name: str,
    ) -> None:
        """Feed ``watch`` from an etcd watch starting after ``revision``.

        ``watch`` was made with ``on_close`` stopping ``streams``; the stream
        started here is added to them.
        """

        def on_failure(error: KVStoreError) -> None:
            watch.fail(error)
            self._stop_streams(streams)

        stream = WatchStream(self._conn, key, range_end, revision + 1, on_events, on_failure, on_compacted, name)
        streams.append(stream)
        self._track(stream)
        stream.start()

    def _watch(self, key: str) -> Watch[KVPair]:
        full = self._full(key)
        first = self._range(f"watch {key!r}", full)
        if not first.kvs:
            raise KeyNotFoundError(f"key not found: {key}")
        last = self._pair(first.kvs[0])
        streams: builtins.list[WatchStream] = []
        watch: Watch[KVPair] = Watch(on_close=lambda: self._stop_streams(streams))
        watch.emit(last)

        def on_events(events: Sequence[Any]) -> bool:
            nonlocal last
            for event in events:
                if event.type == _DELETE:
                    watch.finish()
                    return False
                last = self._pair(event.kv)
                watch.emit(last)
            return not watch.closed

        def on_compacted() -> int | None:
            # The changes we missed were compacted away: the current state stands in for them.
            nonlocal last
            response = self._range(f"watch {key!r}", full)
            if not response.kvs:
                watch.finish()
                return None
            current = self._pair(response.kvs[0])
            if current != last:
                last = current
                watch.emit(current)
            return int(response.header.revision) + 1

        self._feed(
            watch,
            streams,
            full,
            None,
            int(first.header.revision),
            on_events,
            on_compacted,
            f"kvstore-etcd-watch:{key}",
        )
        return watch

    def _watch_tree(self, directory: str) -> Watch[builtins.list[KVPair]]:
        start, end = self._below(directory)
        pairs, revision = self._children(directory)
        state: dict[str, KVPair] = {p.key: p for p in pairs}
        streams: builtins.list[WatchStream] = []
        watch: Watch[builtins.list[KVPair]] = Watch(on_close=lambda: self._stop_streams(streams))
        watch.emit(pairs)

        def snapshot() -> builtins.list[KVPair]:
            return [state[k] for k in sorted(state)]

        def on_events(events: Sequence[Any]) -> bool:
            # One item per revision: the events of one transaction (a
            # delete_tree, a lease expiring) are one change.
            changed = False
            group = -1
            for event in events:
                event_revision = int(event.kv.mod_revision)
                if changed and event_revision != group:
                    watch.emit(snapshot())
                    changed = False
                group = event_revision
                name = keys.strip_prefix(self.prefix, _decode(event.kv.key))
                if event.type == _DELETE:
                    changed = state.pop(name, None) is not None or changed
                else:
                    state[name] = self._pair(event.kv)
                    changed = True
            if changed:
                watch.emit(snapshot())
            return not watch.closed

        def on_compacted() -> int:
            current, read_at = self._children(directory)
            if current != snapshot():
                state.clear()
                state.update((p.key, p) for p in current)
                watch.emit(current)
            return read_at + 1

        self._feed(
            watch,
            streams,
            start,
            end,
            revision,
            on_events,
            on_compacted,
            f"kvstore-etcd-watch-tree:{directory}",
        )
        return watch

    # -- locks -------------------------------------------------------------------------------------
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        return EtcdLock(self, key, value, ttl if ttl is not None else self._lock_ttl)


class _Holding:
    """What a lock holds while held: its lease, the key's revision, and the threads guarding them."""

    def __init__(self, lease: int, revision: int, ttl: int, confirmed_until: float) -> None:
        self.lease = lease
        self.revision = revision
        self.ttl = ttl
        self.confirmed_until = confirmed_until
        self.lost = threading.Event()
        self.stop = threading.Event()
        self.stream: WatchStream | None = None
        self.keeper: threading.Thread | None = None


class EtcdLock(Lock):
    """A lock held as its own key, created only if absent, with a lease the holder keeps alive.

    The key's value is the lock's value, so ``get(key)`` names the holder
    (Swarm's leader election reads the primary's address that way). The
    lease makes a dead holder lose the lock within its TTL. The holder
    learns of a loss from the watch on its key (deleted or overwritten), from
    a keep-alive answered with "no such lease", or, when it cannot reach
    etcd at all, from its own clock once the last confirmed lease time has
    passed (a frozen process that resumes sees that at once).
    """

    def __init__(self, store: EtcdStore, key: str, value: bytes, ttl: float) -> None:
        self._store = store
        self._conn = store._conn
        self._key = key
        self._full = store._full(key)
        self._value = value
        self._ttl = _lease_seconds(ttl)
        self._mutex = threading.Lock()
        self._holding: _Holding | None = None

    # -- acquiring ------------------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> threading.Event:
        with self._mutex:
            stale = self._holding
        if stale is not None:
            if not stale.lost.is_set():
                raise CannotLockError(f"lock {self._key!r} is already held by this Lock object")
            with contextlib.suppress(KVStoreError):
                self.release()  # clean up after the lock we lost
        deadline = None if timeout is None else time.monotonic() + timeout
        lease, granted_at = 0, 0.0
        try:
            while True:
                if not lease or time.monotonic() - granted_at > self._ttl / 2:
                    # A lease fresh enough to be kept alive once we win.
                    self._revoke_quietly(lease)
                    granted_at = time.monotonic()  # before the grant: etcd's lease runs out later, not sooner
                    lease = self._grant()
                won, revision = self._try_create(lease)
                if won:
                    holding = _Holding(lease, revision, self._ttl, granted_at + self._ttl)
                    self._hold(holding)
                    return holding.lost
                if revision < 0:  # our lease expired while we waited
                    lease = 0
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CannotLockError(f"lock {self._key!r}: still held by another after {timeout} s")
                self._wait_for_release(revision, remaining)
        except BaseException:
            self._revoke_quietly(lease)
            raise

    def _grant(self) -> int:
        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> int:
            request = etcdrpc.LeaseGrantRequest(TTL=self._ttl)
            return int(endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata).ID)

        return self._conn.call(f"lock {self._key!r}: grant lease", invoke)

    def _try_create(self, lease: int) -> tuple[bool, int]:
        """(True, revision) if we now hold the key, (False, revision read) if another does.

        (False, -1): our lease is gone (it ran out while we waited).
        """
        compare = etcdrpc.Compare(
            key=self._full, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
        )
        put = etcdrpc.PutRequest(key=self._full, value=self._value, lease=lease)
        request = etcdrpc.TxnRequest(
            compare=[compare],
            success=[etcdrpc.RequestOp(request_put=put)],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=self._full))],
        )

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> Any:
            try:
                return endpoint.kv.Txn(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                if is_lease_not_found(exc):
                    return None
                raise

        response = self._conn.call(f"lock {self._key!r}", invoke)
        if response is None:
            return False, -1
        if response.succeeded:
            return True, int(response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if kvs and int(kvs[0].lease) == lease:
            # An earlier attempt of this call did create it (its answer was
            # lost to a failing member): the key is ours.
            return True, int(kvs[0].mod_revision)
        return False, int(response.header.revision)

    def _wait_for_release(self, revision: int, timeout: float | None) -> None:
        """Block until the key changes after ``revision`` (or ``timeout``, or a broken watch)."""
        changed = threading.Event()

        def on_events(events: Sequence[Any]) -> bool:
            if any(event.type == _DELETE for event in events):
                changed.set()
                return False
            return True

        def on_failure(_error: KVStoreError) -> None:
            changed.set()  # the next attempt reports the error, if it persists

        def on_compacted() -> int | None:
            changed.set()
            return None

        stream = WatchStream(
            self._conn,
            self._full,
            None,
            revision + 1,
            on_events,
            on_failure,
            on_compacted,
            f"kvstore-etcd-lock-wait:{self._key}",
        )
        self._store._track(stream)
        stream.start()
        try:
            changed.wait(timeout)
        finally:
            self._store._untrack(stream)

    # -- holding ----------------------------------------------------------------------------------------
    def _hold(self, holding: _Holding) -> None:
        def on_events(_events: Sequence[Any]) -> bool:
            # Any change to the key after we wrote it (delete, lease expiry,
            # someone else's put) means it is no longer ours.
            self._lose(holding)
            return False

        def on_failure(_error: KVStoreError) -> None:
            return  # the keeper's clock decides when etcd is unreachable for too long

        def on_compacted() -> int:
            response = self._store._range(f"lock {self._key!r}", self._full)
            kvs = response.kvs
            if not kvs or int(kvs[0].mod_revision) != holding.revision:
                self._lose(holding)
            return int(response.header.revision) + 1

        holding.stream = WatchStream(
            self._conn,
            self._full,
            None,
            holding.revision + 1,
            on_events,
            on_failure,
            on_compacted,
            f"kvstore-etcd-lock:{self._key}",
        )
        holding.keeper = threading.Thread(
            target=self._keep_alive,
            args=(holding,),
            name=f"kvstore-etcd-lock-keeper:{self._key}",
            daemon=True,
        )
        self._store._track(holding.stream)  # first: it refuses when the store is closed
        with self._mutex:
            self._holding = holding
        with self._store._mutex:
            self._store._locks.add(self)
        holding.stream.start()
        holding.keeper.start()

    def _keep_alive(self, holding: _Holding) -> None:
        """Renew the lease every third of its TTL; declare the lock lost once renewal is overdue."""
        interval = holding.ttl / 3
        # Counted from the grant, not from now: the lease may have aged while we waited to win.
        next_renewal = holding.confirmed_until - holding.ttl + interval
        while not holding.stop.wait(max(0.0, min(next_renewal, holding.confirmed_until) - time.monotonic())):
            now = time.monotonic()
            if now >= holding.confirmed_until:
                self._lose(holding)  # not renewed in time: etcd may have let it go
                return
            if now < next_renewal:
                continue
            try:
                ttl = self._renew(holding.lease, budget=holding.confirmed_until - now)
            except KVStoreError:
                next_renewal = time.monotonic() + min(0.2, interval)
                continue
            if ttl <= 0:
                self._lose(holding)  # etcd says the lease is gone
                return
            holding.confirmed_until = now + ttl
            next_renewal = now + interval

    def _renew(self, lease: int, budget: float) -> int:
        """One keep-alive round trip; the TTL etcd granted (0: the lease no longer exists)."""

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> int:
            requests = iter([etcdrpc.LeaseKeepAliveRequest(ID=lease)])
            call = endpoint.lease.LeaseKeepAlive(requests, timeout=timeout, metadata=metadata)
            try:
                for response in call:
                    return int(response.TTL)
            finally:
                call.cancel()
            raise NotReachableError("lease keep-alive: the stream ended without an answer")

        return self._conn.call(f"lock {self._key!r}: keep-alive", invoke, budget=max(budget, 0.05))

    def _lose(self, holding: _Holding) -> None:
        if holding.stop.is_set() or holding.lost.is_set():
            return
        holding.lost.set()
        # Make the store agree: a key still on our lease must not name us as holder.
        threading.Thread(target=self._revoke_quietly, args=(holding.lease,), daemon=True).start()

    # -- releasing ----------------------------------------------------------------------------------------
    def release(self, *, budget: float | None = None) -> None:
        with self._mutex:
            holding, self._holding = self._holding, None
        if holding is None:
            return
        holding.stop.set()
        if holding.stream is not None:
            self._store._untrack(holding.stream)
        with self._store._mutex:
            self._store._locks.discard(self)
        self._revoke(holding.lease, budget)

    def _revoke(self, lease: int, budget: float | None = None) -> None:
        """Revoke ``lease``: etcd deletes the key with it, if the key is still on it."""

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            try:
                endpoint.lease.LeaseRevoke(etcdrpc.LeaseRevokeRequest(ID=lease), timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                if not is_lease_not_found(exc):
                    raise

        self._conn.call(f"unlock {self._key!r}", invoke, budget=budget)

    def _revoke_quietly(self, lease: int) -> None:
        if lease:
            with contextlib.suppress(KVStoreError):
                self._revoke(lease, budget=min(2.0, self._conn.timeout))


__all__ = ["EtcdLock", "EtcdStore"]
