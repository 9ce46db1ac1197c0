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
  overwritten. Waiters watch the key and try again when it is deleted (see
  ``etcd_lock``).

Options (``Config.options``): ``lock_ttl``, the lease of locks made without
a ttl, in seconds (default 20: a holder that dies loses the lock within it).
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from etcd3 import etcdrpc  # type: ignore[import-untyped]

from .. import keys
from ..errors import (
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
)
from ..options import positive_number
from ..store import Config, KVPair, Lock, Store, Watch, override
from .etcd_client import DELETE_EVENT, Connection, Endpoint, WatchStream, lease_seconds, time_left
from .etcd_lock import EtcdLock

DEFAULT_LOCK_TTL = 20.0

#: Every key, for the root directory of a store without prefix.
_ALL = b"\0"


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


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

    # -- what the store's locks use (and close() gives up) ------------------------------------
    @property
    def connection(self) -> Connection:
        """The members and their failover, for this store's locks."""
        return self._conn

    def encoded_key(self, key: str) -> bytes:
        """``key`` as stored in etcd: below the prefix, encoded."""
        return self._full(key)

    def track_stream(self, stream: WatchStream) -> WatchStream:
        """Remember a watch stream, so that ``close`` stops it; refused once the store is closed."""
        with self._mutex:
            if self._conn.closed.is_set():
                raise KVStoreError("the etcd store is closed")
            self._streams.add(stream)
        return stream

    def untrack_stream(self, stream: WatchStream) -> None:
        """Stop a stream and forget it."""
        stream.stop()
        with self._mutex:
            self._streams.discard(stream)

    def track_lock(self, lock: EtcdLock) -> None:
        """Remember a held lock, so that ``close`` gives it up."""
        with self._mutex:
            self._locks.add(lock)

    def untrack_lock(self, lock: EtcdLock) -> None:
        with self._mutex:
            self._locks.discard(lock)

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
        request = etcdrpc.LeaseGrantRequest(TTL=lease_seconds(ttl))
        return int(endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata).ID)

    @override
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        full = self._full(key)

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            # The grant and the put are one attempt: together within its timeout.
            started = time.monotonic()
            lease = 0 if ttl is None else self._grant(endpoint, ttl, timeout, metadata)
            request = etcdrpc.PutRequest(key=full, value=value, lease=lease)
            endpoint.kv.Put(request, timeout=time_left(started, timeout), metadata=metadata)

        self._conn.call(f"put {key!r}", invoke)

    @override
    def _get(self, key: str) -> KVPair:
        response = self._conn.range(f"get {key!r}", self._full(key))
        if not response.kvs:
            raise KeyNotFoundError(f"key not found: {key}")
        return self._pair(response.kvs[0])

    @override
    def _exists(self, key: str) -> bool:
        response = self._conn.range(f"exists {key!r}", self._full(key), count_only=True)
        return bool(response.count)

    @override
    def _delete(self, key: str) -> None:
        request = etcdrpc.DeleteRangeRequest(key=self._full(key))

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> None:
            endpoint.kv.DeleteRange(request, timeout=timeout, metadata=metadata)

        self._conn.call(f"delete {key!r}", invoke)

    def _children(self, directory: str) -> tuple[builtins.list[KVPair], int]:
        """The pairs below ``directory`` (sorted: etcd returns ranges in key order) and the revision read."""
        start, end = self._below(directory)
        response = self._conn.range(f"list {directory or '/'!r}", start, end)
        return [self._pair(kv) for kv in response.kvs], int(response.header.revision)

    @override
    def _list(self, directory: str) -> builtins.list[KVPair]:
        pairs, _ = self._children(directory)
        if not pairs and (not directory or not self._exists(directory)):
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return pairs

    @override
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

    @override
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

    @override
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
            self.untrack_stream(stream)

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
        self.track_stream(stream)
        stream.start()

    @override
    def _watch(self, key: str) -> Watch[KVPair]:
        full = self._full(key)
        first = self._conn.range(f"watch {key!r}", full)
        if not first.kvs:
            raise KeyNotFoundError(f"key not found: {key}")
        last = self._pair(first.kvs[0])
        streams: builtins.list[WatchStream] = []
        watch: Watch[KVPair] = Watch(on_close=lambda: self._stop_streams(streams))
        watch.emit(last)

        def on_events(events: Sequence[Any]) -> bool:
            nonlocal last
            for event in events:
                if event.type == DELETE_EVENT:
                    watch.finish()
                    return False
                last = self._pair(event.kv)
                watch.emit(last)
            return not watch.closed

        def on_compacted() -> int | None:
            # The changes we missed were compacted away: the current state stands in for them.
            nonlocal last
            response = self._conn.range(f"watch {key!r}", full)
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

    @override
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
                if event.type == DELETE_EVENT:
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
    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        return EtcdLock(self, key, value, ttl if ttl is not None else self._lock_ttl)


__all__ = ["EtcdLock", "EtcdStore"]
