"""The connection under the async etcd backend: grpcio's asyncio API (``grpc.aio``), no threads.

The rules are the sync backend's (:mod:`kvstore.backends.etcd_client`), and
most of them are its very code: the channel options, which gRPC errors let
a call move to another member (``classify_failure``), the out-of-budget
message, TLS credentials, auth tokens fetched and refreshed, and the
failover policy itself (:meth:`~kvstore.backends.failover.Failover.acall`,
the awaited twin of the sync ``call``). What differs is only that every RPC
is awaited on an ``aio`` channel, and that a watch stream is a task.

:class:`AsyncWatchStream` resumes as the sync ``WatchStream`` does: a broken
stream is opened again (on the next member if need be) from the revision
after the last one delivered, so nothing is lost across a reconnect; a
compacted revision makes the owner re-read; no stream for longer than the
connection timeout ends the watch with ``NotReachableError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
import grpc.aio  # type: ignore[import-untyped]
from etcd3 import etcdrpc  # type: ignore[import-untyped]

from ..addresses import parse_host_port
from ..backends.etcd_client import (
    CHANNEL_OPTIONS,
    DEFAULT_PORT,
    REQUIRE_LEADER,
    channel_credentials,
    classify_failure,
    is_retryable,
    map_rpc_error,
    no_answer_error,
    rpc_code,
    rpc_details,
)
from ..backends.failover import Failover, Retry, Rotation
from ..errors import InvalidArgumentError, KVStoreError, NotReachableError
from ..store import Config

T = TypeVar("T")

#: What gRPC's asyncio API raises for a call on a closed channel, besides the sync API's ValueError.
_CLOSED_CHANNEL = (ValueError, grpc.aio.UsageError)

#: What ``grpc.aio`` reports when writing to a stream whose connection broke (the member died under it):
#: status INTERNAL with this text, where the sync API reports UNAVAILABLE.
_BROKEN_STREAM_TEXT = "internal error from core"


def is_broken_stream(exc: grpc.RpcError) -> bool:
    """True for ``grpc.aio``'s "the stream's connection broke": another member (or a new stream) may answer."""
    return bool(rpc_code(exc) == grpc.StatusCode.INTERNAL and _BROKEN_STREAM_TEXT in rpc_details(exc).lower())


class AsyncEndpoint:
    """One etcd member's address, with a lazily opened ``aio`` channel (in the running loop) and its stubs."""

    def __init__(self, address: str, credentials: Any) -> None:
        host, port = parse_host_port(address, DEFAULT_PORT)
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._credentials = credentials
        self._channel: Any = None
        self.kv: Any = None
        self.lease: Any = None
        self.watch: Any = None
        self.auth: Any = None

    def open(self) -> AsyncEndpoint:
        """Make sure the channel and stubs exist (gRPC connects on the first call)."""
        if self._channel is None:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(self.target, self._credentials, options=CHANNEL_OPTIONS)
            self.kv = etcdrpc.KVStub(channel)
            self.lease = etcdrpc.LeaseStub(channel)
            self.watch = etcdrpc.WatchStub(channel)
            self.auth = etcdrpc.AuthStub(channel)
            self._channel = channel
        return self

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def __str__(self) -> str:
        return self.target


#: What one attempt of a call awaits: ``(endpoint, timeout, metadata) -> result``.
AsyncInvoke = Callable[[AsyncEndpoint, float, Any], Awaitable[T]]


