"""Talking to Consul over python-consul2: addresses, failover, timeouts, and error mapping.

Every request of the ``consul`` backend goes through :meth:`ConsulTransport.call`,
so that the rules live in one place:

* One ``consul.Consul`` client per thread and address: python-consul2 keeps a
  ``requests.Session`` per client, and sessions are not meant to be shared
  between threads (a lock's renewal thread, watch threads and the caller run
  at once).
* A connection error moves on to the next address; the call is retried until
  ``connection_timeout`` has passed, then fails with ``NotReachableError``. A
  request that may have reached the server (the connection broke after it
  was sent) is retried only when repeating it is harmless: a compare-and-swap
  retried after it succeeded would report a conflict with itself.
* Every exception of requests, urllib3 and python-consul2 becomes a
  :class:`~kvstore.KVStoreError`; none leaks to the caller.

python-consul2 reads ``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_SSL``,
``CONSUL_HTTP_SSL_VERIFY`` and ``CONSUL_HTTP_TOKEN`` from the environment
and lets them override the arguments it was given; a store must talk to the
addresses and the token it was configured with, so those are set again after
the client is made.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import consul  # type: ignore[import-untyped]
import consul.base  # type: ignore[import-untyped]
import consul.std  # type: ignore[import-untyped]
import requests
import urllib3

from ..errors import InvalidArgumentError, KVStoreError, NotReachableError
from .failover import Failover, Retry, Rotation

T = TypeVar("T")

#: The ``Flags`` Consul's Go client (``api.LockFlagValue``) puts on lock keys and
#: Docker's libkv on every key it writes; Swarm's own managers refuse to lock
#: a key carrying other flags, so writing the same keeps the stores shareable.
LOCK_FLAG_VALUE = 0x2DDCCBC058A50C18

#: Consul's documented default floor for session TTLs (``session_ttl_min``).
CONSUL_SESSION_TTL_MIN = 10.0
#: And its ceiling.
CONSUL_SESSION_TTL_MAX = 86400.0

_TTL_RANGE = re.compile(r"must be between \[([^=\]]+)=")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``"10s"``, ``"1m30s"``, ``"500ms"``), as Consul prints them."""
    text = text.strip()
    if text in ("", "0"):
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"not a duration: {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total


def format_seconds(seconds: float) -> str:
    """A duration Consul accepts: ``"10s"``, ``"0.5s"`` (its TTLs take the units s, m and h)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"


def format_wait(seconds: float) -> str:
    """A blocking query's ``wait``, in milliseconds so that short waits stay exact."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def url_host(self) -> str:
        """The host as it goes into a URL: IPv6 addresses in brackets."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def __str__(self) -> str:
        return f"{self.url_host}:{self.port}"


class _PerThreadHTTP(consul.std.HTTPClient):  # type: ignore[misc]
    """python-consul2's HTTP layer with a ``requests.Session`` and a timeout per thread.

    A store is used from several threads at once (the caller's, watch
    threads, lock and TTL renewals); ``requests.Session`` is not meant to be
    shared between threads, and each call sets its own timeout.
    """

    def __init__(self, host: str, port: int, scheme: str, verify: bool | str, cert: tuple[str, str] | None) -> None:
        self._local = threading.local()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()
        self.auth: tuple[str, str] | None = None
        consul.base.HTTPClient.__init__(self, host, port, scheme, verify, cert, None)

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self.auth
            self._local.session = session
            with self._sessions_lock:
                self._sessions.add(session)
        return session

    @property
    def timeout(self) -> Any:
        return getattr(self._local, "timeout", None)

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self._local.timeout = value

    def close(self) -> None:
        """Close every thread's connections (best effort: a blocked request finishes on its own)."""
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            with contextlib.suppress(Exception):
                session.close()


class _Unavailable(Exception):
    """The server answered, but cannot serve (no cluster leader): try the next address."""


