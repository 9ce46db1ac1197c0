"""Volumes: listed from every node's cache, inspected on the node that has them."""

from __future__ import annotations

from aiohttp import web

from .context import manager_of
from .naming import per_node, split_node
from .proxy import error, forward


async def volumes_json(request: web.Request) -> web.Response:
    return per_node(request, "volumes", lambda e: e.volumes, lambda v: True, lambda f: {"Volumes": f, "Warnings": None})


async def volume_inspect(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    node, ref = split_node(request.match_info["ref"])
    for engine in manager.cluster.healthy():
        if node is not None and engine.name != node:
            continue
        for volume in engine.volumes:
            if volume["Name"] == ref:
                prefix = request.path.split("/volumes/")[0]
                return await forward(request, engine, f"{prefix}/volumes/{ref}")
    return error(404, f"get {request.match_info['ref']}: no such volume")
