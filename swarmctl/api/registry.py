"""What talks to a registry: ``docker push`` from a node that has the image; search and login through any node.

The registry is the same whichever node asks it, so search and ``/auth``
go to any healthy node (a random one, as in Swarm), credentials passed on
as the client sent them. Where no node has the image to push, a node is
asked anyway: it answers as one engine answers for an image it lacks.
"""

from __future__ import annotations

import random

from aiohttp import web

from ..cluster.engine import Engine
from .context import manager_of
from .proxy import error, forward


def _any_node(request: web.Request) -> Engine | web.Response:
    engines = manager_of(request).cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    return random.choice(engines)


async def push(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=``: one node with the tag (any tag of the repository when none is given)."""
    cluster = manager_of(request).cluster
    name, tag = request.match_info["name"], request.query.get("tag", "")
    holders = cluster.engine_with_image(f"{name}:{tag}") if tag else cluster.engines_with_repository(name)
    engine = holders[0] if holders else _any_node(request)
    if isinstance(engine, web.Response):
        return engine
    return await forward(request, engine)


async def through_any(request: web.Request) -> web.StreamResponse:
    """``GET /images/search`` and ``POST /auth``: any healthy node asks the registry."""
    engine = _any_node(request)
    if isinstance(engine, web.Response):
        return engine
    return await forward(request, engine)
