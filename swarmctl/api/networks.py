"""Networks: listed from every node's cache, inspected on the node that has them."""

from __future__ import annotations

from aiohttp import web

from .context import manager_of
from .naming import per_node, split_node
from .proxy import error, forward


async def networks_json(request: web.Request) -> web.Response:
    """Local networks are per node, so they are named by node; swarm-scoped ones are shared."""
    return per_node(request, "networks", lambda e: e.networks, lambda n: n.get("Scope") == "local", lambda f: f)


async def network_inspect(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    node, ref = split_node(request.match_info["ref"])
    for engine in manager.cluster.healthy():
        if node is not None and engine.name != node:
            continue
        for network in engine.networks:
            if ref in (network["Name"], network["Id"]) or (len(ref) >= 3 and network["Id"].startswith(ref)):
                prefix = request.path.split("/networks/")[0]
                return await forward(request, engine, f"{prefix}/networks/{network['Id']}")
    return error(404, f"network {request.match_info['ref']} not found")
