"""Forwarding one Docker API request to one engine: plain, streamed, or hijacked.

Streams (logs -f, stats, events, pull progress) are copied chunk by chunk as
they arrive, and hijacked connections (``Upgrade: tcp``, used by attach and
exec start) become a byte pipe in both directions, so ``docker run -i`` and
``docker exec -i`` work byte for byte. A client that hangs up cancels the
handler (the server runs with handler cancellation), which closes the
upstream connection; an engine that dies mid-stream ends the stream cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from ..cluster.engine import UNHEALTHY
from ..cluster.fanout import NO_INVENTED_HEADERS, STREAM_TIMEOUT, Reply
from ..errors import connect_reason, in_words
from ..net.streams import ByteStream
from .bodies import BadBody, body_of
from .gotypes import Struct
from .headers import prepare


class Upstream(Protocol):
    """Where a request is relayed: a node's engine, or (from a replica) the primary manager."""

    @property
    def name(self) -> str: ...

    @property
    def addr(self) -> str: ...

    def request(self, method: str, path: str, **kwargs: Any) -> Any: ...

    async def open_connection(self) -> ByteStream: ...

    def report_failure(self, exc: BaseException) -> None: ...


def unhealthy(engine: Upstream) -> web.Response | None:
    """The answer for a request to a node that is Unhealthy, or None when it may be tried.

    Its containers stay listed and inspectable from the cache, but what needs the node
    (logs, stop, exec...) is refused at once, naming it: a dead node would refuse the
    connection anyway, and a hung one (a stopped dockerd, whose kernel still accepts
    connections) would hold the client until it resumed.
    """
    if getattr(engine, "state", None) != UNHEALTHY:
        return None
    reason = getattr(engine, "last_error", "") or "it does not answer"
    return error(500, f"node {engine.name} ({engine.addr}) is unhealthy: {reason}")


#: Request headers not passed on: hop-by-hop, or recomputed by aiohttp.
_DROP_REQUEST = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
}
#: Response headers passed back to the client.
_KEEP_RESPONSE = {
    "content-type",
    "docker-experimental",
    "ostype",
    "api-version",
    "x-docker-container-path-stat",
}

CHUNK = 64 * 1024


def error(status: int, message: str) -> web.Response:
    """An error the way the Docker engine writes it: ``{"message": ...}`` as plain ``application/json``.

    The docker CLI decodes an error body only when the content type is exactly
    that (no charset); otherwise it prints the raw JSON.
    """
    body = json.dumps({"message": message}).encode()
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


def failure(replies: list[Reply]) -> web.Response:
    """The first engine refusal among ``replies``, as the engine wrote it; else why no node answered."""
    for reply in replies:
        if reply.status and not reply.ok:
            return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": "application/json"})
    reasons = "; ".join(r.message for r in replies if not r.ok) or "no node answered"
    return web.Response(
        status=500, body=json.dumps({"message": reasons}).encode(), headers={"Content-Type": "application/json"}
    )


def error_line(message: str) -> bytes:
    """An error inside a streamed JSON answer (pull, load, build), as an engine writes one."""
    return json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\n"


class LazyStream:
    """A streamed JSON answer, started only when there is something to say (else a plain error can still go)."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def write(self, data: bytes) -> None:
        if self.response is None:
            self.response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await prepare(self.request, self.response)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.response.write(data)

    async def finish(self) -> web.StreamResponse:
        if self.response is None:
            await self.write(b"")
        assert self.response is not None
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.response.write_eof()
        return self.response


def query_flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter read as the engine reads it: "", 0, no, false, none (any case) are false."""
    return request.query.get(name, "").strip().lower() not in ("", "0", "no", "false", "none")


def version_prefix(request: web.Request) -> str:
    """``/v1.41`` when the client asked under a version, else ``""``: requests to engines keep it."""
    match = re.match(r"^(/v[0-9.]+)/", request.path)
    return match[1] if match else ""


