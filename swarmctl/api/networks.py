"""Networks across the cluster: one name, one network (see :mod:`swarmctl.cluster.resources`).

- ``create``: ``node/name`` on that node; a multi-host driver (``overlay``, or
  any network the engine then reports with a ``global``/``swarm`` scope) on
  one node, after which every node sees it; any other (a local ``bridge``,
  what docker-compose makes) on a node the scheduler chooses, honouring the
  constraints given as the label ``com.docker.swarm.constraints``. A name is
  refused when the cluster has a network of that name anywhere, unless the
  request says ``CheckDuplicate: false``: then, as on one engine, a second
  network of that name is made (and the plain name becomes ambiguous).
- ``ls`` shows each network once: plain-named where its name is unique,
  ``node/name`` where several nodes have one (the built-in ``bridge``,
  ``host`` and ``none``); ``inspect``, ``rm``, ``connect`` and
  ``disconnect`` take either.
- ``connect`` goes to the container's node, which must have the network
  (or see it, for a multi-host one); an empty network the scheduler placed
  follows the container there instead (see :mod:`swarmctl.scheduler.placement`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from .. import jsontext
from ..cluster.engine import Engine, EngineError
from ..cluster.fanout import Reply, ask
from ..cluster.resources import (
    PREDEFINED_NETWORKS,
    SCHEDULED_LABEL,
    LookupError_,
    Network,
    find_network,
    movable,
    move_network,
    network_users,
    networks_of,
    shown_network_names,
    split_node,
)
from ..scheduler import ExpressionError, NoNodeError
from ..scheduler.placement import CREATE_TRIES
from .bodies import NETWORK_CONNECT, NETWORK_CREATE, NETWORK_DISCONNECT
from .context import Manager, manager_of
from .filters import accept_only, boolean, label_matches, matches_all, parse_filters, refusal
from .headers import answer
from .placing import placement
from .proxy import error, failure, forward, json_body, version_prefix

#: Drivers that span hosts whatever the engine later reports.
MULTI_HOST_DRIVERS = frozenset({"overlay"})


def _listed(manager: Manager) -> list[tuple[Network, str]]:
    networks = networks_of(manager.cluster.healthy())
    shown = shown_network_names(networks)
    return [(n, shown[id(n)]) for n in networks]


#: What dockerd's network listing filters on.
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _used(network: Network) -> bool:
    return any(network_users(engine, network) for engine in network.holders)


def _keep(network: Network, shown: str, filters: dict[str, list[str]]) -> bool:
    """The engine's network filters, on the cached networks (``name`` and ``id`` are searched, as there)."""
    data = _visible(network.data)
    checks: dict[str, Callable[[str], bool]] = {
        "name": lambda v: bool(re.search(v, shown) or re.search(v, network.name)),
        "id": lambda v: bool(re.search(v, network.id)),
        "driver": lambda v: data.get("Driver") == v,
        "scope": lambda v: (data.get("Scope") or "local") == v,
        "type": lambda v: (network.name in PREDEFINED_NETWORKS) == (v == "builtin"),
        "label": lambda v: label_matches(data.get("Labels") or {}, v),
        "dangling": lambda v: (not _used(network) and network.name not in PREDEFINED_NETWORKS) == (v in ("true", "1")),
    }
    return matches_all(filters, checks)


def _as_listed(network: Network, shown: str) -> dict[str, Any]:
    listed = _visible(network.data)
    listed["Name"] = shown
    return listed


def _visible(data: dict[str, Any]) -> dict[str, Any]:
    """A network as clients see it: without the manager's own :data:`SCHEDULED_LABEL`.

    It is bookkeeping (it must live on the engine to outlast a restarted
    manager), not a label the user gave, and a client that reads back the
    labels it created a network with must find exactly those.
    """
    labels = data.get("Labels") or {}
    if SCHEDULED_LABEL not in labels:
        return dict(data)
    return {**data, "Labels": {k: v for k, v in labels.items() if k != SCHEDULED_LABEL}}


