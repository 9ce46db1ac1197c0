"""``manage --dashboard``: one live page of the cluster, served by the manager on its own address.

The page (``static/dashboard.html``: plain HTML, CSS and script, nothing to
build, nothing fetched from the internet) asks for:

- ``GET /state``: the cluster's totals and every node (state, last error,
  reserved and total CPUs and memory, its containers when the cluster is
  small enough to send them all);
- ``GET /node?addr=A``: one node with its containers (a large cluster's page
  asks when a node is opened);
- ``GET /events``: server-sent events. ``node`` carries a node's record
  again when it changed, ``cluster`` the totals, ``feed`` one line of what
  happened (a node connected or lost, a container created, started, died or
  destroyed, as the engines report it).

What goes out follows what changed: once a second the stream compares each
engine's change counter with the one it sent last and sends only the nodes
that moved, so at 1,000 nodes an idle cluster costs a thousand integer
comparisons a second per open page. A container's placement reason is the
one the placer kept (``scheduler/placement.py``: the strategy, the node's
rank among the candidates, the nodes each filter ruled out).
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import Any

from aiohttp import web

from ..cluster.engine import Engine
from ..cluster.events import END, Event
from .context import Manager

#: Up to this many containers in the whole cluster, every node's record carries its containers.
INLINE_CONTAINERS = 2_000
#: How often an open page is told of the nodes that changed (seconds).
TICK = 1.0


def _container(manager: Manager, cid: str, summary: dict[str, Any]) -> dict[str, Any]:
    names = summary.get("Names") or []
    return {
        "id": cid[:12],
        "name": str(names[0]).rsplit("/", 1)[-1] if names else cid[:12],
        "image": summary.get("Image", ""),
        "state": summary.get("State", ""),
        "status": summary.get("Status", ""),
        "why": manager.placer.placements.get(cid, ""),
    }


def node_record(manager: Manager, engine: Engine, *, containers: bool) -> dict[str, Any]:
    """What the page shows of one node; its containers only when asked (see :data:`INLINE_CONTAINERS`)."""
    reserved_cpus, reserved_memory = engine.reserved()
    listed = engine.containers
    record: dict[str, Any] = {
        "addr": engine.addr,
        "name": engine.name,
        "state": engine.state,
        "error": engine.last_error if not engine.healthy else "",
        "cpus": [reserved_cpus, engine.ncpu],
        "memory": [reserved_memory, engine.memory],
        "containers": len(listed),
        "running": sum(1 for c in listed.values() if c.get("State") == "running"),
    }
    if containers:
        record["list"] = sorted(
            (_container(manager, cid, c) for cid, c in listed.items()), key=lambda c: str(c["name"])
        )
    return record


def cluster_record(manager: Manager) -> dict[str, Any]:
    engines = list(manager.cluster.engines.values())
    reserved = [e.reserved() for e in engines]
    return {
        "strategy": manager.strategy,
        "role": "primary" if not manager.replicated or manager.role.primary else "replica",
        "nodes": len(engines),
        "healthy": sum(1 for e in engines if e.healthy),
        "containers": sum(len(e.containers) for e in engines),
        "cpus": [sum(r[0] for r in reserved), sum(e.ncpu for e in engines)],
        "memory": [sum(r[1] for r in reserved), sum(e.memory for e in engines)],
    }


def _inline(manager: Manager) -> bool:
    return sum(len(e.containers) for e in manager.cluster.engines.values()) <= INLINE_CONTAINERS


def feed_line(event: Event) -> str | None:
    """An engine's event in words for the feed; None for the kinds the page does not show."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    node = (event.get("node") or {}).get("Name") or attributes.get("node.name", "")
    kind, action = event.get("Type"), str(event.get("Action") or event.get("status") or "")
    if kind == "engine" or action in ("engine_connect", "engine_disconnect"):
        return f"node {node}: {'connected' if action == 'engine_connect' else 'lost'}"
    if kind == "container" and action == "reschedule":
        return f"rescheduled {attributes.get('name', '')} from {attributes.get('from', '')} to {node}"
    if kind == "container" and action in ("create", "start", "die", "destroy", "kill", "stop"):
        name = attributes.get("name") or str(actor.get("ID", ""))[:12]
        return f"{action} {node}/{name}"
    return None


def _sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def dashboard_app(manager: Manager) -> web.Application:
    """The dashboard's app: the page, ``/state``, ``/node`` and the ``/events`` stream."""
    page = resources.files(__package__).joinpath("static/dashboard.html").read_bytes()

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def state(request: web.Request) -> web.Response:
        inline = _inline(manager)
        nodes = [node_record(manager, e, containers=inline) for e in manager.cluster.engines.values()]
        return web.json_response({"cluster": cluster_record(manager), "nodes": nodes, "inline": inline})

    async def node(request: web.Request) -> web.Response:
        engine = manager.cluster.engines.get(request.query.get("addr", ""))
        if engine is None:
            return web.json_response({"message": "no such node"}, status=404)
        return web.json_response(node_record(manager, engine, containers=True))

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue = manager.cluster.bus.subscribe(listener=False)
        sent: dict[str, tuple[int, str, str]] = {}
        try:
            await _follow(manager, response, queue, sent)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            manager.cluster.bus.unsubscribe(queue)
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/state", state)
    app.router.add_get("/node", node)
    app.router.add_get("/events", events)
    return app


async def _follow(
    manager: Manager, response: web.StreamResponse, queue: asyncio.Queue[Event], sent: dict[str, tuple[int, str, str]]
) -> None:
    """Write the feed as events come, and once a :data:`TICK` the nodes that changed since they were sent."""
    for engine in manager.cluster.engines.values():
        sent[engine.addr] = _mark(engine)
    next_tick = time.monotonic() + TICK
    while True:
        try:
            event: Event | None = await asyncio.wait_for(queue.get(), max(next_tick - time.monotonic(), 0.01))
        except TimeoutError:
            event = None
        if event is END:  # the manager stops
            return
        if event is not None and (line := feed_line(event)) is not None:
            await response.write(_sse("feed", {"time": event.get("time", int(time.time())), "text": line}))
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + TICK
            await _send_changes(manager, response, sent)


def _mark(engine: Engine) -> tuple[int, str, str]:
    """What says a node's record changed: its cache's change counter, its state, its last error."""
    return engine.generation, engine.state, engine.last_error


async def _send_changes(manager: Manager, response: web.StreamResponse, sent: dict[str, tuple[int, str, str]]) -> None:
    engines = manager.cluster.engines
    inline = _inline(manager)
    changed = False
    for addr, engine in engines.items():
        mark = _mark(engine)
        if sent.get(addr) != mark:
            sent[addr] = mark
            changed = True
            await response.write(_sse("node", node_record(manager, engine, containers=inline)))
    for addr in [a for a in sent if a not in engines]:
        del sent[addr]
        changed = True
        await response.write(_sse("gone", {"addr": addr}))
    if changed:
        await response.write(_sse("cluster", cluster_record(manager)))
