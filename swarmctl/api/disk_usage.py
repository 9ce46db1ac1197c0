"""``GET /system/df``: the cluster's disk usage, as one engine holding every node's objects would report it.

Every healthy node is asked; the answers are added up: ``LayersSize`` (and
``BuilderSize``) summed, the ``Images``, ``Containers``, ``Volumes`` and
``BuildCache`` lists concatenated. Containers' names are written
``/<node>/<name>`` and volumes' ``<node>/<name>``, as ``docker ps`` and
``docker volume ls`` show them here.

An image present on several nodes is listed **once per node**, not merged by
ID: each node stores its own copy of the layers, and ``LayersSize`` counts
every copy. The docker CLI computes the images' reclaimable space as
``LayersSize`` minus the unique size of each image some container uses; with
one entry per node, a copy in use on node1 and unused on node2 counts as
used once and reclaimable once, which is what pruning would free. Merged
by ID, it would count as used once against two copies' worth of layers (the
reclaimable space overstated), and ``Containers`` per image would mix nodes.
``docker system df -v`` hence shows one row per copy.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..cluster.engine import Engine
from ..cluster.fanout import SLOW_TIMEOUT, merge_counts, on_each
from .containers import with_node_names
from .context import manager_of
from .proxy import error

#: What an engine with nothing on it answers (dockerd 20.10).
EMPTY = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": None, "BuilderSize": 0}


def _as_listed_here(engine: Engine, usage: dict[str, Any]) -> dict[str, Any]:
    """One node's answer with its containers and volumes named as this manager names them."""
    named = dict(usage)
    named["Containers"] = [with_node_names(engine, c) for c in usage.get("Containers") or []]
    named["Volumes"] = [{**v, "Name": f"{engine.name}/{v['Name']}"} for v in usage.get("Volumes") or []]
    return named


async def system_df(request: web.Request) -> web.Response:
    """Summed over the healthy nodes; a node that fails fails the answer (totals without it would be wrong)."""
    engines = manager_of(request).cluster.healthy()
    replies = await on_each(engines, "GET", request.rel_url.raw_path_qs, timeout=SLOW_TIMEOUT)
    failed = [reply for reply in replies if not reply.ok]
    if failed:
        statuses = {reply.status for reply in failed}
        status = statuses.pop() if len(statuses) == 1 and 0 not in statuses else 500
        return error(status, "; ".join(reply.message for reply in failed))
    answers = []
    for reply in replies:
        try:
            usage = reply.json()
        except ValueError:
            usage = None
        if not isinstance(usage, dict):
            return error(500, f"{reply.engine.name}: not a disk usage answer: {reply.body[:200]!r}")
        answers.append(_as_listed_here(reply.engine, usage))
    return web.json_response({**EMPTY, **merge_counts(answers)})
