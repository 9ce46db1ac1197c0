"""How the manager's HTTP server is set up to read requests as dockerd's does (limits, what it logs).

- Request line and headers: up to 1 MiB each, dockerd's limit (Go's
  ``http.DefaultMaxHeaderBytes``) rather than aiohttp's 8,190 bytes: registry
  tokens in ``X-Registry-Auth`` are that large, and a long container
  reference must get Docker's JSON 404, not aiohttp's plain-text 400.
- A request aiohttp's parser refuses (no ``Host``, a header line without a
  colon) is answered 400 by aiohttp, as dockerd answers it; it is logged as
  one line saying why, not as a traceback of aiohttp's own frames. An HTTP
  version Go's server does not speak (``HTTP/9.9``) is answered 505, as
  dockerd answers it.
- A body cut short by the client's half-close (``shutdown(SHUT_WR)`` before
  ``Content-Length`` bytes came) is answered 500 ``unexpected EOF``, as
  dockerd answers it, instead of the connection being dropped unanswered
  (aiohttp closes a connection the moment its client half-closes it).

The last two need aiohttp's connection handler to behave otherwise, so the
runner makes its connections with :class:`_Connection`, a subclass of
aiohttp's public ``RequestHandler`` that overrides two of its methods; what
it reads of its parent's state is named there.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import BadStatusLine, HttpProcessingError

from .filters import Refused

#: dockerd's limit on the request line plus headers (Go's ``http.DefaultMaxHeaderBytes``).
MAX_HEADER_BYTES = 1 << 20

log = logging.getLogger(__name__)


class OneLineParserErrors(logging.Filter):
    """A parser refusal logged by aiohttp (with its traceback) becomes one warning line with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: malformed request refused ({exc.code}): {exc.message}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class BodyCutShort(Refused):
    """What reading a request's body raises once its client half-closed before the body's end (dockerd's 500)."""

    def __init__(self) -> None:
        super().__init__(500, "unexpected EOF")


def _unsupported_version(exc: BaseException | None) -> bool:
    """Whether aiohttp's parser refused the request line for its HTTP version (Go's server answers 505)."""
    return isinstance(exc, BadStatusLine) and "Invalid HTTP version" in exc.message


class _Connection(web.RequestHandler):
    """One client connection, answering a half-closed body and an unknown HTTP version as dockerd does.

    From aiohttp's handler it reads the requests parsed and not yet taken
    (``_messages``), and calls its public ``close`` (close once the answers
    in hand are written).
    """

    #: The body of the last request parsed on this connection: only it can still be waiting for bytes.
    _last_body: StreamReader | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:
            self._last_body = self._messages[-1][1]

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio.Protocol: bool | None; aiohttp says None
        """The client half-closed: a request whose body is still due is answered, then the connection closes.

        With nothing waiting for bytes, the connection closes at once, as
        aiohttp closes it (False: the transport closes itself).
        """
        body = self._last_body
        if body is None or body.is_eof():
            return False
        body.set_exception(BodyCutShort())
        body.feed_eof()  # nothing more comes: a reader gets the exception, the lingering close does not wait
        self.close()
        return True

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status == 400 and _unsupported_version(exc):
            log.warning("malformed request refused (505): %s", exc)
            refusal = HTTPStatus.HTTP_VERSION_NOT_SUPPORTED
            text = f"{refusal.value} {refusal.phrase}: unsupported protocol version"
            return web.Response(status=refusal.value, text=text, headers={"Connection": "close"})
        return super().handle_error(request, status, exc, message)


class _Server(web.Server):
    """aiohttp's server, making its connections with :class:`_Connection`."""

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """The app's runner, serving it with :class:`_Server` (the app's own start-up and handler unchanged)."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            loop=asyncio.get_running_loop(),
            **self._kwargs,
        )


def runner(app: web.Application, *, shutdown_timeout: float = 60.0) -> web.AppRunner:
    """The app's runner with dockerd's request limits, one-line parser errors and its answers to cut bodies.

    ``shutdown_timeout``: how long a stop waits for the requests in hand (aiohttp waits that long
    twice over: for them to end, then for them to end once cancelled).
    """
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineParserErrors) for f in server_log.filters):
        server_log.addFilter(OneLineParserErrors())
    limits: dict[str, Any] = {"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES}
    return _Runner(app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout, **limits)
