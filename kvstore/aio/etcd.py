"""``etcd`` for asyncio: the store over etcd's v3 gRPC API through ``grpc.aio``, without threads.

The mapping of the contract onto etcd is the sync backend's
(:mod:`kvstore.backends.etcd`): ``last_index`` is ``mod_revision``, TTLs
are leases, atomic calls are transactions whose failure branch reads the
key, "below ``d``" is the range ``[d/, d0)``, and a watch reads the state at
a revision and streams from the one after it. Calls fail over between
members by the sync backend's rules (:class:`~.etcd_connection.AsyncConnection`).

Options (``Config.options``): ``lock_ttl`` (default 20 s), as for the sync store.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from etcd3 import etcdrpc  # type: ignore[import-untyped]

from .. import keys
from ..backends.etcd_client import DELETE_EVENT, lease_seconds, time_left
from ..errors import KeyExistsError, KeyModifiedError, KeyNotFoundError, KVStoreError
from ..options import positive_number
from ..store import Config, KVPair, override
from .etcd_connection import AsyncConnection, AsyncEndpoint, AsyncWatchStream
from .etcd_lock import AsyncEtcdLock
from .fed import FedWatch
from .store import AsyncLock, AsyncStore, AsyncWatch

DEFAULT_LOCK_TTL = 20.0

#: Every key, for the root directory of a store without prefix.
_ALL = b"\0"


def _encode(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class AsyncEtcdStore(AsyncStore):
    """A store in an etcd (v3) cluster; ``addrs`` are its members' ``host:port``. Nothing is sent until first use."""

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        self._lock_ttl = positive_number("etcd", self.config.options, "lock_ttl", DEFAULT_LOCK_TTL)
        self._conn = AsyncConnection(self.addrs, self.config)
        self._streams: set[AsyncWatchStream] = set()
        self._locks: set[AsyncEtcdLock] = set()

    # -- keys -------------------------------------------------------------------------------
    def _full(self, key: str) -> bytes:
        return _encode(keys.join(self.prefix, key))

    def pair_of(self, kv: Any) -> KVPair:
        """The pair of an etcd ``KeyValue``, its key relative to the prefix."""
        return KVPair(keys.strip_prefix(self.prefix, _decode(kv.key)), bytes(kv.value), int(kv.mod_revision))

    def _below(self, directory: str) -> tuple[bytes, bytes]:
        full = keys.join(self.prefix, directory)
        if not full:
            return _ALL, _ALL
        return _encode(full + "/"), _encode(full + "0")

    # -- what the store's watches and locks use (and aclose() gives up) ------------------------
    @property
    def connection(self) -> AsyncConnection:
        return self._conn

    def encoded_key(self, key: str) -> bytes:
        return self._full(key)

    def open_stream(
        self,
        key: bytes,
        range_end: bytes | None,
        start_revision: int,
        on_events: Callable[[Sequence[Any]], bool],
        on_failure: Callable[[KVStoreError], None],
        on_compacted: Callable[[], Awaitable[int | None]],
        name: str,
    ) -> AsyncWatchStream:
        """Start a watch stream that ``aclose`` stops; refused once the store is closed."""
        if self._conn.closed:
            raise KVStoreError("the etcd store is closed")
        stream = AsyncWatchStream(self._conn, key, range_end, start_revision, on_events, on_failure, on_compacted)
        self._streams.add(stream)
        return stream.start(name)

    def close_stream(self, stream: AsyncWatchStream | None) -> None:
        if stream is not None:
            stream.stop()
            self._streams.discard(stream)

    def track_lock(self, lock: AsyncEtcdLock) -> None:
        self._locks.add(lock)

    def untrack_lock(self, lock: AsyncEtcdLock) -> None:
        self._locks.discard(lock)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    async def aclose(self) -> None:
        """Stop watches, give up held locks (their leases are revoked), close the channels."""
        if self._conn.closed:
            return
        for lock in list(self._locks):
            with contextlib.suppress(KVStoreError):
                await lock.release(budget=min(1.0, self._conn.timeout))
        self._conn.closed = True
        streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.abort(KVStoreError("watch: the etcd store was closed"))
        await self._conn.close()

    # -- plain calls ----------------------------------------------------------------------------
    @staticmethod
    async def _grant(endpoint: AsyncEndpoint, ttl: float, timeout: float, metadata: Any) -> int:
        request = etcdrpc.LeaseGrantRequest(TTL=lease_seconds(ttl))
        return int((await endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata)).ID)

    @override
    async def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        full = self._full(key)

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> None:
            started = time.monotonic()  # the grant and the put are one attempt: together within its timeout
            lease = 0 if ttl is None else await self._grant(endpoint, ttl, timeout, metadata)
            request = etcdrpc.PutRequest(key=full, value=value, lease=lease)
            await endpoint.kv.Put(request, timeout=time_left(started, timeout), metadata=metadata)

        await self._conn.call(f"put {key!r}", invoke)

    @override
    async def _get(self, key: str) -> KVPair:
        response = await self._conn.range(f"get {key!r}", self._full(key))
        if not response.kvs:
            raise KeyNotFoundError(f"key not found: {key}")
        return self.pair_of(response.kvs[0])

    @override
    async def _exists(self, key: str) -> bool:
        response = await self._conn.range(f"exists {key!r}", self._full(key), count_only=True)
        return bool(response.count)

    @override
    async def _delete(self, key: str) -> None:
        request = etcdrpc.DeleteRangeRequest(key=self._full(key))

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> None:
            await endpoint.kv.DeleteRange(request, timeout=timeout, metadata=metadata)

        await self._conn.call(f"delete {key!r}", invoke)

    async def children(self, directory: str) -> tuple[builtins.list[KVPair], int]:
        """The pairs below ``directory`` (in key order) and the revision read."""
        start, end = self._below(directory)
        response = await self._conn.range(f"list {directory or '/'!r}", start, end)
        return [self.pair_of(kv) for kv in response.kvs], int(response.header.revision)

    @override
    async def _list(self, directory: str) -> builtins.list[KVPair]:
        pairs, _ = await self.children(directory)
        if not pairs and (not directory or not await self._exists(directory)):
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return pairs

    @override
    async def _delete_tree(self, directory: str) -> None:
        start, end = self._below(directory)
        operations = [etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=start, range_end=end))]
        if directory:
            own = etcdrpc.DeleteRangeRequest(key=self._full(directory))
            operations.append(etcdrpc.RequestOp(request_delete_range=own))
        request = etcdrpc.TxnRequest(success=operations)

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> None:
            await endpoint.kv.Txn(request, timeout=timeout, metadata=metadata)

        await self._conn.call(f"delete_tree {directory or '/'!r}", invoke)

    # -- atomic calls -------------------------------------------------------------------------------
    async def _txn(self, what: str, compare: Any, success: Any, full: bytes, ttl: float | None = None) -> Any:
        failure = [etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=full))]

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> Any:
            started = time.monotonic()
            lease = 0 if ttl is None else await self._grant(endpoint, ttl, timeout, metadata)
            request = etcdrpc.TxnRequest(compare=[compare], success=success(lease), failure=failure)
            return await endpoint.kv.Txn(request, timeout=time_left(started, timeout), metadata=metadata)

        return await self._conn.call(what, invoke)

    @staticmethod
    def _failed_read(response: Any) -> Any:
        kvs = response.responses[0].response_range.kvs
        return kvs[0] if kvs else None

    @override
    async def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        full = self._full(key)
        if previous is None:
            compare = etcdrpc.Compare(
                key=full, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
            )
        else:
            compare = etcdrpc.Compare(
                key=full, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL, mod_revision=previous.last_index
            )

        def success(lease: int) -> list[Any]:
            return [etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=full, value=value, lease=lease))]

        response = await self._txn(f"atomic_put {key!r}", compare, success, full, ttl)
        if response.succeeded:
            return KVPair(key, value, int(response.header.revision))
        if previous is None:
            raise KeyExistsError(f"key exists: {key}")
        if self._failed_read(response) is None:
            raise KeyNotFoundError(f"key not found: {key}")
        raise KeyModifiedError(f"key {key} changed since index {previous.last_index}")

    @override
    async def _atomic_delete(self, key: str, previous: KVPair) -> None:
        full = self._full(key)
        compare = etcdrpc.Compare(
            key=full, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL, mod_revision=previous.last_index
        )
        delete = [etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=full))]
        response = await self._txn(f"atomic_delete {key!r}", compare, lambda _lease: delete, full)
        if response.succeeded:
            return
        if self._failed_read(response) is None:
            raise KeyNotFoundError(f"key not found: {key}")
        raise KeyModifiedError(f"key {key} changed since index {previous.last_index}")

    # -- watches and locks -------------------------------------------------------------------------------
    @override
    def _watch(self, key: str) -> AsyncWatch[KVPair]:
        return EtcdKeyWatch(self, key)

    @override
    def _watch_tree(self, directory: str) -> AsyncWatch[builtins.list[KVPair]]:
        return EtcdTreeWatch(self, directory)

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> AsyncLock:
        return AsyncEtcdLock(self, key, value, ttl if ttl is not None else self._lock_ttl)