class AsyncConnection:
    """The members of one etcd cluster, used one at a time, with retries and auth, as the sync ``Connection``."""

    def __init__(self, addrs: Sequence[str], config: Config) -> None:
        if not addrs:
            raise InvalidArgumentError("etcd needs at least one address (host:port)")
        credentials = channel_credentials(config.tls) if config.tls is not None else None
        self.endpoints = [AsyncEndpoint(addr, credentials) for addr in addrs]
        self.timeout = float(config.connection_timeout)
        if not self.timeout > 0:
            raise InvalidArgumentError(f"connection_timeout must be positive, not {config.connection_timeout!r}")
        if (config.username is None) != (config.password is None):
            raise InvalidArgumentError("etcd auth: give both username and password, or neither")
        self._username = config.username
        self._password = config.password
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self._rotation = Rotation(self.endpoints)
        self._failover = Failover(
            self._rotation,
            catch=(grpc.RpcError, *_CLOSED_CHANNEL),
            classify=self._classify,
            closed=self._closed_error,
            out_of_budget=self._no_answer,
        )
        self.closed = False

    # -- which member ---------------------------------------------------------------
    def current(self) -> AsyncEndpoint:
        return self._rotation.current().open()

    def fail_over(self, endpoint: AsyncEndpoint) -> None:
        self._rotation.fail_over(endpoint)

    # -- auth -------------------------------------------------------------------------
    async def metadata(self, endpoint: AsyncEndpoint, timeout: float, *extra: tuple[str, str]) -> Any:
        """Call metadata: the auth token (fetched when missing) and ``extra`` pairs."""
        if self._username is None:
            return tuple(extra) or None
        if self._token is None:
            async with self._auth_lock:
                if self._token is None:
                    self._token = await self._authenticate(endpoint, timeout)
        return (("token", self._token), *extra)

    async def _authenticate(self, endpoint: AsyncEndpoint, timeout: float) -> str:
        request = etcdrpc.AuthenticateRequest(name=self._username, password=self._password)
        try:
            response = await endpoint.auth.Authenticate(request, timeout=timeout)
        except grpc.RpcError as exc:
            if is_retryable(rpc_code(exc), rpc_details(exc)):
                raise
            raise KVStoreError(f"etcd authentication as {self._username!r} failed: {rpc_details(exc)}") from None
        return str(response.token)

    def forget_token(self) -> None:
        self._token = None

    # -- calls ------------------------------------------------------------------------
    async def call(self, what: str, invoke: AsyncInvoke[T], *, budget: float | None = None) -> T:
        """Await ``invoke`` on the current member, moving to others on failure, within the budget."""

        async def attempt(endpoint: AsyncEndpoint, timeout: float) -> T:
            endpoint.open()
            refreshes = 0
            while True:
                try:
                    return await invoke(endpoint, timeout, await self.metadata(endpoint, timeout))
                except grpc.RpcError as exc:
                    # A refused token (expired, or the member restarted): fetch a new one, here.
                    if refreshes < 2 and self._username and rpc_code(exc) == grpc.StatusCode.UNAUTHENTICATED:
                        refreshes += 1
                        self.forget_token()
                        continue
                    raise

        return await self._failover.acall(what, attempt, self.timeout if budget is None else budget)

    async def range(self, what: str, key: bytes, range_end: bytes | None = None, **fields: Any) -> Any:
        """One ``Range`` read of ``[key, range_end)`` (just ``key`` without ``range_end``); the raw answer."""
        request = etcdrpc.RangeRequest(key=key, **fields)
        if range_end is not None:
            request.range_end = range_end

        async def invoke(endpoint: AsyncEndpoint, timeout: float, metadata: Any) -> Any:
            return await endpoint.kv.Range(request, timeout=timeout, metadata=metadata)

        return await self.call(what, invoke)

    def _closed_error(self, what: str) -> KVStoreError | None:
        return KVStoreError(f"{what}: the etcd store is closed") if self.closed else None

    def _classify(self, exc: Exception, endpoint: AsyncEndpoint, what: str) -> Retry | KVStoreError:
        if isinstance(exc, grpc.aio.UsageError):
            exc = ValueError(str(exc))
        if isinstance(exc, grpc.RpcError) and is_broken_stream(exc):
            details = rpc_details(exc)
            return Retry(NotReachableError(f"{what}: etcd at {endpoint} broke the stream: {details}"), details)
        return classify_failure(exc, endpoint, what, closed=self.closed)

    def _no_answer(self, what: str, budget: float, tried: Mapping[str, tuple[int, str]], _last: Retry) -> KVStoreError:
        return no_answer_error([e.target for e in self.endpoints], what, budget, tried)

    async def close(self) -> None:
        self.closed = True
        for endpoint in self.endpoints:
            await endpoint.close()


