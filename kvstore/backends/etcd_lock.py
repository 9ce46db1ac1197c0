"""Locks on etcd: the lock is its own key, created only if absent, on a lease the holder keeps alive.

The key's value is the lock's value, so ``get(key)`` names the holder
(Swarm's leader election reads the primary's address that way). Waiters
watch the key and try again when it is deleted. The lock uses only its
store's named surface: its ``connection``, ``encoded_key``,
``track_stream``/``untrack_stream`` and ``track_lock``/``untrack_lock``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc  # type: ignore[import-untyped]

from ..errors import CannotLockError, KVStoreError, NotReachableError
from ..store import Lock
from .etcd_client import DELETE_EVENT, Endpoint, WatchStream, is_lease_not_found, lease_seconds

if TYPE_CHECKING:
    from .etcd import EtcdStore


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
        self._conn = store.connection
        self._key = key
        self._full = store.encoded_key(key)
        self._value = value
        self._ttl = lease_seconds(ttl)
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
            if any(event.type == DELETE_EVENT for event in events):
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
        self._store.track_stream(stream)
        stream.start()
        try:
            changed.wait(timeout)
        finally:
            self._store.untrack_stream(stream)

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
            response = self._conn.range(f"lock {self._key!r}", self._full)
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
        self._store.track_stream(holding.stream)  # first: it refuses when the store is closed
        with self._mutex:
            self._holding = holding
        self._store.track_lock(self)
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
            self._store.untrack_stream(holding.stream)
        self._store.untrack_lock(self)
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
