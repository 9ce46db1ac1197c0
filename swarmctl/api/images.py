"""Images: listed from every node's cache; pulls, tags, removals and commits on the nodes concerned.

A plain listing is answered from the cache. A filtered one (``reference=``,
``dangling=``, ``label=``, ``before=``...) or one with ``all=1`` is asked
of every node with the same query, so each filter means exactly what the
engine makes it mean, and the answers are merged as the cache's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ..cluster.cluster import LookupError_
from ..cluster.engine import Engine
from ..cluster.fanout import STREAM_TIMEOUT, on_each
from .archives import import_image
from .context import manager_of
from .headers import answer
from .proxy import LazyStream, error, error_line, failure, forward, query_flag

#: What an engine lists for an image without tags or digests.
_PLACEHOLDERS = {"RepoTags": "<none>:<none>", "RepoDigests": "<none>@<none>"}


def merge_images(listings: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per image ID (the same image on several nodes is one image), tags and digests united, newest first.

    An image tagged on one node and untagged on another is listed with its tags only, not also as ``<none>``.
    """
    merged: dict[str, dict[str, Any]] = {}
    for listing in listings:
        for image in listing:
            seen = merged.get(image["Id"])
            if seen is None:
                merged[image["Id"]] = dict(image)
                continue
            for key, placeholder in _PLACEHOLDERS.items():
                united = list(dict.fromkeys([*(seen.get(key) or []), *(image.get(key) or [])]))
                if len(united) > 1 and placeholder in united:
                    united.remove(placeholder)
                if united:
                    seen[key] = united
    return sorted(merged.values(), key=lambda i: -int(i.get("Created", 0)))


async def images_json(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    query = request.query
    if query.get("filters") or query.get("filter") or query_flag(request, "all"):
        engines = manager.cluster.healthy()
        replies = await on_each(engines, "GET", request.rel_url.raw_path_qs)
        good = [r for r in replies if r.ok]
        if replies and not good:
            first = next((r for r in replies if r.status), replies[0])
            return error(first.status or 500, first.message)
        body = json.dumps(merge_images(r.json() or [] for r in good)).encode()
        return web.Response(body=body, content_type="application/json")

    def build() -> bytes:
        return json.dumps(merge_images(engine.images for engine in manager.cluster.healthy())).encode()

    return answer(manager, manager.cached("images", build))


async def commit(request: web.Request) -> web.StreamResponse:
    """``POST /commit?container=REF``: on the container's node (REF as every container route reads it)."""
    cluster = manager_of(request).cluster
    try:
        engine, cid = cluster.find_container(request.query.get("container", ""))
    except LookupError_ as exc:
        return error(exc.status, exc.message)
    items = [(k, cid if k == "container" else v) for k, v in request.query.items()]
    response = await forward(request, engine, f"{request.rel_url.raw_path}?{urlencode(items)}")
    if response.status < 300:
        with contextlib.suppress(Exception):
            await engine.refresh_images()
    return response


def _holders(request: web.Request) -> list[Engine]:
    return manager_of(request).cluster.engine_with_image(request.match_info["name"])


async def image_on_one(request: web.Request) -> web.StreamResponse:
    """Inspect or history: any node that has the image answers."""
    holders = _holders(request)
    if not holders:
        return error(404, f"No such image: {request.match_info['name']}")
    return await forward(request, holders[0])


async def image_on_all(request: web.Request) -> web.StreamResponse:
    """Remove or tag: on every node that has the image; the answers are merged."""
    holders = _holders(request)
    if not holders:
        return error(404, f"No such image: {request.match_info['name']}")
    replies = await on_each(holders, request.method, request.rel_url.raw_path_qs, body=await request.read() or None)
    for engine in holders:
        with contextlib.suppress(Exception):
            await engine.refresh_images()
    good = [r for r in replies if r.ok]
    if not good:
        return failure(replies)
    if request.method == "DELETE":
        merged: list[Any] = []
        for reply in good:  # the same image on several nodes is untagged and deleted once, as one engine says
            merged += [item for item in reply.json() or [] if item not in merged]
        return web.json_response(merged)
    return web.Response(status=good[0].status, body=good[0].body)


async def images_create(request: web.Request) -> web.StreamResponse:
    """``docker pull``: run on every healthy node, progress streamed as it comes (``docker import``: see archives).

    When every node refuses the pull itself (an HTTP error: no such
    repository, a registry that cannot be reached), the answer is that error
    with its status, as one engine gives it, not a 200 with error lines that
    a client checking the status would take for success.
    """
    if request.query.get("fromSrc"):
        return await import_image(request)
    manager = manager_of(request)
    engines = manager.cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    body = await request.read()
    lines: asyncio.Queue[tuple[bool, bytes] | None] = asyncio.Queue()  # (from a node that answered 200, line)
    refusals: list[tuple[int, str]] = []

    async def run_all() -> None:
        await asyncio.gather(*(_pull_on(e, request, body, lines, refusals) for e in engines))
        await lines.put(None)

    out = LazyStream(request)
    held: list[bytes] = []  # refusals, until a node streams (or every node has refused)
    task = asyncio.ensure_future(run_all())
    try:
        while (item := await lines.get()) is not None:
            streaming, line = item
            if out.response is None and not streaming:
                held.append(line)
                continue
            for early in held:
                await out.write(early)
            held = []
            await out.write(line)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if out.response is None:
        statuses = {status for status, _ in refusals}
        return error(statuses.pop() if len(statuses) == 1 else 500, "; ".join(text for _, text in refusals))
    return await out.finish()


async def _pull_on(
    engine: Engine,
    request: web.Request,
    body: bytes,
    lines: asyncio.Queue[tuple[bool, bytes] | None],
    refusals: list[tuple[int, str]],
) -> None:
    """One node's pull: its progress onto ``lines``, each line saying the node; a refusal also into ``refusals``."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("x-registry-auth", "content-type")}
    try:
        async with engine.request(
            "POST",
            request.rel_url.raw_path_qs,
            data=body or None,
            headers=headers,
            timeout=STREAM_TIMEOUT,
        ) as r:
            if r.status >= 300:
                text = (await r.read()).decode(errors="replace")
                with contextlib.suppress(ValueError, AttributeError):
                    text = json.loads(text).get("message", text)
                refusals.append((r.status, f"{engine.name}: {text}"))
                await lines.put((False, error_line(f"{engine.name}: {text}")))
                return
            async for line in r.content:
                if line.strip():
                    await lines.put((True, _tag_progress(line, engine.name)))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        refusals.append((500, f"{engine.name}: {exc}"))
        await lines.put((False, error_line(f"{engine.name}: {exc}")))
    finally:
        with contextlib.suppress(Exception):
            await engine.refresh_images()


def _tag_progress(line: bytes, node: str) -> bytes:
    """Say which node a progress line is about, in the ``id`` the docker CLI groups progress by."""
    try:
        message = json.loads(line)
    except ValueError:
        return line if line.endswith(b"\n") else line + b"\n"
    if isinstance(message, dict):
        if "id" in message:
            message["id"] = f"{node}: {message['id']}"
        elif "status" in message:
            message["status"] = f"{node}: {message['status']}"
        if "error" in message:
            message["error"] = f"{node}: {message['error']}"
    return json.dumps(message).encode() + b"\n"
