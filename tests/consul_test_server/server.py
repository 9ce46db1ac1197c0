"""The HTTP side of the test server: Consul's ``/v1`` routes over :class:`~.state.State`.

One asyncio event loop serves every request, runs the session TTL timers
and reaps tombstones, so the state needs no locks. A blocking query (``?index=``)
parks on a future that the state's change callback resolves when a key
below what the query reads (or a session it reads) changes, then runs the
query again, exactly as Consul's ``blockingQuery`` loop does: it answers
once the result's index passes the client's, or when ``wait`` (plus up to
``wait/16`` of jitter) runs out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .durations import parse_duration
from .state import SESSION_TTL_MULTIPLIER, ConsulError, Session, State

#: Blocking-query ``wait``: the default and the cap, as documented.
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
#: Consul's default datacenter name (``-datacenter``).
DEFAULT_DATACENTER = "dc1"
#: What Consul answers (500, plain text) when ``?dc=`` names a datacenter it has no route to.
NO_DC_PATH = "No path to datacenter"
#: Consul's own tombstone TTL; tests pass a short one to see indexes go backwards.
DEFAULT_TOMBSTONE_TTL = 900.0

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ACL_PATHS = ("/v1/kv", "/v1/txn", "/v1/session")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QueryResult = tuple[int, Any]


def log(message: str) -> None:
    """One line to the server's log (stdout, which the test fixture sends to a file)."""
    print(message, file=sys.stdout, flush=True)


@dataclass
class _Waiter:
    future: asyncio.Future[None]
    key_matches: Callable[[str], bool] | None
    session_matches: Callable[[str], bool] | None


class _Waiters:
    """Blocked queries, each waiting for a change to what it reads."""

    def __init__(self) -> None:
        self._items: list[_Waiter] = []

    def add(
        self,
        key_matches: Callable[[str], bool] | None,
        session_matches: Callable[[str], bool] | None,
    ) -> _Waiter:
        waiter = _Waiter(asyncio.get_running_loop().create_future(), key_matches, session_matches)
        self._items.append(waiter)
        return waiter

    def discard(self, waiter: _Waiter) -> None:
        if waiter in self._items:
            self._items.remove(waiter)

    def wake(self, keys: set[str], sessions: set[str]) -> None:
        for waiter in list(self._items):
            hit = (waiter.key_matches is not None and any(waiter.key_matches(k) for k in keys)) or (
                waiter.session_matches is not None and any(waiter.session_matches(s) for s in sessions)
            )
            if hit:
                self._items.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(None)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str) -> web.Response:
    return web.Response(text=message, status=status, content_type="text/plain")


def _uint(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) >= 2**64:
        raise ConsulError(400, f"Invalid {name}: {raw!r} is not an unsigned 64-bit integer")
    return int(raw)


