"""``GET /distribution/{name}/json``: an image's manifest, asked of the registry through one node.

The answer is the registry's, not a node's, so any healthy node that can
reach the registry gives it. Nodes are tried in random order (so no node
carries every lookup); a node that answers 5xx (it could not reach the
registry, or failed) is passed over for the next, three at most, as the
placer tries three nodes for a create. A 4xx is the registry's own answer
(no such image, no credentials) and is final.
"""

from __future__ import annotations

import random

from aiohttp import web

from ..cluster.fanout import Reply, ask
from .context import manager_of
from .proxy import error

#: How many nodes are asked before the last one's failure is the answer.
ATTEMPTS = 3
#: Request headers the registry lookup needs passed on.
_PASSED = ("x-registry-auth",)


async def distribution_inspect(request: web.Request) -> web.Response:
    engines = manager_of(request).cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    headers = {k: v for k, v in request.headers.items() if k.lower() in _PASSED}
    reply: Reply | None = None
    for engine in random.sample(engines, min(ATTEMPTS, len(engines))):
        reply = await ask(engine, "GET", request.rel_url.raw_path_qs, headers=headers)
        if 0 < reply.status < 500:
            break
    assert reply is not None
    if reply.status == 0:
        return error(500, reply.error)
    return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": "application/json"})
