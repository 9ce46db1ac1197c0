"""Locks on etcd for asyncio: the sync backend's protocol (:mod:`kvstore.backends.etcd_lock`), as tasks.

The lock is its own key, created only if absent, on a lease the holder keeps
alive; its value names the holder. Waiters watch the key and try again when
it is deleted. While held, a keeper task renews the lease every third of
its TTL and a watch stream on the key reports it deleted or overwritten;
either, or the keeper's own clock passing the last confirmed lease time
(etcd unreachable, or the process frozen), sets the lost-event. Sync and
async holders of one key exclude each other: the protocol is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc  # type: ignore[import-untyped]

from ..backends.etcd_client import DELETE_EVENT, is_lease_not_found, lease_seconds
from ..errors import CannotLockError, KVStoreError, NotReachableError
from .etcd_connection import AsyncEndpoint, AsyncWatchStream, cancel_quietly
from .store import AsyncLock

if TYPE_CHECKING:
    from .etcd import AsyncEtcdStore


class _Holding:
    """What a lock holds while held: its lease, the key's revision, and the tasks guarding them."""

    def __init__(self, lease: int, revision: int, ttl: int, confirmed_until: float) -> None:
        self.lease = lease
        self.revision = revision
        self.ttl = ttl
        self.confirmed_until = confirmed_until
        self.lost = asyncio.Event()
        self.stopped = False
        self.stream: AsyncWatchStream | None = None
        self.keeper: asyncio.Task[None] | None = None


