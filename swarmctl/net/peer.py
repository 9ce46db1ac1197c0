"""The primary manager as a place a replica relays requests to, as it relays them to an engine."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from .streams import ByteStream, connect

log = logging.getLogger("swarmctl.replication")


class PrimaryPeer:
    """The primary manager as a relay target for a replica (see :class:`~swarmctl.api.proxy.Upstream`)."""

    def __init__(self, addr: str, session: Callable[[], aiohttp.ClientSession], ssl_context: ssl.SSLContext | None):
        self.addr = addr
        self._session = session
        self._ssl = ssl_context
        self.base_url = f"{'https' if ssl_context else 'http'}://{addr}"
        #: Whether a request could not even connect (nothing was sent: it may go to the next primary).
        self.unreachable = False

    @property
    def name(self) -> str:
        return f"primary {self.addr}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session().request(method, self.base_url + path, **kwargs)

    async def open_connection(self) -> ByteStream:
        return await connect(self.addr, self._ssl)

    def report_failure(self, exc: BaseException) -> None:
        self.unreachable = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
        log.warning("replication: cannot reach the primary %s: %s", self.addr, exc)
