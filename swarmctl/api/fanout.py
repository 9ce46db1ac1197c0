"""One request sent to several engines at once, every answer collected.

Pruning, removing or tagging an image, loading images and creating a
volume with a plain name all act on many nodes; each handler then merges
the replies into the one answer a single engine would give. A node that
cannot be reached is reported to its engine (which checks it at once) and
comes back as a reply with status 0, so a merge can say which node failed
instead of failing as a whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ..cluster.engine import Engine

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


async def ask(
    engine: Engine,
    method: str,
    path_qs: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> Reply:
    """Send one request to one engine and read the whole answer."""
    kwargs: dict[str, Any] = {"data": body, "headers": headers or {"Content-Type": "application/json"}}
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        async with engine.request(method, path_qs, **kwargs) as response:
            return Reply(engine, response.status, await response.read())
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        engine.report_failure(exc)
        return Reply(engine, 0, b"", f"cannot reach node {engine.name} ({engine.addr}): {exc or type(exc).__name__}")


async def on_each(
    engines: Iterable[Engine],
    method: str,
    path_qs: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> list[Reply]:
    """:func:`ask` every engine at once; the replies in the order of ``engines``."""
    return list(
        await asyncio.gather(*(ask(e, method, path_qs, body=body, headers=headers, timeout=timeout) for e in engines))
    )


def failure(replies: list[Reply]) -> web.Response:
    """The first engine refusal among ``replies``, as the engine wrote it; else why no node answered."""
    for reply in replies:
        if reply.status and not reply.ok:
            return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": "application/json"})
    reasons = "; ".join(r.message for r in replies if not r.ok) or "no node answered"
    return web.Response(
        status=500, body=json.dumps({"message": reasons}).encode(), headers={"Content-Type": "application/json"}
    )


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
