"""Volumes across the cluster: a plain name is one volume, on every node that holds it.

As Docker Swarm did, ``docker volume create NAME`` makes the volume on every
healthy node (those that meet the constraints given as the label
``com.docker.swarm.constraints``), so a container mounting it can go
anywhere; ``NODE/NAME`` makes it on that node only, and a volume without a
name (the engine picks one) on one node the scheduler chooses. Beyond Swarm,
``ls`` and ``inspect`` show a plain name once, with the nodes that hold it
(``Status.Nodes``); ``rm`` removes it from every one of them, refusing while any
container uses it, on any node, so that a removal never half happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import jsontext
from ..cluster.engine import Engine
from ..cluster.fanout import ask, on_each
from ..cluster.resources import LookupError_, Volume, find_volume, split_node, volume_users, volumes_of, with_nodes
from ..scheduler import ExpressionError, NoNodeError
from .bodies import VOLUME_CREATE
from .context import Manager, manager_of
from .filters import accept_only, label_matches, matches_all, parse_filters, refusal
from .headers import answer
from .placing import placement
from .proxy import error, failure, forward, json_body, version_prefix


def _keep(volume: Volume, filters: dict[str, list[str]], dangling: bool | None) -> bool:
    """The engine's volume filters on the cached volumes (``name`` searched, as there)."""
    data = volume.data
    if dangling is not None and (not _used(volume)) != dangling:
        return False
    checks: dict[str, Callable[[str], bool]] = {
        "name": lambda v: bool(re.search(v, volume.name)),
        "driver": lambda v: data.get("Driver") == v,
        "label": lambda v: label_matches(data.get("Labels") or {}, v),
        "node": lambda v: v in volume.nodes,
    }
    return matches_all({k: v for k, v in filters.items() if k != "dangling"}, checks)


def _dangling(filters: dict[str, list[str]]) -> bool | None:
    """dockerd 20.10's ``dangling`` for volumes: None if not asked; else true unless only ``false``/``0`` are given.

    Unlike ``GetBoolOrDefault`` (networks), it tests for ``true``/``1``
    first, so ``["true", "false"]`` and a key without values mean dangling
    volumes; no boolean among the values is 400.
    """
    if "dangling" not in filters:
        return None
    values = set(filters["dangling"])
    if not values or values & {"true", "1"}:
        return True
    if values & {"false", "0"}:
        return False
    raise refusal(400, f"Invalid filter 'dangling=[{' '.join(filters['dangling'])}]'")


#: What dockerd's volume listing filters on, and the node of the cluster.
VOLUME_FILTERS = ("dangling", "driver", "label", "name", "node")


def _used(volume: Volume) -> list[tuple[Engine, list[str]]]:
    """The nodes where containers mount ``volume``, with those containers."""
    found = [(engine, volume_users(engine, volume.name)) for engine in volume.holders]
    return [(engine, users) for engine, users in found if users]


async def volumes_json(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    filters = parse_filters(request.query.get("filters"), status=400, context="error reading volume filters: ")
    accept_only(filters, VOLUME_FILTERS)
    dangling = _dangling(filters)

    def listing(keep: Callable[[Volume], bool]) -> bytes:
        volumes = [v.data for v in volumes_of(manager.cluster.healthy()) if keep(v)]
        return json.dumps({"Volumes": volumes, "Warnings": None}).encode()

    if not filters:
        body = manager.cached("volumes", lambda: listing(lambda v: True))
    else:
        body = listing(lambda v: _keep(v, filters, dangling))
    return answer(manager, body)


def _lookup(request: web.Request) -> Volume | web.Response:
    try:
        return find_volume(manager_of(request).cluster.healthy(), request.match_info["ref"])
    except LookupError_ as exc:
        return error(exc.status, exc.message)


async def volume_inspect(request: web.Request) -> web.StreamResponse:
    """One holder's inspect, and where the volume is."""
    volume = _lookup(request)
    if isinstance(volume, web.Response):
        return volume
    reply = await ask(volume.holders[0], "GET", f"{version_prefix(request)}/volumes/{volume.name}")
    if not reply.ok:
        return failure([reply])
    return web.json_response(with_nodes(reply.json(), volume.nodes))


async def volume_create(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    body = await json_body(request, VOLUME_CREATE)
    if isinstance(body, web.Response):
        return body
    raw_name: str = body.get("Name") or ""  # a string or nothing: the body is checked (bodies.py)
    node, name = split_node(raw_name)
    body["Name"] = name
    try:
        engines = _placement(manager, body, node)
    except (ExpressionError, NoNodeError) as exc:
        return error(400 if isinstance(exc, ExpressionError) else 500, str(exc))
    replies = await on_each(
        engines, "POST", f"{version_prefix(request)}/volumes/create", body=jsontext.dumps(body).encode()
    )
    await asyncio.gather(*(_refresh(r.engine) for r in replies))
    failed = [r for r in replies if not r.ok]
    if failed:
        made = [r.engine.name for r in replies if r.ok]
        if not made:
            return failure(replies)
        return error(
            500, f"volume {name} was created on {', '.join(made)} but not on: {'; '.join(r.message for r in failed)}"
        )
    first = min(replies, key=lambda r: r.engine.name)  # the copy inspect and ls show too
    answer = with_nodes(first.json(), sorted(r.engine.name for r in replies))
    return web.json_response(answer, status=first.status)


def _placement(manager: Manager, body: dict[str, Any], node: str | None) -> list[Engine]:
    """The nodes to create the volume on: the named one, every eligible one, or the scheduler's choice."""
    candidates, _ = placement(manager, node, body.get("Labels"))
    return candidates if body["Name"] else candidates[:1]


async def _refresh(engine: Engine) -> None:
    with contextlib.suppress(Exception):
        await engine.refresh_volumes()


async def volume_delete(request: web.Request) -> web.StreamResponse:
    """From every node that holds it; refused at once while a container on any node uses it."""
    volume = _lookup(request)
    if isinstance(volume, web.Response):
        return volume
    used = _used(volume)
    if used:
        ids = [cid for _, users in used for cid in users]
        nodes = ", ".join(engine.name for engine, _ in used)
        return error(409, f"remove {volume.name}: volume is in use - [{', '.join(ids)}] (on {nodes})")
    query = request.rel_url.raw_query_string
    path = f"{version_prefix(request)}/volumes/{volume.name}" + (f"?{query}" if query else "")
    if len(volume.holders) == 1:
        response = await forward(request, volume.holders[0], path)
        await _refresh(volume.holders[0])
        return response
    replies = await on_each(volume.holders, "DELETE", path)
    await asyncio.gather(*(_refresh(r.engine) for r in replies))
    if all(r.ok or r.status == 404 for r in replies):
        return web.Response(status=204)
    return failure(replies)
