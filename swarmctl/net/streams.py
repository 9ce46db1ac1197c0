"""Byte streams for hijacked connections to engines (and to the primary), plain or TLS.

A hijacked session must be able to half-close: the client's stdin ends, the
engine must see EOF, and its output must keep flowing back. asyncio's TLS
streams cannot half-close (``can_write_eof()`` is False), so TLS is done
here over a plain TCP stream with :class:`ssl.SSLObject`: ``write_eof``
sends TLS's close_notify, which the engine reads as EOF (as it reads the
docker CLI's own), and reading goes on until the engine closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Protocol

CHUNK = 64 * 1024


class ByteStream(Protocol):
    async def read(self, n: int) -> bytes: ...

    async def readuntil(self, separator: bytes) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


class PlainStream:
    """An asyncio TCP connection as a :class:`ByteStream`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)

    async def readuntil(self, separator: bytes) -> bytes:
        return await self._reader.readuntil(separator)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def write_eof(self) -> None:
        if self._writer.can_write_eof():
            self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()


class TLSStream:
    """TLS over a plain asyncio connection, able to half-close."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext, hostname: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False, server_hostname=hostname)
        self._buffer = b""
        self._eof = False

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)

    async def _receive(self) -> bool:
        self._flush()
        data = await self._reader.read(CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                await self._writer.drain()
                return
            except ssl.SSLWantReadError:
                if not await self._receive():
                    raise ConnectionResetError("the TLS handshake was cut short") from None

    async def read(self, n: int) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data
        return await self._read_tls(n)

    async def _read_tls(self, n: int) -> bytes:
        while not self._eof:
            try:
                return self._tls.read(n)
            except ssl.SSLWantReadError:
                if not await self._receive():
                    self._eof = True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True
        return b""

    async def readuntil(self, separator: bytes) -> bytes:
        while separator not in self._buffer:
            chunk = await self._read_tls(CHUNK)
            if not chunk:
                raise asyncio.IncompleteReadError(self._buffer, None)
            self._buffer += chunk
        end = self._buffer.index(separator) + len(separator)
        head, self._buffer = self._buffer[:end], self._buffer[end:]
        return head

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def write_eof(self) -> None:
        """Send close_notify: the engine reads EOF; we go on reading its output."""
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError):
            self._tls.unwrap()
        self._flush()

    def close(self) -> None:
        self._writer.close()


async def connect(addr: str, context: ssl.SSLContext | None) -> ByteStream:
    """A connection of its own to ``host:port``, TLS when ``context`` is given."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    reader, writer = await asyncio.open_connection(host, int(port))
    if context is None:
        return PlainStream(reader, writer)
    stream = TLSStream(reader, writer, context, host)
    try:
        await stream.handshake()
    except BaseException:
        writer.close()
        raise
    return stream
