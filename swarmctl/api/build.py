"""``docker build`` through the manager: one node, chosen as a new container's node is chosen.

A build runs on one engine (its layers, cache and result live there), so
it is placed by the scheduler like ``docker run``: Swarm's rules come as
build arguments (``--build-arg constraint:node==node1``,
``--build-arg affinity:image==base``), taken out before the build reaches
the engine, and the ``cpushares`` and ``memory`` options are what the build
reserves on its node while it runs. The build context (a tar, maybe
gigabytes) is streamed to the engine as it arrives and the output streamed
back line by line; afterwards the node's image cache is refreshed, so
``docker images`` and the next ``docker run`` (which prefers nodes that
have the image) see the result at once.

Only the classic builder is served. BuildKit (``version=2``) needs the
client's ``/session`` (a hijacked HTTP/2 connection) on the same node; no
BuildKit client can run here to test that, so it is refused with a
message rather than half built.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ..cluster.engine import Engine
from ..cluster.fanout import NO_INVENTED_HEADERS, STREAM_TIMEOUT
from ..scheduler import ContainerRequest, ExpressionError, NoNodeError
from ..scheduler.placement import CREATE_TRIES
from .context import RunningBuild, manager_of
from .proxy import error, forward, relay, request_headers
from .prune import prune_on_every_node

#: Build arguments that are Swarm's placement rules, not the Dockerfile's.
RULE_PREFIXES = ("constraint:", "affinity:")
CANCELLED = json.dumps({"errorDetail": {"message": "the build was cancelled"}, "error": "the build was cancelled"})


def split_rules(raw: str | None) -> tuple[dict[str, Any], list[str]]:
    """The build arguments for the engine, and Swarm's rules among them as ``constraint:node==x`` entries.

    The docker CLI sends ``--build-arg constraint:node==x`` as the key ``constraint:node`` with the
    value ``=x``, so key and value are joined again with ``=``. :class:`ValueError` if not a JSON object.
    """
    decoded = json.loads(raw) if raw else {}
    if not isinstance(decoded, dict):
        raise ValueError("buildargs must be a JSON object")
    args: dict[str, Any] = {}
    rules: list[str] = []
    for key, value in decoded.items():
        if key.startswith(RULE_PREFIXES):
            rules.append(key if value is None else f"{key}={value}")
        else:
            args[key] = value
    return args, rules


def build_request(query: dict[str, str], rules: list[str]) -> ContainerRequest:
    """What the scheduler places: the rules, and the CPU shares and memory the build reserves.

    The same reading as a container create's (an ``Env`` of rules, a
    ``HostConfig``), so a build is filtered and counted exactly as ``docker run`` would be.
    """
    host = {"CpuShares": int(query.get("cpushares") or 0), "Memory": int(query.get("memory") or 0)}
    return ContainerRequest.from_body({"Env": rules + _cache_affinities(query.get("cachefrom")), "HostConfig": host})


def _cache_affinities(raw: str | None) -> list[str]:
    """Soft image affinities for ``--cache-from`` images: the build goes where its cache is, when it can."""
    try:
        images = json.loads(raw) if raw else []
    except ValueError:
        return []
    if not isinstance(images, list):
        return []
    return [f"affinity:image==~{image}" for image in images if isinstance(image, str) and image]


async def build(request: web.Request) -> web.StreamResponse:
    """``POST /build``: placed by the scheduler, then relayed to that node as it streams."""
    manager = manager_of(request)
    query = request.rel_url.query
    if query.get("version") == "2":
        return error(
            501,
            "BuildKit builds are not supported by swarmctl (its /session is not served): "
            "use the classic builder (DOCKER_BUILDKIT=0)",
        )
    try:
        args, rules = split_rules(query.get("buildargs"))
        wanted = build_request(dict(query), rules)
    except ExpressionError as exc:
        return error(400, str(exc))
    except ValueError as exc:
        return error(400, f"invalid build options: {exc}")
    placer = manager.placer
    try:
        candidates = placer.candidates(manager.scheduler(), wanted)
    except NoNodeError as exc:
        return error(500, str(exc))
    items = [(k, json.dumps(args) if k == "buildargs" else v) for k, v in query.items()]
    target = f"{request.rel_url.raw_path}?{urlencode(items)}" if items else request.rel_url.raw_path
    context = request.content.iter_any() if request.body_exists else None
    build_id = query.get("buildid", "")
    unreachable: list[str] = []
    for engine in candidates[:CREATE_TRIES]:
        running = RunningBuild(engine)
        if build_id:
            manager.builds[build_id] = running
        try:
            with placer.holding(engine, wanted):
                return await _build_on(request, engine, target, context, running)
        except aiohttp.ClientConnectorError as exc:
            # Nothing of the context was read yet: the next candidate can have it.
            engine.report_failure(exc)
            unreachable.append(f"cannot reach node {engine.name} ({engine.addr}): {exc}")
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            engine.report_failure(exc)
            return error(500, f"node {engine.name} ({engine.addr}) failed during the build: {exc}")
        finally:
            if manager.builds.get(build_id) is running:
                del manager.builds[build_id]
    return error(500, "; ".join(unreachable))


async def _build_on(
    request: web.Request, engine: Engine, target: str, context: Any, running: RunningBuild
) -> web.StreamResponse:
    async def finished() -> bytes:
        with contextlib.suppress(Exception):
            await engine.refresh_images()
        return (CANCELLED + "\n").encode() if running.cancelled else b""

    async with engine.request(
        "POST",
        target,
        headers=request_headers(request),
        data=context,
        timeout=STREAM_TIMEOUT,
        skip_auto_headers=NO_INVENTED_HEADERS,
    ) as upstream:
        running.upstream = upstream
        return await relay(request, upstream, epilogue=finished)


async def cancel(request: web.Request) -> web.StreamResponse:
    """``POST /build/cancel?id=``: sent to the node running that build, which is then ended.

    The engine cancels BuildKit builds itself; a classic build stops when its
    request ends, so the manager ends it too (one engine would ignore the cancel).
    """
    manager = manager_of(request)
    build_id = request.query.get("id", "")
    if not build_id:
        return error(400, "build ID not provided")
    running = manager.builds.get(build_id)
    if running is None:
        return error(404, f"no build with ID {build_id} is running on this cluster")
    response = await forward(request, running.engine)
    running.cancel()
    return response


async def prune(request: web.Request) -> web.Response:
    """``POST /build/prune``: every node's build cache, merged by the one generic prune."""
    return await prune_on_every_node(request, "build", "CachesDeleted", None)