async def networks_json(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    filters = parse_filters(request.query.get("filters"))
    accept_only(filters, NETWORK_FILTERS)
    if len(filters.get("dangling", [])) > 1:
        raise refusal(400, 'got more than one value for filter key "dangling"')
    boolean(filters, "dangling")
    for kind in filters.get("type", []):
        if kind not in ("custom", "builtin"):
            raise refusal(500, f"invalid filter: 'type'='{kind}'")
    if not filters:
        body = manager.cached(
            "networks", lambda: json.dumps([_as_listed(n, shown) for n, shown in _listed(manager)]).encode()
        )
    else:
        body = json.dumps([_as_listed(n, s) for n, s in _listed(manager) if _keep(n, s, filters)]).encode()
    return answer(manager, body)


def _lookup(request: web.Request, ref: str) -> Network | web.Response:
    try:
        return find_network(manager_of(request).cluster.healthy(), ref)
    except LookupError_ as exc:
        return error(exc.status, exc.message)


async def network_inspect(request: web.Request) -> web.StreamResponse:
    """The engine's inspect (a multi-host network's ``Containers`` gathered from every node that sees it)."""
    network = _lookup(request, request.match_info["ref"])
    if isinstance(network, web.Response):
        return network
    query = request.rel_url.raw_query_string
    path = f"{version_prefix(request)}/networks/{network.id}" + (f"?{query}" if query else "")
    replies = await asyncio.gather(*(ask(e, "GET", path) for e in network.holders))
    answered = [r for r in replies if r.ok]
    if not answered:
        return failure(replies)
    merged = answered[0].json()
    for reply in answered[1:]:
        merged.setdefault("Containers", {}).update(reply.json().get("Containers") or {})
    return web.json_response(_visible(merged))


async def network_create(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    body = await json_body(request, NETWORK_CREATE)
    if isinstance(body, web.Response):
        return body
    raw_name: str = body.get("Name") or ""  # a string or nothing: the body is checked (bodies.py)
    if not raw_name:
        return error(500, "invalid name: ")  # the engine's words and status
    node, name = split_node(raw_name)
    taken = [n for n in networks_of(manager.cluster.healthy()) if n.name == name]
    if taken and body.get("CheckDuplicate") is not False:  # an explicit false: a duplicate, as an engine makes
        where = ", ".join(sorted({e.name for n in taken for e in n.holders}))
        return error(409, f"network with name {name} already exists (on {where})")
    body["Name"] = name
    try:
        candidates = _placement(manager, body, node)
    except (ExpressionError, NoNodeError) as exc:
        return error(400 if isinstance(exc, ExpressionError) else 500, str(exc))
    path = f"{version_prefix(request)}/networks/create"
    reply: Reply | None = None
    for engine in candidates[:CREATE_TRIES]:
        reply = await ask(engine, "POST", path, body=jsontext.dumps(body).encode())
        if reply.status:  # answered: created, or refused as it would be anywhere
            break
    assert reply is not None
    if reply.ok:
        await _refresh(reply.engine)
        if any(n.multi_host and n.name == name for n in networks_of([reply.engine])):
            await asyncio.gather(*(_refresh(e) for e in manager.cluster.healthy()))  # every node sees it now
    if not reply.status:
        return error(500, reply.message)
    return web.Response(status=reply.status, body=reply.body, headers={"Content-Type": "application/json"})


def _placement(manager: Manager, body: dict[str, Any], node: str | None) -> list[Engine]:
    """Where to create the network, best first: the named node, or the scheduler's choice.

    A local network placed by the scheduler is marked (:data:`SCHEDULED_LABEL`)
    so that, while empty, it may follow its first container; not when the user
    fixed its addresses or gave it rules: then where it is was meant.
    """
    labels = body.get("Labels") if isinstance(body.get("Labels"), dict) else {}
    candidates, wanted = placement(manager, node, labels)
    driver = str(body.get("Driver") or "bridge")
    ipam = body.get("IPAM") if isinstance(body.get("IPAM"), dict) else {}
    if node is None and driver not in MULTI_HOST_DRIVERS and not wanted.constraints and not (ipam or {}).get("Config"):
        body["Labels"] = {**(labels or {}), SCHEDULED_LABEL: "true"}
    return candidates


async def _refresh(engine: Engine) -> None:
    with contextlib.suppress(Exception):
        await engine.refresh_networks()


async def network_delete(request: web.Request) -> web.StreamResponse:
    """``rm``: on the network's node (one node suffices for a multi-host network: the others follow)."""
    network = _lookup(request, request.match_info["ref"])
    if isinstance(network, web.Response):
        return network
    response = await forward(request, network.engine, f"{version_prefix(request)}/networks/{network.id}")
    if response.status < 300:
        await asyncio.gather(*(_refresh(e) for e in network.holders))
    return response


async def _container_and_network(
    request: web.Request, body: dict[str, Any]
) -> tuple[Engine, str, Network] | web.Response:
    manager = manager_of(request)
    network = _lookup(request, request.match_info["ref"])
    if isinstance(network, web.Response):
        return network
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        return error(400, "a container is required (Container)")
    try:
        engine, cid = manager.cluster.find_container(ref)
    except LookupError_ as exc:
        return error(exc.status, exc.message)
    return engine, cid, network


async def network_connect(request: web.Request) -> web.StreamResponse:
    """On the container's node; an empty network the scheduler placed elsewhere comes along."""
    body = await json_body(request, NETWORK_CONNECT)
    if isinstance(body, web.Response):
        return body
    found = await _container_and_network(request, body)
    if isinstance(found, web.Response):
        return found
    engine, cid, network = found
    if engine not in network.holders:
        if not movable(network):
            where = ", ".join(sorted(e.name for e in network.holders))
            return error(
                409,
                f"container {body['Container']} is on node {engine.name} but network {network.name} is on {where}:"
                f" a container can only join a network of its own node (or one that spans hosts)",
            )
        try:
            network = await move_network(network, engine)
        except (LookupError_, EngineError, TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            return error(500, f"cannot move the network {network.name} to node {engine.name}: {exc}")
    return await _on_container_node(request, engine, cid, network, {**body, "Container": cid}, "connect")


async def network_disconnect(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, NETWORK_DISCONNECT)
    if isinstance(body, web.Response):
        return body
    found = await _container_and_network(request, body)
    if isinstance(found, web.Response):
        if found.status == 404 and body.get("Force") and isinstance(body.get("Container"), str):
            # A container gone from the cache: the network's node may still hold its endpoint.
            network = _lookup(request, request.match_info["ref"])
            if isinstance(network, Network):
                path = f"{version_prefix(request)}/networks/{network.id}/disconnect"
                return await forward(request, network.engine, path, body=jsontext.dumps(body).encode())
        return found
    engine, cid, network = found
    return await _on_container_node(request, engine, cid, network, {**body, "Container": cid}, "disconnect")


async def _on_container_node(
    request: web.Request, engine: Engine, cid: str, network: Network, body: dict[str, Any], action: str
) -> web.StreamResponse:
    path = f"{version_prefix(request)}/networks/{network.id}/{action}"
    response = await forward(request, engine, path, body=jsontext.dumps(body).encode())
    if response.status < 300:
        with contextlib.suppress(Exception):
            await engine.refresh_container(cid)
    return response
