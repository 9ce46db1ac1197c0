"""The headers every answer carries: ours (``Server``, ``Api-Version``) and the engine's when it sent them.

``Api-Version`` and ``Server`` are the manager's even on an answer relayed
from an engine (the docker CLI negotiates its version down to the cluster's);
``Docker-Experimental`` and ``Ostype`` are the engine's when it sent them.

They are set without an aiohttp ``on_response_prepare`` signal, which would
cost a coroutine and four header writes on every answer, cached ones too:

- an answer the manager makes from cached bytes (``/info``, ``docker ps``)
  is an :class:`Answer`: its status line and headers are bytes made once per
  change of the nodes (:func:`answer`), written with the body in one call;
- any other unsent answer a handler returns is stamped by the app's handler
  wrapper (:func:`stamp`);
- an answer streamed from inside a handler is started with :func:`prepare`.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict, istr

from .. import __version__
from .context import Manager, manager_of

#: What every answer says about its server (the same for the whole process).
SERVER = f"swarmctl/{__version__}"
API_VERSION = istr("Api-Version")
EXPERIMENTAL = istr("Docker-Experimental")
OSTYPE = istr("Ostype")
#: Where :func:`answer` keeps its headers among the manager's answers, with the API version they say.
_JSON_HEADERS = "json-headers"


def stamp(manager: Manager, headers: CIMultiDict[str]) -> None:
    """Our ``Api-Version`` and ``Server``, and the engine's defaults where it said nothing."""
    headers[API_VERSION] = manager.api_version()
    headers[hdrs.SERVER] = SERVER
    if EXPERIMENTAL not in headers:
        headers[EXPERIMENTAL] = "false"
    if OSTYPE not in headers:
        headers[OSTYPE] = "linux"


class Answer(web.StreamResponse):
    """A JSON answer written as one ready-made HTTP message: the wrapper leaves it be.

    The answers served most (``/info``, ``docker ps``) are cached bytes, so
    what aiohttp would do for them on every request (make a header
    dictionary, fill it, serialise it, write headers and body) is most of
    what they cost. An :class:`Answer` carries its status line and headers
    already serialised (:class:`Head`, made once per API version and status)
    and, to a keep-alive HTTP/1.1 ``GET`` (what the docker CLI, compose and
    the SDK send), writes head, ``Content-Length``, ``Date`` and body to the
    connection in one call. Any other request (``HEAD``, HTTP/1.0, a
    ``Connection: close``) gets the same headers and body through aiohttp's
    own path.
    """

    def __init__(self, head: Head, body: bytes) -> None:
        super().__init__(status=head.status)
        self._ready = head
        self._body_bytes = body

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        head, body = self._ready, self._body_bytes
        if request.method != hdrs.METH_GET or request.version != HttpVersion11 or not request.keep_alive:
            self.headers.extend(head.headers)
            self.content_length = len(body)
            writer = await super().prepare(request)
            if request.method != hdrs.METH_HEAD:
                await self.write(body)
            return writer
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away before its answer")
        transport.writelines((head.lines, b"%d\r\nDate: " % len(body), http_date(), b"\r\n\r\n", body))
        # aiohttp's own flags, so that it keeps the connection and writes nothing more of this answer.
        self._keep_alive = True
        self._eof_sent = True
        if transport.get_write_buffer_size():
            await request.writer.drain()  # a client slow to read holds up its next request, as aiohttp's own do
        return None


class Head:
    """An answer's status line and headers, serialised once, up to the ``Content-Length`` value."""

    def __init__(self, status: int, headers: CIMultiDict[str]) -> None:
        self.status = status
        self.headers = headers
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.lines = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{fields}Content-Length: ".encode("latin-1")


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """Now as an HTTP ``Date`` (made once a second: the answers of one second share it)."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date[1]


def answer(manager: Manager, body: bytes, status: int = 200) -> Answer:
    """``body`` as a JSON answer, its head made once per API version and status."""
    version = manager.api_version()
    key = _JSON_HEADERS if status == 200 else f"{_JSON_HEADERS}:{status}"
    head: Head | None = manager.fresh(key, version)
    if head is None:
        headers = CIMultiDict({hdrs.CONTENT_TYPE: "application/json"})
        stamp(manager, headers)
        head = manager.keep(key, version, Head(status, headers))
    return Answer(head, body)


async def prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Start a streamed answer with the headers every answer carries."""
    stamp(manager_of(request), response.headers)
    await response.prepare(request)
