"""How the manager's HTTP server is set up to read requests as dockerd's does (limits, what it logs).

- Request line and headers: up to 1 MiB each, dockerd's limit (Go's
  ``http.DefaultMaxHeaderBytes``) rather than aiohttp's 8,190 bytes: registry
  tokens in ``X-Registry-Auth`` are that large, and a long container
  reference must get Docker's JSON 404, not aiohttp's plain-text 400.
- A request aiohttp's parser refuses (no ``Host``, a header line without a
  colon) is answered 400 by aiohttp, as dockerd answers it; it is logged as
  one line saying why, not as a traceback of aiohttp's own frames.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

#: dockerd's limit on the request line plus headers (Go's ``http.DefaultMaxHeaderBytes``).
MAX_HEADER_BYTES = 1 << 20


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


def runner(app: web.Application) -> web.AppRunner:
    """The app's runner with dockerd's request limits and one-line parser errors (see above)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineParserErrors) for f in server_log.filters):
        server_log.addFilter(OneLineParserErrors())
    limits: dict[str, Any] = {"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES}
    return web.AppRunner(app, handler_cancellation=True, access_log=None, **limits)