async def json_body(request: web.Request, kind: Struct) -> dict[str, Any] | web.Response:
    """The request's JSON object as dockerd reads it into ``kind``, or the 400 it answers (bodies.py)."""
    try:
        return body_of(await request.read(), kind, request.headers.get("Content-Type"))
    except BadBody as exc:
        return error(exc.status, exc.message)


def request_headers(request: web.Request) -> dict[str, str]:
    """The client's headers as they go on to an engine (``X-Registry-Auth``/``-Config`` included)."""
    return {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}


def _response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP_RESPONSE}


#: Awaited once an engine's answer has been read, before the client's answer ends; what it returns is
#: added at the end of a streamed answer (a line saying why a build stopped, say).
Epilogue = Callable[[], Awaitable[bytes]]


async def forward(
    request: web.Request,
    engine: Upstream,
    path_qs: str | None = None,
    *,
    body: bytes | None = None,
    stream_body: bool = False,
) -> web.StreamResponse:
    """Send ``request`` to ``engine`` (at ``path_qs``, default the same path) and relay the answer.

    The request's body (or ``body`` in its place) is read whole and sent, unless ``stream_body``:
    then it goes on as it arrives (a build context or an image tar can be gigabytes).
    """
    down = unhealthy(engine)
    if down is not None:
        return down
    target = path_qs if path_qs is not None else request.rel_url.raw_path_qs
    data: Any = body
    if data is None and request.body_exists:
        data = request.content.iter_any() if stream_body else await request.read()
    try:
        upstream_cm = engine.request(
            request.method,
            target,
            headers=request_headers(request),
            data=data,
            timeout=STREAM_TIMEOUT,
            allow_redirects=False,
            skip_auto_headers=NO_INVENTED_HEADERS,
        )
        async with upstream_cm as upstream:
            return await relay(request, upstream)
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
        engine.report_failure(exc)
        return error(500, f"cannot reach node {engine.name} ({engine.addr}): {connect_reason(exc) or in_words(exc)}")


async def relay(
    request: web.Request, upstream: aiohttp.ClientResponse, *, epilogue: Epilogue | None = None
) -> web.StreamResponse:
    """Copy ``upstream``'s status, headers and body to the client, streaming when it streams.

    ``epilogue`` runs once the engine's answer is read; its bytes end a streamed
    answer (on a line of their own), while a whole answer (an error) goes as it was.
    """
    headers = _response_headers(upstream)
    length = upstream.content_length
    # A whole answer is handed back unsent, so that the caller can update the cache before the client
    # hears back: ``docker stop x && docker ps`` must see x stopped. So is a bodiless one (204, 304),
    # which has no length: streamed, it would be sent at once, and a client hanging up right after
    # would cancel the handler, and the update with it.
    if upstream.status in (204, 304) or (length is not None and length <= 1 << 20):
        body = await upstream.read()
        if epilogue is not None:
            await epilogue()
        return web.Response(status=upstream.status, headers=headers, body=body)
    response = web.StreamResponse(status=upstream.status, headers=headers)
    if length is not None:
        response.content_length = length
    await prepare(request, response)
    at_line_start = True
    try:
        while True:
            chunk = await upstream.content.readany()
            if not chunk:
                break
            await response.write(chunk)
            at_line_start = chunk.endswith(b"\n")
    except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        pass  # the node went away mid-stream (or the stream was cut on purpose): end our stream cleanly
    if epilogue is not None:
        tail = await epilogue()
        if tail and length is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write(tail if at_line_start else b"\n" + tail)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


def upgrade_protocol(request: web.Request) -> str | None:
    """The protocol a client asks to switch to that :func:`hijack` relays (``tcp``, ``websocket``), or None."""
    wanted = request.headers.get("Upgrade", "").strip().lower()
    return wanted if wanted in _UPGRADES else None


