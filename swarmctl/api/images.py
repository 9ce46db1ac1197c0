"""Images: listed from every node's cache; pulls, tags and removals fan out to the nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from aiohttp import web

from ..cluster.engine import Engine
from .context import manager_of
from .fanout import on_each
from .proxy import STREAM_TIMEOUT, error, forward


async def images_json(request: web.Request) -> web.Response:
    manager = manager_of(request)

    def build() -> bytes:
        merged: dict[str, dict[str, Any]] = {}
        for engine in manager.cluster.healthy():
            for image in engine.images:
                seen = merged.get(image["Id"])
                if seen is None:
                    merged[image["Id"]] = dict(image)
                else:
                    tags = seen.get("RepoTags") or []
                    seen["RepoTags"] = tags + [t for t in image.get("RepoTags") or [] if t not in tags]
        return json.dumps(sorted(merged.values(), key=lambda i: -int(i.get("Created", 0)))).encode()

    return web.Response(body=manager.cached("images", build), content_type="application/json")


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
        answered = [r for r in replies if r.status]
        if not answered:
            return error(500, replies[0].message)
        return web.Response(status=answered[0].status, body=answered[0].body, content_type="application/json")
    if request.method == "DELETE":
        merged: list[Any] = []
        for reply in good:
            merged += reply.json() or []
        return web.json_response(merged)
    return web.Response(status=good[0].status, body=good[0].body)


async def images_create(request: web.Request) -> web.StreamResponse:
    """``docker pull`` (and import): run on every healthy node, progress streamed as it comes."""
    manager = manager_of(request)
    engines = manager.cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    body = await request.read()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def one(engine: Engine) -> None:
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
                    with contextlib.suppress(ValueError):
                        text = json.loads(text).get("message", text)
                    await lines.put(
                        json.dumps(
                            {
                                "error": f"{engine.name}: {text}",
                                "errorDetail": {"message": f"{engine.name}: {text}"},
                            }
                        ).encode()
                        + b"\n"
                    )
                    return
                async for line in r.content:
                    if line.strip():
                        await lines.put(_tag_progress(line, engine.name))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await lines.put(json.dumps({"error": f"{engine.name}: {exc}"}).encode() + b"\n")
        finally:
            with contextlib.suppress(Exception):
                await engine.refresh_images()

    async def run_all() -> None:
        await asyncio.gather(*(one(e) for e in engines))
        await lines.put(None)

    task = asyncio.ensure_future(run_all())
    try:
        while (line := await lines.get()) is not None:
            await response.write(line)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


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