class ConsulTestServer:
    """Consul's HTTP API for what kvstore uses, with optional ACL token, basic auth and persistence."""

    def __init__(
        self,
        state: State,
        *,
        data_file: Path | None = None,
        acl_token: str | None = None,
        basic_auth: str | None = None,
        tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL,
        advertise: str = "127.0.0.1:8300",
        datacenter: str = DEFAULT_DATACENTER,
    ) -> None:
        self.state = state
        self.datacenter = datacenter
        self.data_file = data_file
        self.acl_token = acl_token
        self.basic_auth = basic_auth
        self.tombstone_ttl = tombstone_ttl
        self.advertise = advertise
        self._waiters = _Waiters()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        state.on_change = self._changed

    # -- state changes ----------------------------------------------------------------------
    def _changed(self, keys: set[str], sessions: set[str]) -> None:
        for session_id in sessions:
            if session_id not in self.state.sessions:
                timer = self._timers.pop(session_id, None)
                if timer is not None:
                    timer.cancel()
        self._waiters.wake(keys, sessions)
        self.save()

    def save(self) -> None:
        """Write the state to the data file (write, then rename: a kill never leaves half a file)."""
        if self.data_file is None:
            return
        scratch = self.data_file.with_name(self.data_file.name + ".tmp")
        scratch.write_text(json.dumps(self.state.dump()))
        os.replace(scratch, self.data_file)

    def load(self) -> None:
        if self.data_file is not None and self.data_file.exists():
            self.state.load(json.loads(self.data_file.read_text()))
            log(f"loaded {len(self.state.kv)} keys, {len(self.state.sessions)} sessions, index {self.state.raft_index}")

    def _arm(self, session: Session) -> None:
        """(Re)start a session's TTL timer: invalidation after twice the TTL, as Consul does."""
        if session.ttl <= 0:
            return
        old = self._timers.pop(session.id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[session.id] = loop.call_later(session.ttl * SESSION_TTL_MULTIPLIER, self._expire, session.id)

    def _expire(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        if session_id in self.state.sessions:
            log(f"session {session_id} expired (TTL)")
            self.state.session_destroy(session_id)

    async def _reap_tombstones(self) -> None:
        interval = max(0.05, min(30.0, self.tombstone_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            self.state.reap_tombstones(self.state.clock() - self.tombstone_ttl)

    # -- the application ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self._auth, self._datacenters], client_max_size=8 * 1024 * 1024
        )
        app.router.add_route("*", "/v1/kv/{key:.*}", self.kv)
        app.router.add_route("*", "/v1/txn", self.txn)
        app.router.add_route("*", "/v1/session/create", self.session_create)
        app.router.add_route("*", "/v1/session/destroy/{id}", self.session_destroy)
        app.router.add_route("*", "/v1/session/renew/{id}", self.session_renew)
        app.router.add_route("*", "/v1/session/info/{id}", self.session_info)
        app.router.add_route("*", "/v1/session/node/{node}", self.session_node)
        app.router.add_route("*", "/v1/session/list", self.session_list)
        app.router.add_route("*", "/v1/status/leader", self.status_leader)
        app.router.add_route("*", "/v1/status/peers", self.status_peers)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConsulError as exc:
            return _error(exc.status, exc.message)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.basic_auth is not None:
            # Consul has no basic auth of its own; deployments put it in a
            # reverse proxy in front, which is what this emulates.
            expected = "Basic " + base64.b64encode(self.basic_auth.encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(
                    text="Unauthorized",
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="consul-test-server"'},
                )
        if self.acl_token is not None and request.path.startswith(_ACL_PATHS):
            token = request.headers.get("X-Consul-Token") or request.query.get("token")
            bearer = request.headers.get("Authorization", "")
            if not token and bearer.startswith("Bearer "):
                token = bearer[len("Bearer ") :]
            if not token:
                return _error(403, "Permission denied: anonymous token lacks permission")
            if token != self.acl_token:
                return _error(403, "ACL not found")
        return await handler(request)

    @web.middleware
    async def _datacenters(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``?dc=`` naming another datacenter: Consul would forward the request there.

        This server is a single datacenter that knows no other, so, like a
        Consul with no WAN peers, it answers 500 "No path to datacenter"
        instead of serving the request from its own state (an empty ``dc``
        means the local one, as in Consul's ``parseDC``).
        """
        dc = request.query.get("dc", "")
        if dc and dc != self.datacenter:
            return _error(500, NO_DC_PATH)
        return await handler(request)

    @staticmethod
    def _headers(index: int | None) -> dict[str, str]:
        headers = {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
        if index is not None:
            headers["X-Consul-Index"] = str(index)
        return headers

    @staticmethod
    def _method(request: web.Request, *allowed: str) -> None:
        if request.method not in allowed:
            raise ConsulError(405, f"method {request.method} not allowed")

    async def _blocking(
        self,
        request: web.Request,
        run: Callable[[], QueryResult],
        *,
        key_matches: Callable[[str], bool] | None = None,
        session_matches: Callable[[str], bool] | None = None,
    ) -> QueryResult:
        """Run ``run`` until its index passes ``?index`` or ``?wait`` (plus jitter) runs out."""
        min_index = _uint(request, "index")
        result = run()
        if not min_index:
            return result
        wait = DEFAULT_WAIT
        if "wait" in request.query:
            try:
                wait = min(parse_duration(request.query["wait"]), MAX_WAIT)
            except ValueError:
                raise ConsulError(400, f"Invalid wait time: {request.query['wait']!r}") from None
        wait += random.uniform(0, wait / 16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while result[0] <= min_index:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter = self._waiters.add(key_matches, session_matches)
            try:
                await asyncio.wait_for(waiter.future, remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)
            result = run()
        return result

    # -- /v1/kv -----------------------------------------------------------------------------------
    async def kv(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET", "PUT", "DELETE")
        key = request.match_info["key"]
        query = request.query
        if request.method == "GET":
            return await self._kv_get(request, key)
        if request.method == "PUT":
            if not key:
                raise ConsulError(400, "Missing key name")
            body = await request.read()
            flags = _uint(request, "flags") or 0
            cas = _uint(request, "cas")
            ok = self.state.kv_put(
                key,
                body,
                flags=flags,
                cas=cas,
                acquire=query.get("acquire") if "acquire" in query else None,
                release=query.get("release") if "release" in query else None,
            )
            return _json(ok)
        cas = _uint(request, "cas")
        recurse = "recurse" in query
        if not key and not recurse and cas is None:
            raise ConsulError(400, "Missing key name")
        return _json(self.state.kv_delete(key, recurse=recurse, cas=cas))

    async def _kv_get(self, request: web.Request, key: str) -> web.StreamResponse:
        query = request.query
        if "keys" in query:
            separator = query.get("separator", "")
            index, found = await self._blocking(
                request, lambda: self.state.keys(key, separator), key_matches=lambda k: k.startswith(key)
            )
            if not found:
                return web.Response(status=404, headers=self._headers(index))
            return _json(found, headers=self._headers(index))
        if "recurse" in query:
            index, entries = await self._blocking(
                request, lambda: self.state.list_prefix(key), key_matches=lambda k: k.startswith(key)
            )
            if not entries:
                return web.Response(status=404, headers=self._headers(index))
            return _json([e.to_json() for e in entries], headers=self._headers(index))
        index, entry = await self._blocking(request, lambda: self.state.get(key), key_matches=lambda k: k == key)
        if entry is None:
            return web.Response(status=404, headers=self._headers(index))
        if "raw" in query:
            return web.Response(body=entry.value, content_type="text/plain", headers=self._headers(index))
        return _json([entry.to_json()], headers=self._headers(index))

    # -- /v1/txn ------------------------------------------------------------------------------------
    async def txn(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "PUT")
        try:
            payload = json.loads(await request.read() or b"null")
        except ValueError as exc:
            raise ConsulError(400, f"Failed to parse body: {exc}") from None
        ops = self.state.parse_txn(payload)
        committed, results, errors = self.state.txn(ops)
        body = {"Results": results or None, "Errors": errors or None}
        return _json(body, status=200 if committed else 409)

    # -- /v1/session ---------------------------------------------------------------------------------
    def _session_id(self, request: web.Request) -> str:
        session_id = request.match_info["id"]
        if not _UUID.match(session_id):
            raise ConsulError(400, f"Session id '{session_id}' invalid: must be a UUID")
        return session_id

    async def session_create(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "PUT")
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None
        if not isinstance(body, dict):
            raise ConsulError(400, "Request decode failed: expected a JSON object")
        session = self.state.session_create(body)
        self._arm(session)
        return _json({"ID": session.id})

    async def session_destroy(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "PUT")
        self.state.session_destroy(self._session_id(request))
        return _json(True)

    async def session_renew(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "PUT")
        # Consul looks any id up as it is (no UUID check here): an unknown one,
        # malformed or not, is 404 "Session id '...' not found".
        session = self.state.session_renew(request.match_info["id"])
        self._arm(session)
        return _json([session.to_json()])

    async def session_info(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET")
        session_id = self._session_id(request)
        index, found = await self._blocking(
            request, lambda: self.state.session_info(session_id), session_matches=lambda s: s == session_id
        )
        return _json([s.to_json() for s in found], headers=self._headers(index))

    async def session_list(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET")
        index, found = await self._blocking(request, lambda: self.state.session_list(), session_matches=lambda s: True)
        return _json([s.to_json() for s in found], headers=self._headers(index))

    async def session_node(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET")
        node = request.match_info["node"]
        index, found = await self._blocking(
            request, lambda: self.state.session_list(node), session_matches=lambda s: True
        )
        return _json([s.to_json() for s in found], headers=self._headers(index))

    # -- /v1/status ------------------------------------------------------------------------------------
    async def status_leader(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET")
        return _json(self.advertise)

    async def status_peers(self, request: web.Request) -> web.StreamResponse:
        self._method(request, "GET")
        return _json([self.advertise])

    # -- running ------------------------------------------------------------------------------------------
    async def serve(self, host: str, port: int, ssl_context: ssl.SSLContext | None, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; sessions loaded from the data file get fresh TTL timers."""
        self.load()
        for session in self.state.sessions.values():
            self._arm(session)  # Consul resets every TTL timer when a leader takes over
        reaper = asyncio.create_task(self._reap_tombstones())
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, shutdown_timeout=0.2)
        await site.start()
        scheme = "https" if ssl_context else "http"
        log(f"consul test server listening on {scheme}://{host}:{port}")
        try:
            await stop.wait()
        finally:
            reaper.cancel()
            self.save()
            await runner.cleanup()
            log("consul test server stopped")


def send_tls_alerts() -> None:
    """Make asyncio send the TLS alert of a failed handshake before it drops the connection.

    CPython's ``asyncio.sslproto`` aborts the transport when a server-side
    handshake fails (a client without an acceptable certificate) without
    flushing what OpenSSL wrote meanwhile: the alert. Consul (Go) sends it
    ("certificate required", "unknown ca"), and clients report it, so the
    test server must send it too.
    """
    from asyncio import sslproto

    original = sslproto.SSLProtocol._on_handshake_complete
    if getattr(original, "sends_alerts", False):
        return

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            try:
                alert = self._outgoing.read()
                if alert:
                    self._transport.write(alert)
            except Exception as exc:  # the handshake failed anyway
                log(f"could not send the TLS alert: {exc!r}")
        original(self, handshake_exc)

    on_handshake_complete.sends_alerts = True  # type: ignore[attr-defined]
    sslproto.SSLProtocol._on_handshake_complete = on_handshake_complete  # type: ignore[method-assign]


def server_tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """TLS that demands a client certificate signed by ``ca`` (Consul's ``verify_incoming``)."""
    send_tls_alerts()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


__all__ = ["ConsulTestServer", "server_tls_context"]
