"""The connection under the etcd backend: endpoints, fail-over, auth, errors, resumable watches.

We speak etcd's v3 gRPC API through the message classes and stubs that
``python3-etcd3`` generates (``etcd3.etcdrpc``), but not through its
high-level client, because that client cannot give the guarantees the
contract asks for:

- its failover only marks an endpoint failed and raises; the *caller* has to
  retry. Here every call retries on the next endpoint until its budget
  (``Config.connection_timeout``) is spent, so a dying member costs the
  caller nothing but latency;
- its watcher dies on the first broken stream (and its clean-up path raises
  ``NameError``), so a watch could not resume. :class:`WatchStream` below
  re-creates the etcd watch on another member from the last revision it
  delivered, so no change is lost across a reconnect;
- its errors are bare ``grpc.RpcError``/``Etcd3Exception``; here each one
  becomes a :class:`~kvstore.KVStoreError` subclass before it leaves.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

# gRPC's C core writes its own log lines to stderr (a failed TLS handshake
# prints three), beside the one error this backend raises for the same
# failure; a command line tool then shows noise instead of one clear line.
# Silence it unless the user chose a verbosity (it is read at import time).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # type: ignore[import-untyped]
from etcd3 import etcdrpc  # type: ignore[import-untyped]

from ..addresses import parse_host_port
from ..errors import InvalidArgumentError, KVStoreError, NotReachableError
from ..store import ClientTLS, Config
from .failover import Failover, Retry, Rotation
from .tls_files import read_tls_files

T = TypeVar("T")

DEFAULT_PORT = 2379

#: etcd's event types (``mvccpb.Event.EventType``).
PUT_EVENT = 0
DELETE_EVENT = 1


def lease_seconds(ttl: float) -> int:
    """etcd leases count whole seconds: round up, so a key never vanishes early."""
    return max(1, math.ceil(ttl))


#: gRPC channel options.
#: - Keepalive pings find a member that vanished without closing its sockets
#:   (power loss, partition, SIGSTOP) within ~15 s even on an idle watch;
#:   etcd refuses pings more frequent than every 5 s (``--grpc-keepalive-min-time``)
#:   and pings without an open stream, so neither is done.
#: - Short reconnect backoff: gRPC's default grows to two minutes, during which
#:   a member that came back would still be reported down.
#: - No message size limit of our own: etcd enforces its request limit, and a
#:   large ``list`` must not fail on the client's 4 MiB default.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]

#: gRPC codes after which the same request may go to another member: the
#: member is down or unreachable, has no leader, or lost it mid-request
#: (etcd reports "leader changed", "no leader" and "request timed out" as
#: UNAVAILABLE). Not RESOURCE_EXHAUSTED as such: "database space exceeded"
#: has that code too, and no other member can help with it.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

#: Error texts that mean "this member cannot answer now", whatever code they
#: come with. A member without quorum times a write out on its own clock
#: (etcd's request timeout, 5 s plus two election timeouts) and reports
#: Go's ``context deadline exceeded`` as UNKNOWN, not DEADLINE_EXCEEDED;
#: a client racing the member's own deadline sees the same. The others are
#: etcd's own texts for a member that lost its leader, is stopping, or is
#: shedding load: another member, or the same one a moment later, can answer.
_UNAVAILABLE_TEXTS = (
    "context deadline exceeded",
    "etcdserver: request timed out",
    "etcdserver: leader changed",
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: not capable",
    "etcdserver: server stopped",
    "etcdserver: unhealthy cluster",
    "etcdserver: too many requests",
    "raft: stopped",
)


def is_retryable(code: Any, details: str) -> bool:
    """True when the failure means "this member cannot answer now": the request may go to another member."""
    if code in _RETRYABLE:
        return True
    lowered = details.lower()
    return any(text in lowered for text in _UNAVAILABLE_TEXTS)


#: Substrings of gRPC's error details that mean the TLS handshake failed:
#: a configuration problem that retrying cannot fix.
_TLS_MARKERS = ("handshake", "tsi_", "ssl", "certificate")

#: Metadata that makes a member end a watch stream once it has lost the
#: leader (etcd's ``WithRequireLeader``): a member cut off from the cluster
#: would otherwise keep the watch open and silently stale.
REQUIRE_LEADER = ("hasleader", "true")


def rpc_code(exc: grpc.RpcError) -> Any:
    """The gRPC status code of a failed call (sync or ``grpc.aio``); UNKNOWN when it has none."""
    code = getattr(exc, "code", None)
    return code() if callable(code) else grpc.StatusCode.UNKNOWN  # not a Call: no code to read


def rpc_details(exc: grpc.RpcError) -> str:
    """What the server (or gRPC) said about a failed call."""
    details = getattr(exc, "details", None)
    return str((details() if callable(details) else None) or exc)


def is_tls_failure(details: str) -> bool:
    """True when gRPC's error text says the TLS handshake (not the network) failed."""
    lowered = details.lower()
    return any(marker in lowered for marker in _TLS_MARKERS)


