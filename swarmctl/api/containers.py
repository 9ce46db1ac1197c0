"""Containers: listed and inspected from the cache, everything else proxied to the owning node."""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..cluster.cluster import LookupError_
from ..cluster.engine import Engine
from ..cluster.fanout import ask
from ..scheduler import ContainerRequest, ExpressionError
from ..scheduler.globals import copies_of, own_name
from ..scheduler.request import is_global
from .bodies import BadBody, container_config
from .container_filters import compile_filters, limit_of
from .context import Manager, manager_of
from .filters import parse_filters
from .headers import answer, prepare
from .proxy import error, forward, hijack, query_flag, version_prefix

#: POST actions after which the cache is refreshed before answering, so that
#: ``docker stop x && docker ps`` never shows the old state.
#: ``wait`` is among them: ``docker run --rm`` returns when ``wait?condition=removed`` does, and the
#: next ``docker run`` must not find the removed container still counted on its node.
_STATE_CHANGING = {"start", "stop", "restart", "kill", "pause", "unpause", "rename", "update", "wait"}


def _target(request: web.Request, cid: str, rest: str) -> str:
    query = request.rel_url.raw_query_string
    return f"{version_prefix(request)}/containers/{cid}{rest}" + (f"?{query}" if query else "")


def with_node_names(engine: Engine, container: dict[str, Any]) -> dict[str, Any]:
    """A container as listed here: each name written ``/<node>/<name>`` (``docker ps`` shows ``node/name``)."""
    listed = dict(container)
    listed["Names"] = [f"/{engine.name}{name}" for name in container.get("Names") or []]
    return listed


#: The status of a container whose node does not answer, as Swarm wrote it.
HOST_DOWN = "Host Down"


def listed_line(engine: Engine, container: dict[str, Any]) -> dict[str, Any]:
    """A container's line in this manager's ``docker ps``: its names with the node's, "Host Down" if that is down.

    A node that turned Unhealthy (dead, hung, cut off) still has its containers, and they
    come back with it, so they stay listed from the last state seen, as Swarm lists them:
    ``Status`` (the text ``docker ps`` shows) says "Host Down", ``State`` is the one last
    seen. So ``docker ps`` without ``-a`` shows those that were running then (Swarm picked
    them by that state too), and the ``status`` filter matches that state.
    """
    listed = with_node_names(engine, container)
    if not engine.healthy:
        listed["Status"] = HOST_DOWN
    return listed


def list_containers(manager: Manager, show_all: bool, filters: dict[str, list[str]], limit: int) -> list[Any]:
    """The containers ``filters`` keep (refused as dockerd refuses them), newest first, at most ``limit``.

    Every node's, an Unhealthy one's too (see :func:`listed_line`).
    """
    matches = compile_filters(manager, filters)
    found = []
    for engine in manager.cluster.engines.values():
        for container in engine.containers.values():
            if not show_all and container.get("State") != "running" and "status" not in filters:
                continue
            if matches(engine, container):
                found.append(listed_line(engine, container))
    found.sort(key=lambda c: c.get("Created", 0), reverse=True)
    return found[:limit] if limit > 0 else found


def _engine_lines(engine: Engine) -> list[tuple[int, bool, bytes]]:
    """One engine's ``docker ps -a`` lines, serialised, with when each was created and whether it runs.

    Kept until that engine changes (see ``Engine.memo``; a change of its state is one);
    ``docker ps`` picks the running ones.
    """

    def build() -> list[tuple[int, bool, bytes]]:
        return [
            (int(c.get("Created") or 0), c.get("State") == "running", json.dumps(listed_line(engine, c)).encode())
            for c in engine.containers.values()
        ]

    lines: list[tuple[int, bool, bytes]] = engine.memo("ps", build)
    return lines


_created = operator.itemgetter(0)
#: A whole listing larger than this is written out in pieces rather than joined and kept: at 30,000
#: containers it is 33 MB, it changes with nearly every reconciliation, and joining it means
#: allocating (and faulting in) 33 MB twice per request.
KEEP_BELOW = 1 << 20
#: Lines per write of a listing written in pieces.
PIECE = 1000