class EtcdKeyWatch(FedWatch[KVPair]):
    """One key: its value at a revision, then the stream from the revision after it; ends when it is deleted."""

    def __init__(self, store: AsyncEtcdStore, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._full = store.encoded_key(key)
        self._last: KVPair | None = None
        self._stream: AsyncWatchStream | None = None

    async def _first(self) -> KVPair:
        first = await self._store.connection.range(f"watch {self._key!r}", self._full)
        if not first.kvs:
            raise KeyNotFoundError(f"key not found: {self._key}")
        self._last = self._store.pair_of(first.kvs[0])
        self._stream = self._store.open_stream(
            self._full,
            None,
            int(first.header.revision) + 1,
            self._on_events,
            self.fail,
            self._on_compacted,
            f"kvstore-etcd-watch:{self._key}",
        )
        return self._last

    def _on_events(self, events: Sequence[Any]) -> bool:
        for event in events:
            if event.type == DELETE_EVENT:
                self.finish()
                return False
            self._last = self._store.pair_of(event.kv)
            self.emit(self._last)
        return not self.closed

    async def _on_compacted(self) -> int | None:
        # The changes we missed were compacted away: the current state stands in for them.
        response = await self._store.connection.range(f"watch {self._key!r}", self._full)
        if not response.kvs:
            self.finish()
            return None
        current = self._store.pair_of(response.kvs[0])
        if current != self._last:
            self._last = current
            self.emit(current)
        return int(response.header.revision) + 1

    async def _release(self) -> None:
        self._store.close_stream(self._stream)


class EtcdTreeWatch(FedWatch[builtins.list[KVPair]]):
    """A directory: its children at a revision, then the whole list again after every revision that changed it."""

    def __init__(self, store: AsyncEtcdStore, directory: str) -> None:
        super().__init__()
        self._store = store
        self._directory = directory
        self._state: dict[str, KVPair] = {}
        self._stream: AsyncWatchStream | None = None

    async def _first(self) -> builtins.list[KVPair]:
        pairs, revision = await self._store.children(self._directory)
        self._state = {p.key: p for p in pairs}
        start, end = _range_below(self._store, self._directory)
        self._stream = self._store.open_stream(
            start,
            end,
            revision + 1,
            self._on_events,
            self.fail,
            self._on_compacted,
            f"kvstore-etcd-watch-tree:{self._directory}",
        )
        return pairs

    def _snapshot(self) -> builtins.list[KVPair]:
        return [self._state[k] for k in sorted(self._state)]

    def _on_events(self, events: Sequence[Any]) -> bool:
        # One item per revision: the events of one transaction (a delete_tree, a lease expiring) are one change.
        changed = False
        group = -1
        for event in events:
            revision = int(event.kv.mod_revision)
            if changed and revision != group:
                self.emit(self._snapshot())
                changed = False
            group = revision
            pair = self._store.pair_of(event.kv)
            if event.type == DELETE_EVENT:
                changed = self._state.pop(pair.key, None) is not None or changed
            else:
                self._state[pair.key] = pair
                changed = True
        if changed:
            self.emit(self._snapshot())
        return not self.closed

    async def _on_compacted(self) -> int:
        current, read_at = await self._store.children(self._directory)
        if current != self._snapshot():
            self._state = {p.key: p for p in current}
            self.emit(current)
        return read_at + 1

    async def _release(self) -> None:
        self._store.close_stream(self._stream)


def _range_below(store: AsyncEtcdStore, directory: str) -> tuple[bytes, bytes]:
    full = keys.join(store.prefix, directory)
    if not full:
        return _ALL, _ALL
    return _encode(full + "/"), _encode(full + "0")


__all__ = ["AsyncEtcdLock", "AsyncEtcdStore"]