class AsyncWatchStream:
    """One etcd watch on ``[key, range_end)`` that outlives broken streams without losing events; a task.

    ``on_events`` gets every batch of events (return False to stop);
    ``on_compacted`` re-reads the state when etcd compacted the revision we
    would resume from and returns the revision to go on from (None: over);
    ``on_failure`` gets the error that ends the watch.
    """

    def __init__(
        self,
        conn: AsyncConnection,
        key: bytes,
        range_end: bytes | None,
        start_revision: int,
        on_events: Callable[[Sequence[Any]], bool],
        on_failure: Callable[[KVStoreError], None],
        on_compacted: Callable[[], Awaitable[int | None]],
    ) -> None:
        self._conn = conn
        self._key = key
        self._range_end = range_end
        self.next_revision = start_revision
        self._on_events = on_events
        self._on_failure = on_failure
        self._on_compacted = on_compacted
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._outage_since: float | None = None
        self._pause = 0.05

    def start(self, name: str) -> AsyncWatchStream:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)
        return self

    def stop(self) -> None:
        """End the watch; returns at once (the task ends on its own)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def abort(self, error: KVStoreError) -> None:
        """End the watch and report ``error`` to its owner (the store is closing)."""
        was_stopped = self._stopped
        self.stop()
        if not was_stopped:
            self._on_failure(error)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _create_request(self) -> Any:
        create = etcdrpc.WatchCreateRequest(key=self._key, start_revision=self.next_revision)
        if self._range_end is not None:
            create.range_end = self._range_end
        return etcdrpc.WatchRequest(create_request=create)

    async def _run(self) -> None:
        while not self._stopped:
            failure = await self._stream_once(self._conn.current())
            if self._stopped:
                return
            failure = failure or self._outage_failure()
            if failure is not None:
                self._stopped = True
                self._on_failure(failure)
                return
            await asyncio.sleep(self._pause)
            self._pause = min(self._pause * 2, 0.5)

    async def _stream_once(self, endpoint: AsyncEndpoint) -> KVStoreError | None:
        """One etcd watch stream on ``endpoint``, read until it ends; the failure that ends the watch, if any."""
        call: Any = None
        try:
            metadata = await self._conn.metadata(endpoint, self._conn.timeout, REQUIRE_LEADER)
            call = endpoint.watch.Watch(metadata=metadata)
            await call.write(self._create_request())
            async for response in call:
                if not await self._take(response):
                    break
        except grpc.RpcError as exc:
            return self._rpc_failure(exc, endpoint)
        except NotReachableError:
            self._conn.fail_over(endpoint)  # could not re-read after compaction, or auth timed out
        except KVStoreError as exc:
            return exc
        except _CLOSED_CHANNEL:
            return KVStoreError("watch: the etcd store was closed")
        finally:
            if call is not None:
                call.cancel()
        return None

    async def _take(self, response: Any) -> bool:
        """Handle one answer of the stream; False once this stream is over (the watch may go on)."""
        if response.created:
            self._outage_since, self._pause = None, 0.05
        if response.compact_revision:
            resume = await self._on_compacted()
            if resume is None:
                self._stopped = True
            else:
                self.next_revision = resume
            return False
        if response.events:
            if not self._on_events(response.events):
                self._stopped = True
                return False
            self.next_revision = response.events[-1].kv.mod_revision + 1
        elif not response.created and not response.canceled:
            self.next_revision = max(self.next_revision, response.header.revision + 1)  # a progress notification
        return not response.canceled

    def _rpc_failure(self, exc: grpc.RpcError, endpoint: AsyncEndpoint) -> KVStoreError | None:
        if self._stopped:
            return None
        code = rpc_code(exc)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            self._conn.forget_token()
        elif is_retryable(code, rpc_details(exc)) or is_broken_stream(exc):
            self._conn.fail_over(endpoint)
        elif code == grpc.StatusCode.CANCELLED and self._conn.closed:
            return KVStoreError("watch: the etcd store was closed")
        else:
            return map_rpc_error(exc, "watch")
        return None

    def _outage_failure(self) -> KVStoreError | None:
        if self._conn.closed:
            return KVStoreError("watch: the etcd store was closed")
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        elif now - self._outage_since > self._conn.timeout:
            return NotReachableError(
                f"watch: no etcd member answered for {self._conn.timeout:g} s "
                f"({', '.join(e.target for e in self._conn.endpoints)})"
            )
        return None


async def cancel_quietly(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to end (not from within itself)."""
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, KVStoreError):
        await task