@dataclass(frozen=True)
class Listing:
    """The unfiltered listing: its pre-serialised lines, newest first, and the size of the JSON array."""

    lines: list[bytes]
    size: int

    @classmethod
    def of(cls, manager: Manager, show_all: bool) -> Listing:
        """Joined from each engine's kept lines: one container changing among 30,000 re-serialises
        its engine's few lines; the rest is a sort of numbers."""
        # The engines' own tuples, not new ones: 30,000 objects made per listing would wake the
        # garbage collector, and a full collection over the cache stalls every request.
        engines = manager.cluster.engines.values()  # an Unhealthy node's containers too (see listed_line)
        found = [line for engine in engines for line in _engine_lines(engine) if show_all or line[1]]
        found.sort(key=_created, reverse=True)
        return cls.of_lines([line[2] for line in found])

    @classmethod
    def of_lines(cls, lines: list[bytes]) -> Listing:
        """``lines`` as the JSON array ``[a, b, ...]`` (brackets and ", " separators counted in its size)."""
        return cls(lines, 2 + sum(map(len, lines)) + 2 * max(len(lines) - 1, 0))

    def body(self) -> bytes:
        """The JSON array, joined the first time it is asked for and kept with the listing (a small one)."""
        joined: bytes | None = self.__dict__.get("_joined")
        if joined is None:
            joined = b"[" + b", ".join(self.lines) + b"]"
            self.__dict__["_joined"] = joined  # frozen dataclass: its fields stay as they are
        return joined

    async def write(self, request: web.Request) -> web.StreamResponse:
        """The listing written in pieces of :data:`PIECE` lines (nothing of its size is allocated)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = self.size
        await prepare(request, response)
        with contextlib.suppress(ConnectionResetError):  # the client hung up: nothing more to say
            await response.write(b"[")
            for start in range(0, len(self.lines), PIECE):
                await response.write((b", " if start else b"") + b", ".join(self.lines[start : start + PIECE]))
            await response.write(b"]")
            await response.write_eof()
        return response


#: The query strings of the plain listings (``docker ps``, ``docker ps -a``): whether they list all.
#: Recognised as they are, these skip the query's parsing on the path every ``ps`` takes.
_PLAIN_LISTINGS = {"": False, "all=1": True, "all=true": True, "all=0": False, "all=false": False}


#: Where each plain listing is kept among the manager's answers (made once, not per request).
_LISTING_KEYS = {True: "ps-lines:all", False: "ps-lines:running"}


async def containers_json(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    show_all = _PLAIN_LISTINGS.get(request.query_string)
    if show_all is not None:
        kept: Listing | None = manager.fresh(_LISTING_KEYS[show_all], manager.generation())  # every ``docker ps``
        if kept is not None and kept.size <= KEEP_BELOW:
            return answer(manager, kept.body())
        return await _plain_listing(request, manager, show_all)
    query = request.query
    show_all = query_flag(request, "all")
    filters = parse_filters(query.get("filters"))
    limit = limit_of(query.get("limit"))
    if query_flag(request, "size"):
        return await _with_sizes(request, list_containers(manager, show_all, filters, limit))
    if not filters and limit <= 0:
        return await _plain_listing(request, manager, show_all)
    body = json.dumps(list_containers(manager, show_all, filters, limit)).encode()
    return web.Response(body=body, content_type="application/json")


async def _plain_listing(request: web.Request, manager: Manager, show_all: bool) -> web.StreamResponse:
    """Every container (or every running one), kept whole while small, written in pieces when large."""
    listing: Listing = manager.kept(
        _LISTING_KEYS[show_all], manager.generation(), lambda: Listing.of(manager, show_all)
    )
    if listing.size > KEEP_BELOW:
        return await listing.write(request)
    return answer(manager, listing.body())


async def _with_sizes(request: web.Request, listed: list[dict[str, Any]]) -> web.Response:
    """``ps -s``: the containers chosen from the cache, as their nodes list them now, sizes included.

    The cache has no sizes (an engine computes them on request, walking the
    container's files), so each node that owns a listed container is asked
    for those containers with ``size=1``; which containers, in which order,
    is still decided here (this manager's filters, ``node`` among them, and
    ``limit``). A container removed meanwhile is left out; a node that cannot
    answer fails the listing, naming it, rather than showing sizes of zero. An
    Unhealthy node is not asked: its containers are listed as cached, "Host Down"
    and without sizes, as in ``docker ps``.
    """
    owners = {cid: engine for engine in manager_of(request).cluster.engines.values() for cid in engine.containers}
    wanted: dict[Engine, list[str]] = {}
    for container in listed:
        owner = owners[container["Id"]]
        if owner.healthy:
            wanted.setdefault(owner, []).append(container["Id"])
    engines = list(wanted)
    paths = [
        f"{version_prefix(request)}/containers/json?all=1&size=1&filters={quote(json.dumps({'id': ids}))}"
        for ids in wanted.values()
    ]
    replies = await asyncio.gather(*(ask(engine, "GET", path) for engine, path in zip(engines, paths, strict=True)))
    failed = [reply for reply in replies if not reply.ok]
    if failed:
        return error(500, "; ".join(reply.message for reply in failed))
    fresh = {c["Id"]: with_node_names(reply.engine, c) for reply in replies for c in reply.json() or []}
    fresh.update({c["Id"]: c for c in listed if not owners[c["Id"]].healthy})
    body = [fresh[c["Id"]] for c in listed if c["Id"] in fresh]
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


def _lookup(request: web.Request) -> tuple[Engine, str] | web.Response:
    cluster = manager_of(request).cluster
    try:
        return cluster.find_container(request.match_info["ref"])
    except LookupError_ as exc:
        name = request.match_info["ref"].strip("/")
        copies = copies_of(cluster.engines.values(), name) if exc.status == 409 else []
        if len(copies) > 1:  # logs, exec, inspect...: one answer, from one copy
            listed = ", ".join(f"{engine.name}/{name}" for engine, _ in copies)
            return error(409, f"Conflict: {name} is a global container, with a copy on each node: name one ({listed})")
        return error(exc.status, exc.message)


async def inspect(request: web.Request) -> web.StreamResponse:
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    if query_flag(request, "size"):
        # Sizes are computed by the engine on request; the cache has none.
        reply = await ask(engine, "GET", _target(request, cid, "/json"))
        if not reply.ok:
            return _json_answer(reply.status, reply.body) if reply.status else error(500, reply.error)
        raw = reply.body.strip()
    else:
        try:
            raw = engine.inspects.raw(cid)
        except KeyError:  # listed, not inspected yet
            return await forward(request, engine, _target(request, cid, "/json"))
    return answer(manager_of(request), _with_node(raw, engine))


def _with_node(raw: bytes, engine: Engine) -> bytes:
    """The inspect's JSON with Swarm's ``Node`` object added, without parsing it again."""
    node = {**engine.node_ref(), "Cpus": engine.ncpu, "Memory": engine.memory, "Labels": engine.labels}
    return raw[:-1] + b', "Node": ' + json.dumps(node).encode() + b"}"


async def container_action(request: web.Request) -> web.StreamResponse:
    """Every ``/containers/{ref}/{action}`` not handled elsewhere, proxied to the owning node."""
    action = request.match_info["action"]
    copies = _every_copy(request) if action in _ON_EVERY_COPY and request.method == "POST" else []
    if copies:
        return await _on_copies(request, copies, f"/{action}")
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    response = await forward(request, engine, _target(request, cid, f"/{action}"))
    if request.method == "POST" and action in _STATE_CHANGING and response.status < 300:
        await engine.refresh_container(cid)
    return response


async def attach(request: web.Request) -> web.StreamResponse:
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    return await hijack(request, engine, _target(request, cid, "/attach"))


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """``attach/ws``: the websocket relayed to the owning node, frames untouched (see ``proxy.hijack``)."""
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    return await hijack(request, engine, _target(request, cid, "/attach/ws"))


async def delete(request: web.Request) -> web.StreamResponse:
    if query_flag(request, "link"):
        return await _delete_link(request)
    copies = _every_copy(request)
    if copies:
        return await _on_copies(request, copies, "")
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    response = await forward(request, engine, _target(request, cid, ""))
    if response.status < 300:
        engine.forget_container(cid)
    return response


#: What a command on a global container's name does to every copy (``rm`` too); the rest need ``node/NAME``.
_ON_EVERY_COPY = {"start", "stop", "restart", "kill"}


def _every_copy(request: web.Request) -> list[tuple[Engine, str]]:
    """The copies on healthy nodes of the global container named (by its name, or a copy's ID), else [].

    ``docker run -d`` starts the container by the ID its create answered: every copy starts.
    ``node/NAME`` names one copy, so it is never every copy. Copies on nodes that do not
    answer are left: they come back with their node (``rm -f node/NAME`` removes one then).
    """
    ref = request.match_info["ref"].strip("/")
    if "/" in ref:
        return []
    cluster = manager_of(request).cluster
    copies = copies_of(cluster.engines.values(), ref)
    if not copies:
        try:
            engine, cid = cluster.find_container(ref)
        except LookupError_:
            return []
        line = engine.containers.get(cid) or {}
        if not is_global(line.get("Labels") or {}):
            return []
        copies = copies_of(cluster.engines.values(), own_name(line))
    return [(e, c) for e, c in copies if e.healthy]


async def _on_copies(request: web.Request, copies: list[tuple[Engine, str]], rest: str) -> web.Response:
    """The request sent to every copy; the first answer if all agree it is done, else the failures, by node."""
    body = await request.read()
    replies = await asyncio.gather(
        *(ask(e, request.method, _target(request, c, rest), body=body or None) for e, c in copies)
    )
    for (engine, cid), reply in zip(copies, replies, strict=True):
        if request.method == "DELETE" and reply.ok:
            engine.forget_container(cid)
        else:
            with contextlib.suppress(Exception):
                await engine.refresh_container(cid)
    failed = [reply for reply in replies if not reply.ok and reply.status != 304]  # 304: already so
    if not failed:
        done = next((reply for reply in replies if reply.ok), replies[0])
        return web.Response(status=done.status, body=done.body or None)
    said = "; ".join(f"{reply.engine.name}: {reply.text}" for reply in failed)
    return error(failed[0].status or 500, said)


async def _delete_link(request: web.Request) -> web.StreamResponse:
    """``docker rm --link PARENT/ALIAS``: the ref is a link's name, on the node of its parent container."""
    parent, _, alias = request.match_info["ref"].strip("/").rpartition("/")
    try:
        engine, cid = manager_of(request).cluster.find_container(parent)
    except LookupError_ as exc:
        return error(exc.status, exc.message)
    own = next((str(n).lstrip("/") for n in engine.containers[cid].get("Names") or [] if "/" not in str(n)[1:]), cid)
    response = await forward(request, engine, _target(request, f"{own}/{alias}", ""))
    if response.status < 300:
        await engine.refresh_container(cid)
    return response


async def create(request: web.Request) -> web.StreamResponse:
    """Place a new container with the scheduler, then create it on the first candidate that accepts it.

    A rule that cannot be read (``-e constraint:node=x``) is the client's
    error, 400, as the engine answers a bad configuration; no node for the
    container is 500 with the reason, as Swarm answered.
    """
    manager = manager_of(request)
    try:
        wanted = ContainerRequest.from_body(container_config(await request.read(), request.headers.get("Content-Type")))
    except BadBody as exc:
        return error(exc.status, exc.message)
    except ExpressionError as exc:
        return error(400, str(exc))
    place = manager.placer.create_global if wanted.is_global else manager.placer.create
    outcome = await place(
        manager.scheduler(),
        wanted,
        request.query.get("name", ""),
        path=f"{version_prefix(request)}/containers/create",
        query=request.rel_url.raw_query_string,
    )
    return _json_answer(outcome.status, outcome.body)


def _json_answer(status: int, body: bytes) -> web.Response:
    """Exactly ``application/json``: the docker CLI prints an error's ``message`` only then (no charset)."""
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


async def exec_create(request: web.Request) -> web.StreamResponse:
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    engine, cid = found
    response = await forward(request, engine, _target(request, cid, "/exec"))
    if response.status == 201 and isinstance(response, web.Response) and response.body:
        exec_id = json.loads(bytes(response.body))["Id"]  # type: ignore[arg-type]
        manager_of(request).cluster.exec_owner[exec_id] = engine
    return response


async def _exec_engine(request: web.Request) -> Engine | web.Response:
    manager = manager_of(request)
    exec_id = request.match_info["exec_id"]
    engine = manager.cluster.exec_owner.get(exec_id)
    if engine is None:
        return error(404, f"No such exec instance: {exec_id}")
    return engine


async def exec_start(request: web.Request) -> web.StreamResponse:
    engine = await _exec_engine(request)
    if isinstance(engine, web.Response):
        return engine
    if request.headers.get("Upgrade", "").lower() == "tcp":
        return await hijack(request, engine)
    return await forward(request, engine)


async def exec_other(request: web.Request) -> web.StreamResponse:
    engine = await _exec_engine(request)
    if isinstance(engine, web.Response):
        return engine
    return await forward(request, engine)