class InvalidSession(KVStoreError):
    """The session named in a request is gone (expired or destroyed)."""


def _never_sent(exc: BaseException) -> bool:
    """True if the request certainly did not reach the server (connect failed, or TLS did)."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    for arg in exc.args:
        reason = getattr(arg, "reason", arg)
        if isinstance(
            reason,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                ConnectionRefusedError,
            ),
        ):
            return True
    return False


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 exception."""
    for arg in exc.args:
        reason = getattr(arg, "reason", None)
        if reason is not None:
            return str(reason)
    return str(exc) or type(exc).__name__


#: What a request through python-consul2 may raise besides kvstore's own errors;
#: :meth:`ConsulTransport._classify` says what each means.
_FAILURES: tuple[type[Exception], ...] = (
    requests.exceptions.RequestException,
    consul.ConsulException,
    _Unavailable,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OSError,
)


def _status_of(exc: BaseException) -> int | None:
    match = re.match(r"(\d{3}) ", str(exc))
    return int(match.group(1)) if match else None


class ConsulTransport:
    """The addresses of one Consul cluster and how to reach them (TLS, token, basic auth)."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        timeout: float,
        scheme: str = "http",
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
        token: str | None = None,
        auth: tuple[str, str] | None = None,
        consistency: str = "default",
        datacenter: str | None = None,
    ) -> None:
        if not endpoints:
            raise InvalidArgumentError("the consul backend needs at least one address")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._scheme = scheme
        self._verify = verify
        self._cert = cert
        self._token = token
        self._auth = auth
        self._consistency = consistency
        self._datacenter = datacenter
        self._closed = False
        #: The smallest session TTL the servers accept; learnt from their refusal.
        self.session_ttl_min = 0.0
        self._clients = [self._make_client(endpoint) for endpoint in self.endpoints]
        self._index_of = {endpoint: index for index, endpoint in enumerate(self.endpoints)}
        self._failover = Failover(
            Rotation(self.endpoints),
            catch=_FAILURES,
            classify=self._classify,
            closed=self._closed_error,
        )

    # -- clients ----------------------------------------------------------------------
    def _make_client(self, endpoint: Endpoint) -> Any:
        """One python-consul2 client per address, its HTTP layer per thread."""
        with warnings.catch_warnings():
            # python-consul2 warns about API families (legacy ACL, discovery
            # chain) on every client it makes; none of them is used here.
            warnings.simplefilter("ignore", DeprecationWarning)
            client = consul.Consul(
                host=endpoint.url_host,
                port=endpoint.port,
                scheme=self._scheme,
                verify=self._verify,
                cert=self._cert,
                token=self._token,
                consistency=self._consistency,
                dc=self._datacenter,
            )
        # Set again what the environment may have overridden: the store talks to
        # the addresses and with the token it was configured with.
        client.http = _PerThreadHTTP(endpoint.url_host, endpoint.port, self._scheme, self._verify, self._cert)
        client.http.auth = self._auth
        client.scheme = self._scheme
        client.token = self._token
        return client

    def headers(self, client: Any) -> dict[str, str]:
        """Headers for requests made with the client's raw HTTP layer (the ACL token)."""
        token = cast("str | None", client.token)
        return {"X-Consul-Token": token} if token else {}

    def close(self) -> None:
        self._closed = True
        for client in self._clients:
            client.http.close()

    # -- the one way to make a request --------------------------------------------------------
    def call(
        self,
        what: str,
        request: Callable[[Any], T],
        *,
        idempotent: bool = True,
        read_timeout: float | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run ``request(client)`` against the current address, failing over until the timeout.

        ``read_timeout`` replaces ``connection_timeout`` as the time allowed for
        the answer (blocking queries wait on purpose). ``on_retry`` runs before
        each new attempt, e.g. so that a watch re-reads without blocking after
        a reconnect. The policy is :class:`~.failover.Failover`'s; what an
        exception means is :meth:`_classify`'s.
        """
        answer_within = read_timeout or self.timeout

        def attempt(endpoint: Endpoint, timeout: float) -> T:
            client = self._clients[self._index_of[endpoint]]
            client.http.timeout = (timeout, answer_within)
            return request(client)

        classify = self._classify if idempotent else self._classify_once
        return self._failover.call(what, attempt, self.timeout, classify=classify, on_retry=on_retry)

    def _closed_error(self, _what: str) -> KVStoreError | None:
        return KVStoreError("the consul store is closed") if self._closed else None

    def _classify_once(self, exc: Exception, endpoint: Endpoint, what: str) -> Retry | KVStoreError:
        """As :meth:`_classify`, for a request that must not be sent twice (it may have been applied)."""
        return self._classify(exc, endpoint, what, idempotent=False)

    def _classify(
        self, exc: Exception, endpoint: Endpoint, what: str, *, idempotent: bool = True
    ) -> Retry | KVStoreError:
        """What a failed request means: the next address may answer (:class:`Retry`), or the error to raise."""
        if isinstance(exc, requests.exceptions.SSLError):
            error = NotReachableError(
                f"consul at {endpoint}: TLS handshake failed ({_reason(exc)}); "
                "check the CA, the client certificate and its key"
            )
            return Retry(error, _reason(exc), tls=True)
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            if not idempotent and not _never_sent(exc):
                return NotReachableError(
                    f"consul at {endpoint}: connection lost during {what}, outcome unknown: {_reason(exc)}"
                )
            error = NotReachableError(f"consul at {endpoint} not reachable ({what}): {_reason(exc)}{self._hint(exc)}")
            return Retry(error, _reason(exc))
        if isinstance(exc, _Unavailable):
            return Retry(NotReachableError(f"consul at {endpoint} cannot serve {what}: {exc}"), str(exc))
        if isinstance(exc, consul.ConsulException):
            if _status_of(exc) in (500, 503) and "No cluster leader" in str(exc) and idempotent:
                return Retry(NotReachableError(f"consul at {endpoint}: no cluster leader ({what})"), str(exc))
            return self._status_error(exc, what, endpoint)
        if isinstance(exc, OSError) and not isinstance(exc, requests.exceptions.RequestException):
            return NotReachableError(f"consul at {endpoint}: {what} failed: {exc}")  # e.g. a TLS file that went away
        return KVStoreError(f"consul at {endpoint}: unexpected answer to {what}: {exc!r}")

    def _hint(self, exc: BaseException) -> str:
        """A guess at the cause when the server hung up without a word."""
        text = repr(exc)
        if "RemoteDisconnected" not in text and "ConnectionResetError" not in text:
            return ""
        if self._scheme == "https":
            return "; the server hung up during TLS: does it accept this client certificate?"
        return "; the server hung up without answering: does it expect https (Config.tls)?"

    @staticmethod
    def _status_error(exc: Exception, what: str, endpoint: Endpoint) -> KVStoreError:
        body = str(exc).strip() or type(exc).__name__
        if isinstance(exc, consul.ACLPermissionDenied):
            return KVStoreError(f"consul at {endpoint}: permission denied for {what} (check the ACL token): {body}")
        if isinstance(exc, consul.ACLDisabled):
            return KVStoreError(
                f"consul at {endpoint}: {what} was refused as unauthorized (check username/password): {body}"
            )
        if _status_of(exc) == 413:
            return InvalidArgumentError(f"consul at {endpoint}: {what} refused, too large: {body}")
        return KVStoreError(f"consul at {endpoint}: {what} failed: {body}")

    def blocking_timeout(self, wait: float) -> float:
        """How long to wait for a blocking query's answer: its wait, Consul's jitter, then the timeout."""
        return wait + wait / 16 + self.timeout

    # -- requests python-consul2 does not make the way we need ----------------------------------
    def probe(self) -> None:
        """Check that some address answers and has a leader (``NotReachableError`` within the timeout)."""

        def leader(client: Any) -> None:
            if not client.status.leader():
                raise _Unavailable("no cluster leader")

        self.call("status/leader", leader)

    def txn(self, what: str, ops: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
        """``PUT /v1/txn``: ``(committed, results, errors)``, 409 (rolled back) included."""

        def send(client: Any) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
            def answer(response: Any) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
                if response.code not in (200, 409):
                    consul.base.CB._status(response)  # noqa: SLF001 - the library's own status-to-error mapping, as on every call
                    raise ValueError(f"status {response.code}")
                data = json.loads(response.body)
                return response.code == 200, list(data.get("Results") or []), list(data.get("Errors") or [])

            return cast(
                "tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]",
                client.http.put(answer, "/v1/txn", headers=self.headers(client), data=json.dumps(ops)),
            )

        return self.call(what, send, idempotent=False)

    def session_ttl_for(self, ttl: float) -> float:
        """The session TTL behind a key or lock of ``ttl`` seconds.

        Consul invalidates a session up to twice its TTL after the last
        renewal, so half the key's TTL makes a dead writer's key vanish within
        the key's TTL. The servers' floor (10 s on a stock Consul) wins when
        it is higher: the key then outlives a dead writer by up to twice the
        floor.
        """
        return min(max(ttl / 2, self.session_ttl_min), CONSUL_SESSION_TTL_MAX)

    def create_session(self, ttl: float, *, behavior: str, lock_delay: str, name: str) -> tuple[str, float]:
        """A new session with that TTL (raised to the servers' floor): ``(id, ttl used)``."""
        for _ in range(2):
            ttl = min(max(ttl, self.session_ttl_min), CONSUL_SESSION_TTL_MAX)
            body = json.dumps({"Name": name, "Behavior": behavior, "TTL": format_seconds(ttl), "LockDelay": lock_delay})

            def create(client: Any, body: str = body) -> str:
                return cast(
                    str,
                    client.http.put(
                        consul.base.CB.json(is_id=True),
                        "/v1/session/create",
                        headers=self.headers(client),
                        data=body,
                    ),
                )

            try:
                return self.call("session/create", create, idempotent=False), ttl
            except KVStoreError as exc:
                floor = _TTL_RANGE.search(str(exc))
                if floor is None or "Invalid Session TTL" not in str(exc):
                    raise
                # The server told us its session_ttl_min: remember it and ask again.
                self.session_ttl_min = max(self.session_ttl_min, parse_go_duration(floor.group(1)))
        raise KVStoreError(f"consul refused a session TTL of {ttl} s")

    def renew_session(self, session: str) -> float | None:
        """Renew: the TTL the server now wants (it may raise it under load); None if the session is gone."""

        def renew(client: Any) -> float | None:
            try:
                data = client.session.renew(session)
            except consul.NotFound:
                return None
            ttl = (data or {}).get("TTL") or ""
            return parse_go_duration(ttl) if ttl else 0.0

        return self.call("session/renew", renew)

    def destroy_session(self, session: str) -> None:
        self.call("session/destroy", lambda client: client.session.destroy(session))

    def acquire(self, key: str, value: bytes, session: str, *, release: bool = False) -> bool:
        """``PUT ?acquire=`` (or ``?release=``); ``InvalidSession`` if the session is gone.

        Both are safe to repeat: the holder acquiring again only rewrites the
        contents, and a release that already happened fails harmlessly.
        """

        def put(client: Any) -> bool:
            try:
                if release:
                    return bool(client.kv.put(key, value, release=session, flags=LOCK_FLAG_VALUE))
                return bool(client.kv.put(key, value, acquire=session, flags=LOCK_FLAG_VALUE))
            except consul.ConsulException as exc:
                if "invalid session" in str(exc).lower():
                    raise InvalidSession(f"consul session {session} is gone") from None
                raise

        return self.call("release" if release else "acquire", put)