def map_rpc_error(exc: grpc.RpcError, what: str) -> KVStoreError:
    """The kvstore error for a gRPC failure of ``what`` (a short description of the call)."""
    code = rpc_code(exc)
    details = rpc_details(exc)
    if is_retryable(code, details):
        return NotReachableError(f"{what}: etcd is not reachable: {details}")
    if "user name is empty" in details:
        return KVStoreError(f"{what}: etcd has auth enabled: give Config(username=..., password=...)")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgumentError(f"{what}: etcd rejected the request: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return KVStoreError(f"{what}: etcd refused access: {details}")
    if code == grpc.StatusCode.CANCELLED:
        return KVStoreError(f"{what}: cancelled (the store is closing): {details}")
    name = getattr(code, "name", str(code))
    return KVStoreError(f"{what}: etcd error {name}: {details}")


def is_lease_not_found(exc: grpc.RpcError) -> bool:
    """etcd's "requested lease not found": the lease expired or was revoked."""
    return bool(rpc_code(exc) == grpc.StatusCode.NOT_FOUND and "lease" in rpc_details(exc).lower())


def channel_credentials(tls: ClientTLS) -> Any:
    """gRPC TLS credentials from kvstore's :class:`ClientTLS`, reading (and checking) the files now.

    Reading them here, before any connection, turns a missing or unreadable
    file into an immediate error that names the file instead of a
    connection failure after the timeout.
    """
    files = read_tls_files("etcd", tls, unreadable=NotReachableError)
    try:
        return grpc.ssl_channel_credentials(
            root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
        )
    except (TypeError, ValueError) as exc:  # grpc checks little here, and lazily: be safe
        raise NotReachableError(f"etcd TLS: unusable certificate files: {exc}") from None


def classify_failure(exc: Exception, endpoint: object, what: str, *, closed: bool) -> Retry | KVStoreError:
    """What a failed attempt means: another member may answer (:class:`Retry`), or the error to raise.

    Shared by the sync connection and ``kvstore.aio``'s, so both fail over on the same errors.
    """
    if isinstance(exc, ValueError):  # gRPC: "Cannot invoke RPC on closed channel!"
        if closed:
            return KVStoreError(f"{what}: the etcd store is closed")
        return KVStoreError(f"{what}: {exc}")
    code = rpc_code(exc)
    details = rpc_details(exc)
    if not is_retryable(code, details):
        return map_rpc_error(exc, what)
    if is_tls_failure(details):
        error = NotReachableError(
            f"{what}: the TLS handshake with etcd at {endpoint} failed (is the CA the one "
            f"that signed the server, and the client certificate one it accepts?): {details}"
        )
        return Retry(error, details, tls=True)
    return Retry(NotReachableError(f"{what}: etcd is not reachable: {details}"), details)


def no_answer_error(
    targets: Sequence[str], what: str, budget: float, tried: Mapping[str, tuple[int, str]]
) -> KVStoreError:
    """The error of a call that ran out of budget: only what really happened, member by member."""

    def attempts(target: str) -> str:
        count, error = tried[target]
        return f"{target} ({'once' if count == 1 else f'{count} times'}, last: {error})"

    untried = [t for t in targets if t not in tried]
    if not tried:
        return NotReachableError(f"{what}: no etcd member could be tried within {budget:g} s ({', '.join(untried)})")
    if len(targets) == 1:
        return NotReachableError(f"{what}: etcd at {attempts(targets[0])} did not answer within {budget:g} s")
    message = f"{what}: no etcd member answered within {budget:g} s; tried {', '.join(map(attempts, tried))}"
    if untried:
        message += f"; no time was left to try {', '.join(untried)}"
    return NotReachableError(message)


class Endpoint:
    """One etcd member's address, with a lazily opened channel and its stubs."""

    def __init__(self, address: str, credentials: Any) -> None:
        host, port = parse_host_port(address, DEFAULT_PORT)
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._credentials = credentials
        self._lock = threading.Lock()
        self._channel: Any = None
        self.kv: Any = None
        self.lease: Any = None
        self.watch: Any = None
        self.auth: Any = None

    def open(self) -> Endpoint:
        """Make sure the channel and stubs exist (gRPC connects on the first call)."""
        if self._channel is None:
            with self._lock:
                if self._channel is None:
                    if self._credentials is None:
                        channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
                    else:
                        channel = grpc.secure_channel(self.target, self._credentials, options=CHANNEL_OPTIONS)
                    self.kv = etcdrpc.KVStub(channel)
                    self.lease = etcdrpc.LeaseStub(channel)
                    self.watch = etcdrpc.WatchStub(channel)
                    self.auth = etcdrpc.AuthStub(channel)
                    self._channel = channel
        return self

    def close(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def __str__(self) -> str:
        return self.target


#: What one attempt of a call runs: ``(endpoint, timeout, metadata) -> result``.
#: ``timeout`` is the whole attempt's: an attempt of several RPCs gives each
#: what is left of it (:func:`time_left`), never the whole timeout again.
Invoke = Callable[[Endpoint, float, Any], T]


def time_left(started: float, timeout: float) -> float:
    """What remains of an attempt of ``timeout`` seconds begun at ``started`` (monotonic), for its next RPC.

    Never zero or less: gRPC takes that as "no deadline"; a spent attempt
    gets a token timeout and fails at once with DEADLINE_EXCEEDED, which
    moves the call to the next member.
    """
    return max(0.001, started + timeout - time.monotonic())


class Connection:
    """The members of one etcd cluster, used one at a time, with retries and auth.

    One member is "current"; every call goes there. When it fails with a
    network-level error the call moves to the next member and tries again,
    until the call's budget (``connection_timeout``) is spent; the next
    member then stays current, so later calls do not pay for the dead one
    (the policy is :class:`~.failover.Failover`'s; what a gRPC error means is
    :meth:`_classify`'s).
    """

    def __init__(self, addrs: Sequence[str], config: Config) -> None:
        if not addrs:
            raise InvalidArgumentError("etcd needs at least one address (host:port)")
        credentials = channel_credentials(config.tls) if config.tls is not None else None
        self.endpoints = [Endpoint(addr, credentials) for addr in addrs]
        self.timeout = float(config.connection_timeout)
        if not self.timeout > 0:
            raise InvalidArgumentError(f"connection_timeout must be positive, not {config.connection_timeout!r}")
        if (config.username is None) != (config.password is None):
            raise InvalidArgumentError("etcd auth: give both username and password, or neither")
        self._username = config.username
        self._password = config.password
        self._token: str | None = None
        self._auth_lock = threading.Lock()
        self._rotation = Rotation(self.endpoints)
        self._failover = Failover(
            self._rotation,
            catch=(grpc.RpcError, ValueError),
            classify=self._classify,
            closed=self._closed_error,
            out_of_budget=self._no_answer,
        )
        self.closed = threading.Event()

    # -- which member ---------------------------------------------------------------
    def current(self) -> Endpoint:
        return self._rotation.current().open()

    def fail_over(self, endpoint: Endpoint) -> None:
        """``endpoint`` failed: make the next member current (unless another thread already did)."""
        self._rotation.fail_over(endpoint)

    # -- auth -------------------------------------------------------------------------
    def metadata(self, endpoint: Endpoint, timeout: float, *extra: tuple[str, str]) -> Any:
        """Call metadata: the auth token (fetched when missing) and ``extra`` pairs."""
        if self._username is None:
            return tuple(extra) or None
        token = self._token
        if token is None:
            with self._auth_lock:
                if self._token is None:
                    request = etcdrpc.AuthenticateRequest(name=self._username, password=self._password)
                    try:
                        response = endpoint.auth.Authenticate(request, timeout=timeout)
                    except grpc.RpcError as exc:
                        if is_retryable(rpc_code(exc), rpc_details(exc)):
                            raise
                        raise KVStoreError(
                            f"etcd authentication as {self._username!r} failed: {rpc_details(exc)}"
                        ) from None
                    self._token = str(response.token)
                token = self._token
        return (("token", token), *extra)

    def forget_token(self) -> None:
        """The token was refused (expired, or the member restarted): fetch a new one next time."""
        self._token = None

    # -- calls ------------------------------------------------------------------------
    def call(self, what: str, invoke: Invoke[T], *, budget: float | None = None) -> T:
        """Run ``invoke`` on the current member, moving to others on failure, within the budget.

        ``budget`` defaults to ``connection_timeout``. The result is returned;
        every failure leaves as a :class:`KVStoreError`; running out of
        budget names the members that were tried (with what each answered
        last) and those there was no time left for.
        """

        def attempt(endpoint: Endpoint, timeout: float) -> T:
            endpoint.open()
            refreshes = 0
            while True:
                try:
                    return invoke(endpoint, timeout, self.metadata(endpoint, timeout))
                except grpc.RpcError as exc:
                    # A refused token (expired, or the member restarted): fetch a new one, here.
                    if refreshes < 2 and self._username and rpc_code(exc) == grpc.StatusCode.UNAUTHENTICATED:
                        refreshes += 1
                        self.forget_token()
                        continue
                    raise

        return self._failover.call(what, attempt, self.timeout if budget is None else budget)

    def range(self, what: str, key: bytes, range_end: bytes | None = None, **fields: Any) -> Any:
        """One ``Range`` read of ``[key, range_end)`` (just ``key`` without ``range_end``); the raw answer."""
        request = etcdrpc.RangeRequest(key=key, **fields)
        if range_end is not None:
            request.range_end = range_end

        def invoke(endpoint: Endpoint, timeout: float, metadata: Any) -> Any:
            return endpoint.kv.Range(request, timeout=timeout, metadata=metadata)

        return self.call(what, invoke)

    def _closed_error(self, what: str) -> KVStoreError | None:
        return KVStoreError(f"{what}: the etcd store is closed") if self.closed.is_set() else None

    def _classify(self, exc: Exception, endpoint: Endpoint, what: str) -> Retry | KVStoreError:
        return classify_failure(exc, endpoint, what, closed=self.closed.is_set())

    def _no_answer(self, what: str, budget: float, tried: Mapping[str, tuple[int, str]], _last: Retry) -> KVStoreError:
        return no_answer_error([e.target for e in self.endpoints], what, budget, tried)

    def close(self) -> None:
        self.closed.set()
        for endpoint in self.endpoints:
            endpoint.close()


class WatchStream:
    """One etcd watch on ``[key, range_end)`` that outlives broken streams without losing events.

    Its thread hands every batch of events to ``on_events`` (return False to
    stop) and remembers the revision after the last one. When the stream
    breaks (member gone, leader lost, token expired) it opens a new one, on
    the next member if need be, starting at that revision, so the events in
    between are delivered, not lost. If etcd compacted that revision away,
    ``on_compacted`` re-reads the state and returns the revision to go on
    from (None: the watch is over). If no stream can be opened for longer than ``connection_timeout``,
    ``on_failure`` gets a :class:`NotReachableError` and the thread ends.
    """

    def __init__(
        self,
        conn: Connection,
        key: bytes,
        range_end: bytes | None,
        start_revision: int,
        on_events: Callable[[Sequence[Any]], bool],
        on_failure: Callable[[KVStoreError], None],
        on_compacted: Callable[[], int | None],
        name: str = "kvstore-etcd-watch",
    ) -> None:
        self._conn = conn
        self._key = key
        self._range_end = range_end
        self.next_revision = start_revision
        self._on_events = on_events
        self._on_failure = on_failure
        self._on_compacted = on_compacted
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._call: Any = None
        #: Since when no stream could be opened (None while one runs), and the pause before the next try.
        self._outage_since: float | None = None
        self._pause = 0.05
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> WatchStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch; returns at once (the thread exits on its own)."""
        self._stop.set()
        with self._mutex:
            call = self._call
        if call is not None:
            with contextlib.suppress(Exception):
                call.cancel()

    def abort(self, error: KVStoreError) -> None:
        """End the watch and report ``error`` to its owner (the store is closing)."""
        was_stopped = self._stop.is_set()
        self.stop()
        if not was_stopped:
            self._on_failure(error)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _create_request(self) -> Any:
        create = etcdrpc.WatchCreateRequest(key=self._key, start_revision=self.next_revision)
        if self._range_end is not None:
            create.range_end = self._range_end
        return etcdrpc.WatchRequest(create_request=create)

    def _requests(self, done: threading.Event) -> Iterator[Any]:
        """The client side of the stream: one create request, then silence until it is done."""
        yield self._create_request()
        done.wait()

    def _run(self) -> None:
        while not self._stop.is_set():
            failure = self._stream_once(self._conn.current())
            if self._stop.is_set():
                return
            failure = failure or self._outage_failure()
            if failure is not None:
                self._stop.set()
                self._on_failure(failure)
                return
            self._stop.wait(self._pause)
            self._pause = min(self._pause * 2, 0.5)

    def _stream_once(self, endpoint: Endpoint) -> KVStoreError | None:
        """One etcd watch stream on ``endpoint``, read until it ends; the failure that ends the watch, if any."""
        done = threading.Event()
        try:
            metadata = self._conn.metadata(endpoint, self._conn.timeout, REQUIRE_LEADER)
            call = endpoint.watch.Watch(self._requests(done), metadata=metadata)
            with self._mutex:
                self._call = call
            if self._stop.is_set():
                call.cancel()
            for response in call:
                if not self._take(response):
                    break
        except grpc.RpcError as exc:
            return self._rpc_failure(exc, endpoint)
        except NotReachableError:
            self._conn.fail_over(endpoint)  # could not re-read after compaction, or auth timed out
        except KVStoreError as exc:
            return exc
        except ValueError:  # the channel was closed under us: the store is closing
            return KVStoreError("watch: the etcd store was closed")
        except Exception as exc:  # noqa: BLE001 - a bug must end the watch loudly, not leave its reader blocked
            return KVStoreError(f"watch: unexpected failure: {exc!r}")
        finally:
            done.set()
            with self._mutex:
                call, self._call = self._call, None
            if call is not None:
                with contextlib.suppress(Exception):
                    call.cancel()
        return None

    def _take(self, response: Any) -> bool:
        """Handle one answer of the stream; False once this stream is over (the watch may go on)."""
        if response.created:
            self._outage_since, self._pause = None, 0.05
        if response.compact_revision:
            resume = self._on_compacted()
            if resume is None:
                self._stop.set()
            else:
                self.next_revision = resume
            return False
        if response.events:
            if not self._on_events(response.events):
                self._stop.set()
                return False
            self.next_revision = response.events[-1].kv.mod_revision + 1
        elif not response.created and not response.canceled:
            # A progress notification: everything up to here was sent.
            self.next_revision = max(self.next_revision, response.header.revision + 1)
        return not response.canceled  # canceled: e.g. the member lost its leader; open a new stream

    def _rpc_failure(self, exc: grpc.RpcError, endpoint: Endpoint) -> KVStoreError | None:
        """A broken stream: the error that ends the watch, or None to open a new stream (elsewhere)."""
        if self._stop.is_set():
            return None
        code = rpc_code(exc)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            self._conn.forget_token()
        elif is_retryable(code, rpc_details(exc)):
            self._conn.fail_over(endpoint)
        else:
            return map_rpc_error(exc, "watch")
        return None

    def _outage_failure(self) -> KVStoreError | None:
        """No stream for a while: the error that ends the watch once that outlasts the connection timeout."""
        if self._conn.closed.is_set():
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
