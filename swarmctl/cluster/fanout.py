"""One request sent to several engines at once, every answer collected.

Pruning, removing or tagging an image, loading images and creating a
volume with a plain name all act on many nodes; each handler then merges
the replies into the one answer a single engine would give. A node that
cannot be reached is reported to its engine (which checks it at once) and
comes back as a reply with status 0, so a merge can say which node failed
instead of failing as a whole.

A body can be bytes, or a stream read once (``docker load``'s tar, which
may be gigabytes): :class:`Tee` hands each engine its own copy as it
arrives, reading ahead of the slowest engine by a few chunks only, so
nothing is held in memory or spooled to disk. An answer can be watched
line by line as it comes (``on_line``), for a merge that streams.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import connect_reason, in_words
from .engine import Engine

#: Called with each line of an engine's answer as it arrives (the newline included).
LineHook = Callable[[Engine, bytes], Awaitable[None]]
Body = bytes | AsyncIterable[bytes]

#: For streams: no limit on the whole, only on connecting.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)
#: aiohttp gives a bodiless POST ``Content-Type: application/octet-stream``, which an engine that
#: checks for JSON refuses (``/commit``): only the client's own content type goes on.
NO_INVENTED_HEADERS = ("Content-Type",)

#: For requests an engine may take minutes to answer (a prune removing layers, disk usage walking
#: every file on vfs): only a node that sends nothing for that long has failed.
SLOW_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)


@dataclass
class Reply:
    """One engine's answer: ``status`` 0 when it could not be reached (``error`` says why)."""

    engine: Engine
    status: int
    body: bytes
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def lines(self) -> list[dict[str, Any]]:
        """A JSON-lines answer (load, pull, build) decoded; lines that are not JSON objects are skipped."""
        found = []
        for line in self.body.splitlines():
            with contextlib.suppress(ValueError):
                decoded = json.loads(line)
                if isinstance(decoded, dict):
                    found.append(decoded)
        return found

    @property
    def stream_error(self) -> str:
        """Why the engine failed, also when it said so inside a 200 stream (``{"error": ...}``); "" if it did not."""
        if not self.ok:
            return self.message
        for line in self.lines():
            if line.get("error") or line.get("errorDetail"):
                detail = line.get("errorDetail") or {}
                return f"{self.engine.name}: {line.get('error') or detail.get('message')}"
        return ""

    @property
    def text(self) -> str:
        """The engine's error ``message`` as it wrote it (or why it was not reached)."""
        if self.status == 0:
            return self.error
        text = self.body.decode(errors="replace").strip()
        try:
            decoded = json.loads(self.body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and "message" in decoded:
            text = str(decoded["message"])
        return text

    @property
    def message(self) -> str:
        """:attr:`text` prefixed by the node's name, for answers that merge several nodes."""
        return f"{self.engine.name}: {self.text}"


class _Branch:
    """One reader's queue of a :class:`Tee`."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.readable = asyncio.Event()
        self.dropped = False


class Tee:
    """One byte stream read once and handed to ``count`` readers, each at its own pace.

    The source is read ahead of the slowest reader by at most ``window``
    chunks, so a slow node slows the upload (as one engine would) instead of
    filling memory. A reader that stops (its request ended or failed) is
    :meth:`drop`-ped and never waited for again.
    """

    def __init__(self, source: AsyncIterable[bytes], count: int, window: int = 8) -> None:
        self._source = source
        self._window = window
        self._branches = [_Branch() for _ in range(count)]
        self._space = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None

    async def reader(self, index: int) -> AsyncIterator[bytes]:
        """Reader ``index``'s copy of the stream (an aiohttp request body)."""
        branch = self._branches[index]
        try:
            while True:
                while not branch.chunks:
                    if self._ended:
                        if self._error is not None:
                            raise ConnectionResetError(f"the body could not be read: {self._error}")
                        return
                    branch.readable.clear()
                    await branch.readable.wait()
                chunk = branch.chunks.popleft()
                self._space.set()
                yield chunk
        finally:
            self.drop(index)

    def drop(self, index: int) -> None:
        branch = self._branches[index]
        branch.dropped = True
        branch.chunks.clear()
        self._space.set()

    async def run(self) -> None:
        """Read the source to its end, handing every chunk to every reader still reading."""
        try:
            async for chunk in self._source:
                if not chunk:
                    continue
                while any(len(b.chunks) >= self._window for b in self._branches if not b.dropped):
                    self._space.clear()
                    await self._space.wait()
                for branch in self._branches:
                    if not branch.dropped:
                        branch.chunks.append(chunk)
                        branch.readable.set()
        except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as exc:
            self._error = exc
        finally:
            self._ended = True
            for branch in self._branches:
                branch.readable.set()


async def iter_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """An answer's lines as they arrive, whatever their length (aiohttp's readline has a limit)."""
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


async def ask(
    engine: Engine,
    method: str,
    path_qs: str,
    *,
    body: Body | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    on_line: LineHook | None = None,
) -> Reply:
    """Send one request to one engine and read the whole answer (passing each line to ``on_line`` if given)."""
    kwargs: dict[str, Any] = {
        "data": body,
        "headers": headers or {"Content-Type": "application/json"},
        "skip_auto_headers": NO_INVENTED_HEADERS,
    }
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        async with engine.request(method, path_qs, **kwargs) as response:
            if on_line is None or not 200 <= response.status < 300:
                return Reply(engine, response.status, await response.read())
            seen = bytearray()
            async for line in iter_lines(response.content):
                seen += line
                await on_line(engine, line)
            return Reply(engine, response.status, bytes(seen))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        engine.report_failure(exc)
        return Reply(
            engine, 0, b"", f"cannot reach node {engine.name} ({engine.addr}): {connect_reason(exc) or in_words(exc)}"
        )


async def on_each(
    engines: Iterable[Engine],
    method: str,
    path_qs: str,
    *,
    body: Body | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    on_line: LineHook | None = None,
) -> list[Reply]:
    """:func:`ask` every engine at once; the replies in the order of ``engines``.

    A streamed ``body`` is read once and sent to every engine as it arrives (see :class:`Tee`).
    """
    engines = list(engines)
    tee = None if body is None or isinstance(body, bytes) else Tee(body, len(engines))

    async def one(index: int, engine: Engine) -> Reply:
        try:
            sent = body if tee is None else tee.reader(index)
            return await ask(engine, method, path_qs, body=sent, headers=headers, timeout=timeout, on_line=on_line)
        finally:
            if tee is not None:
                tee.drop(index)  # also when the request never started reading (the node refused the connection)

    asking = asyncio.gather(*(one(i, e) for i, e in enumerate(engines)))
    if tee is None:
        return list(await asking)
    pump = asyncio.ensure_future(tee.run())
    try:
        return list(await asking)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


def merge_counts(answers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several engines' JSON objects as one engine's: lists concatenated, numbers summed, anything else the first.

    A list stays ``null`` while every engine says ``null`` (as an engine
    writes an empty one); keys keep the first engine's order.
    """
    merged: dict[str, Any] = {}
    for answer in answers:
        for key, value in answer.items():
            if key not in merged:
                merged[key] = list(value) if isinstance(value, list) else value
            elif isinstance(value, list):
                merged[key] = [*(merged[key] or []), *value]
            elif isinstance(value, int) and not isinstance(value, bool) and isinstance(merged[key], int):
                merged[key] += value
    return merged