#: Protocols a hijacked connection may switch to: Docker's raw stream, and websockets (``attach/ws``).
_UPGRADES = ("tcp", "websocket")
#: Response headers of a websocket handshake that must reach the client (the key's answer, the choices made).
_WEBSOCKET_HEADERS = {
    "sec-websocket-accept": "Sec-WebSocket-Accept",
    "sec-websocket-protocol": "Sec-WebSocket-Protocol",
    "sec-websocket-extensions": "Sec-WebSocket-Extensions",
}


async def hijack(request: web.Request, engine: Upstream, path_qs: str | None = None) -> web.StreamResponse:
    """Relay an upgraded request (attach and exec start's ``Upgrade: tcp``, ``attach/ws``'s websocket) as a byte pipe.

    The request goes to the engine on a connection of its own; if the engine
    switches protocols, the client's connection is taken over from aiohttp
    (see :class:`_RawClient`) and bytes are copied both ways. The client's
    half-close (stdin at EOF) is passed on as a half-close, and the engine
    closing ends the session, so ``echo x | docker run -i ... cat`` behaves
    as it does on one engine. A websocket is relayed the same way, frames
    untouched: the handshake's key and answer pass through, so the client and
    the engine speak the websocket protocol to each other end to end
    (pings, closes, text and binary frames included).
    """
    down = unhealthy(engine)
    if down is not None:
        return down
    protocol = upgrade_protocol(request) or "tcp"
    target = path_qs if path_qs is not None else request.rel_url.raw_path_qs
    body = await request.content.read(request.content_length) if request.content_length else b""
    try:
        stream = await asyncio.wait_for(engine.open_connection(), 10)
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        engine.report_failure(exc)
        return error(500, f"cannot reach node {engine.name} ({engine.addr}): {connect_reason(exc) or in_words(exc)}")
    try:
        head = [
            f"{request.method} {target} HTTP/1.1",
            f"Host: {engine.addr}",
            "Connection: Upgrade",
            f"Upgrade: {protocol}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in request_headers(request).items()]
        stream.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await stream.drain()
        status, headers = await _read_head(stream)
        # Docker's old API answers a raw stream with 200 instead of switching; a websocket must switch.
        if status != 101 and (status // 100 != 2 or protocol == "websocket"):
            return await _plain_answer(status, headers, stream)
        await _take_over(request, status, headers, stream, protocol)
        return _ALREADY_SENT  # the raw connection carried the answer; aiohttp must write nothing
    finally:
        stream.close()


async def _read_head(stream: ByteStream) -> tuple[int, dict[str, str]]:
    raw = await stream.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return status, headers


async def _plain_answer(status: int, headers: dict[str, str], stream: ByteStream) -> web.Response:
    length = int(headers.get("content-length", "0") or 0)
    body = b""
    while len(body) < length:
        chunk = await stream.read(length - len(body))
        if not chunk:
            break
        body += chunk
    try:
        message = json.loads(body).get("message", body.decode(errors="replace"))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace").strip()
    return error(status, str(message))


class _RawClient(asyncio.Protocol):
    """The client's side of a hijacked connection, once taken from aiohttp.

    aiohttp's server closes a connection as soon as the client half-closes
    it, but the docker CLI half-closes on purpose (stdin at EOF) and goes on
    reading the output. So for the rest of the connection this protocol
    receives the client's bytes and keeps the connection open after their EOF.
    """

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.lost = asyncio.Event()
        self.keep_open_on_eof = True
        #: Set when we close the connection (see ``_keep_tls_half_open``).
        self.closing = False
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self.incoming.put_nowait(None)
        return self.keep_open_on_eof  # keep our half open: output still flows to the client

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(None)
        self.lost.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()


class _AlreadySent(web.StreamResponse):
    """What a hijack returns: its bytes went out on the raw connection."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


_ALREADY_SENT = _AlreadySent()


def _keep_tls_half_open(transport: asyncio.BaseTransport, client: _RawClient) -> None:
    """Let a TLS client half-close (stdin at EOF) and still read the output, as over plain TCP.

    The docker CLI half-closes under TLS too (a close_notify alert, or a bare
    TCP FIN). asyncio's TLS layer answers either by shutting the whole
    connection down, so for a hijacked connection only, that shutdown is
    held back until we close the connection ourselves: the client protocol is
    told of the EOF, and output keeps flowing. This reaches into asyncio's TLS
    implementation (Python 3.11+); where that is not there, half-close under
    TLS stays unsupported rather than broken.
    """
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    do_read = getattr(ssl_protocol, "_do_read", None)
    start_shutdown = getattr(ssl_protocol, "_start_shutdown", None)
    if ssl_protocol is None or do_read is None or start_shutdown is None:
        return
    client.keep_open_on_eof = False  # asyncio's TLS layer would only warn about it

    def eof_received() -> bool:  # a bare TCP FIN under TLS
        with contextlib.suppress(Exception):
            do_read()
        client.eof_received()
        return True

    def shutdown_when_we_close() -> None:
        if client.closing:
            start_shutdown()

    ssl_protocol.eof_received = eof_received
    # asyncio has no public hook for holding back a TLS shutdown: the docstring says why this reaches in.
    ssl_protocol._start_shutdown = shutdown_when_we_close  # noqa: SLF001


def _switching_head(status: int, headers: dict[str, str], protocol: str) -> bytes:
    """The response head the client gets for the engine's switch (or, on Docker's old API, its 200)."""
    if protocol == "websocket":
        head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"]
        head += [f"{name}: {headers[key]}" for key, name in _WEBSOCKET_HEADERS.items() if key in headers]
    else:
        content_type = headers.get("content-type", "application/vnd.docker.raw-stream")
        head = [f"HTTP/1.1 {status} {'UPGRADED' if status == 101 else 'OK'}", f"Content-Type: {content_type}"]
        if status == 101:
            head += ["Connection: Upgrade", "Upgrade: tcp"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


async def _take_over(
    request: web.Request,
    status: int,
    headers: dict[str, str],
    stream: ByteStream,
    upgrade: str = "tcp",
) -> None:
    transport = request.transport
    protocol = request.protocol
    assert transport is not None
    client = _RawClient()
    # Bytes the client sent right behind the request head were buffered by aiohttp.
    early = bytes(getattr(protocol, "_message_tail", b"") or b"")
    transport.set_protocol(client)
    _keep_tls_half_open(transport, client)
    if early:
        client.data_received(early)
    transport.write(_switching_head(status, headers, upgrade))
    down = asyncio.ensure_future(_engine_to_client(stream, transport, client))
    up = asyncio.ensure_future(_client_to_engine(client, stream))
    gone = asyncio.ensure_future(client.lost.wait())
    try:
        # The engine closing its side ends the session (the process exited);
        # a client that goes away entirely ends it too.
        await asyncio.wait({down, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (down, up, gone):
            task.cancel()
        for task in (down, up, gone):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client.closing = True
        transport.close()
        # aiohttp no longer owns the connection: let it forget it.
        if protocol is not None:
            asyncio.get_running_loop().call_soon(protocol.connection_lost, None)


async def _engine_to_client(stream: ByteStream, transport: asyncio.Transport, client: _RawClient) -> None:
    """The engine's output to the client until the engine closes (or the client is gone)."""
    while True:
        chunk = await stream.read(CHUNK)
        if not chunk or transport.is_closing():
            return
        transport.write(chunk)
        await client.drain()


async def _client_to_engine(client: _RawClient, stream: ByteStream) -> None:
    """The client's input to the engine; the client's EOF becomes the engine's (a half-close)."""
    while True:
        chunk = await client.incoming.get()
        if chunk is None:
            stream.write_eof()
            await stream.drain()
            return
        stream.write(chunk)
        await stream.drain()
