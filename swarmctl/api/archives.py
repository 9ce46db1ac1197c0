"""Images as tar files in and out of the cluster: ``docker save``, ``docker load`` and ``docker import``.

- save streams the tar from one node that has every image named (the
  images of one tar must come from one engine);
- load sends the one tar, read once, to every healthy node at once (like a
  pull), and answers as one engine would: its lines once, not once per
  node, and an error naming the nodes where it failed;
- import makes the image on one node and then copies it to the others by
  save and load. Importing the same tar on each node would give each its
  own image ID (an import records its own creation time), so the ID the
  client is given would name the image on one node only; copied, it names
  the same image everywhere, as after a pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from ..cluster.engine import Engine
from ..cluster.fanout import NO_INVENTED_HEADERS, STREAM_TIMEOUT, Reply, iter_lines, on_each
from ..cluster.transfer import copy_image
from ..errors import in_words
from .context import manager_of
from .proxy import LazyStream, error, error_line, forward, relay, request_headers


def _decoded(line: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(line)
        if isinstance(value, dict):
            return value
    return {}


async def _refresh(engines: Iterable[Engine]) -> None:
    """Re-read the images of ``engines``, so that ``docker images`` answered next already shows the change."""

    async def one(engine: Engine) -> None:
        with contextlib.suppress(Exception):
            await engine.refresh_images()

    await asyncio.gather(*(one(e) for e in engines))


# -- save ---------------------------------------------------------------------------------------------


async def save_one(request: web.Request) -> web.StreamResponse:
    """``GET /images/{name}/get``: from a node that has the image."""
    name = request.match_info["name"]
    holders = manager_of(request).cluster.engine_with_image(name)
    if not holders:
        return error(404, f"No such image: {name}")
    return await forward(request, holders[0])


async def save_many(request: web.Request) -> web.StreamResponse:
    """``GET /images/get?names=a&names=b``: from a node that has all of them (one tar comes from one engine)."""
    cluster = manager_of(request).cluster
    if not cluster.healthy():
        return error(500, "No healthy node available in the cluster")
    names = request.query.getall("names", [])
    holders = {name: cluster.engine_with_image(name) for name in names}
    missing = [name for name, engines in holders.items() if not engines]
    if missing:
        return error(404, f"No such image: {', '.join(missing)}")
    every = [e for e in cluster.healthy() if all(e in engines for engines in holders.values())]
    if not every:
        where = "; ".join(f"{name} is on {', '.join(e.name for e in engines)}" for name, engines in holders.items())
        return error(
            404,
            f"no node has all of the images {', '.join(names)} ({where}): "
            "save them separately, or load them onto one node first",
        )
    return await forward(request, every[0])


# -- load ---------------------------------------------------------------------------------------------


def _failures(replies: list[Reply]) -> tuple[list[Reply], list[Reply]]:
    """The replies that loaded the images, and those that did not (an engine says so inside its 200 stream)."""
    good = [r for r in replies if not r.stream_error]
    return good, [r for r in replies if r.stream_error]


def _failure_message(failed: list[Reply], good: list[Reply], done: str) -> str:
    reasons = "; ".join(r.stream_error for r in failed)
    if not good:
        return reasons
    return f"{reasons} ({done} on {', '.join(r.engine.name for r in good)})"


async def load(request: web.Request) -> web.StreamResponse:
    """``POST /images/load``: onto every healthy node, the tar read once; answered once.

    The first node's lines are passed on as they come (``quiet=0`` progress
    included); every node's result is then checked, and one error line names
    the nodes that failed, with their engines' messages.
    """
    engines = manager_of(request).cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    lead = engines[0]
    out = LazyStream(request)

    async def lead_line(engine: Engine, line: bytes) -> None:
        decoded = _decoded(line)
        if engine is lead and not (decoded.get("error") or decoded.get("errorDetail")):
            await out.write(line)

    body = request.content.iter_any() if request.body_exists else b""
    replies = await on_each(
        engines,
        "POST",
        request.rel_url.raw_path_qs,
        body=body,
        headers=request_headers(request),
        timeout=STREAM_TIMEOUT,
        on_line=lead_line,
    )
    await _refresh(engines)
    good, failed = _failures(replies)
    if out.response is None and not good and all(r.status == 0 for r in failed):
        return error(500, "; ".join(r.message for r in failed))
    if good and good[0].engine is not lead:  # the lead failed: say what the others loaded
        for line in good[0].body.splitlines(keepends=True):
            if "stream" in _decoded(line):
                await out.write(line)
    if failed:
        await out.write(error_line(_failure_message(failed, good, "loaded")))
    return await out.finish()


# -- import -------------------------------------------------------------------------------------------


def imported_name(query: Any) -> str:
    """The ``repo:tag`` an import names (the engine tags ``latest`` when no tag is given), or "" for none."""
    repo, tag = str(query.get("repo") or ""), str(query.get("tag") or "")
    if not repo:
        return ""
    if tag:
        return f"{repo}:{tag}"
    return repo if "@" in repo or ":" in repo.rsplit("/", 1)[-1] else f"{repo}:latest"


async def import_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromSrc=...``: imported on one node, then copied to every other healthy node.

    The client gets the importing engine's own lines (its last ``status``
    is the image ID, the same on every node once copied); a copy that fails
    adds an error line naming the nodes.
    """
    engines = manager_of(request).cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    source, others = engines[0], engines[1:]
    body = request.content.iter_any() if request.query.get("fromSrc") == "-" and request.body_exists else None
    out = LazyStream(request)
    image_id = ""
    try:
        async with source.request(
            "POST",
            request.rel_url.raw_path_qs,
            data=body,
            headers=request_headers(request),
            timeout=STREAM_TIMEOUT,
            skip_auto_headers=NO_INVENTED_HEADERS,
        ) as upstream:
            if upstream.status >= 300:
                return await relay(request, upstream)  # the engine's own refusal (a bad name, an unreadable tar)
            async for line in iter_lines(upstream.content):
                await out.write(line)
                status = str(_decoded(line).get("status") or "")
                if status.startswith("sha256:"):
                    image_id = status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        source.report_failure(exc)
        reason = f"cannot reach node {source.name} ({source.addr}): {in_words(exc)}"
        if out.response is None:
            return error(500, reason)
        await out.write(error_line(reason))
        return await out.finish()
    if image_id and others:
        failed = await copy_image(source, others, imported_name(request.query) or image_id)
        if failed:
            message = "; ".join(failed)
            await out.write(error_line(f"imported on {source.name} as {image_id}, not copied to: {message}"))
    await _refresh(engines)
    return await out.finish()