class AsyncEtcdLock(AsyncLock):
    """A lock held as its own key with a lease the holder keeps alive (see the module's docstring)."""

    def __init__(self, store: AsyncEtcdStore, key: str, value: bytes, ttl: float) -> None:
        self._store = store
        self._conn = store.connection
        self._key = key
        self._full = store.encoded_key(key)
        self._value = value
        self._ttl = lease_seconds(ttl)
        self._holding: _Holding | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- acquiring ------------------------------------------------------------------------------------
    async def acquire(self, timeout: float | None = None) -> asyncio.Event:
        stale = self._holding
        if stale is not None:
            if not stale.lost.is_set():
                raise CannotLockError(f"lock {self._key!r} is already held by this lock object")
            with contextlib.suppress(KVStoreError):
                await self.release()  # clean up after the lock we lost
        deadline = None if timeout is None else time.monotonic() + timeout
        lease, granted_at = 0, 0.0
        try:
            while True:
                if not lease or time.monotonic() - granted_at > self._ttl / 2:
                    await self._revoke_quietly(lease)  # a lease fresh enough to be kept alive once we win
                    granted_at = time.monotonic()  # before the grant: etcd's lease runs out later, not sooner
                    lease = await self._grant()
                won, revision = await self._try_create(lease)
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
                await self._wait_for_release(revision, remaining)
        except BaseException:
            await self._revoke_quietly(lease)
            raise

    async def _grant(self) -> int:
        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> int:
            request = etcdrpc.LeaseGrantRequest(TTL=self._ttl)
            return int((await endpoint.lease.LeaseGrant(request, timeout=timeout, metadata=metadata)).ID)

        return await self._conn.call(f"lock {self._key!r}: grant lease", invoke)

    async def _try_create(self, lease: int) -> tuple[bool, int]:
        """(True, revision) if we now hold the key, (False, revision read) if another does; (False, -1): lease gone."""
        compare = etcdrpc.Compare(
            key=self._full, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
        )
        put = etcdrpc.PutRequest(key=self._full, value=self._value, lease=lease)
        request = etcdrpc.TxnRequest(
            compare=[compare],
            success=[etcdrpc.RequestOp(request_put=put)],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=self._full))],
        )

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> Any:
            try:
                return await endpoint.kv.Txn(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                if is_lease_not_found(exc):
                    return None
                raise

        response = await self._conn.call(f"lock {self._key!r}", invoke)
        if response is None:
            return False, -1
        if response.succeeded:
            return True, int(response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if kvs and int(kvs[0].lease) == lease:
            # An earlier attempt of this call did create it (its answer was lost to a failing member).
            return True, int(kvs[0].mod_revision)
        return False, int(response.header.revision)

    async def _wait_for_release(self, revision: int, timeout: float | None) -> None:
        """Wait until the key is deleted after ``revision`` (or ``timeout``, or a broken watch)."""
        changed = asyncio.Event()

        def on_events(events: Sequence[Any]) -> bool:
            if any(event.type == DELETE_EVENT for event in events):
                changed.set()
                return False
            return True

        async def on_compacted() -> int | None:
            changed.set()
            return None

        stream = self._store.open_stream(
            self._full,
            None,
            revision + 1,
            on_events,
            lambda _error: changed.set(),  # the next attempt reports the error, if it persists
            on_compacted,
            f"kvstore-etcd-lock-wait:{self._key}",
        )
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await changed.wait()
        finally:
            self._store.close_stream(stream)

    # -- holding ----------------------------------------------------------------------------------------
    def _hold(self, holding: _Holding) -> None:
        def on_events(_events: Sequence[Any]) -> bool:
            # Any change to the key after we wrote it (delete, lease expiry, another's put): no longer ours.
            self._lose(holding)
            return False

        async def on_compacted() -> int:
            response = await self._conn.range(f"lock {self._key!r}", self._full)
            kvs = response.kvs
            if not kvs or int(kvs[0].mod_revision) != holding.revision:
                self._lose(holding)
            return int(response.header.revision) + 1

        holding.stream = self._store.open_stream(  # first: it refuses when the store is closed
            self._full,
            None,
            holding.revision + 1,
            on_events,
            lambda _error: None,  # the keeper's clock decides when etcd is unreachable for too long
            on_compacted,
            f"kvstore-etcd-lock:{self._key}",
        )
        self._holding = holding
        self._store.track_lock(self)
        loop = asyncio.get_running_loop()
        holding.keeper = loop.create_task(self._keep_alive(holding), name=f"kvstore-etcd-lock-keeper:{self._key}")

    async def _keep_alive(self, holding: _Holding) -> None:
        """Renew the lease every third of its TTL; declare the lock lost once renewal is overdue."""
        interval = holding.ttl / 3
        # Counted from the grant, not from now: the lease may have aged while we waited to win.
        next_renewal = holding.confirmed_until - holding.ttl + interval
        while not holding.stopped:
            await asyncio.sleep(max(0.0, min(next_renewal, holding.confirmed_until) - time.monotonic()))
            now = time.monotonic()
            if now >= holding.confirmed_until:
                self._lose(holding)  # not renewed in time: etcd may have let it go
                return
            if now < next_renewal:
                continue
            try:
                ttl = await self._renew(holding.lease, budget=holding.confirmed_until - now)
            except KVStoreError:
                next_renewal = time.monotonic() + min(0.2, interval)
                continue
            if ttl <= 0:
                self._lose(holding)  # etcd says the lease is gone
                return
            holding.confirmed_until = now + ttl
            next_renewal = now + interval

    async def _renew(self, lease: int, budget: float) -> int:
        """One keep-alive round trip; the TTL etcd granted (0: the lease no longer exists)."""

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> int:
            call = endpoint.lease.LeaseKeepAlive(timeout=timeout, metadata=metadata)
            try:
                await call.write(etcdrpc.LeaseKeepAliveRequest(ID=lease))
                response = await call.read()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise NotReachableError("lease keep-alive: the stream ended without an answer")
            return int(response.TTL)

        return await self._conn.call(f"lock {self._key!r}: keep-alive", invoke, budget=max(budget, 0.05))

    def _lose(self, holding: _Holding) -> None:
        if holding.stopped or holding.lost.is_set():
            return
        holding.lost.set()
        # Make the store agree: a key still on our lease must not name us as holder.
        task = asyncio.get_running_loop().create_task(self._revoke_quietly(holding.lease))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- releasing ----------------------------------------------------------------------------------------
    async def release(self, *, budget: float | None = None) -> None:
        holding, self._holding = self._holding, None
        if holding is None:
            return
        holding.stopped = True
        self._store.close_stream(holding.stream)
        self._store.untrack_lock(self)
        await cancel_quietly(holding.keeper)
        await self._revoke(holding.lease, budget)

    async def _revoke(self, lease: int, budget: float | None = None) -> None:
        """Revoke ``lease``: etcd deletes the key with it, if the key is still on it."""

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> None:
            try:
                request = etcdrpc.LeaseRevokeRequest(ID=lease)
                await endpoint.lease.LeaseRevoke(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as exc:
                if not is_lease_not_found(exc):
                    raise

        await self._conn.call(f"unlock {self._key!r}", invoke, budget=budget)

    async def _revoke_quietly(self, lease: int) -> None:
        if lease:
            with contextlib.suppress(KVStoreError):
                await self._revoke(lease, budget=min(2.0, self._conn.timeout))
