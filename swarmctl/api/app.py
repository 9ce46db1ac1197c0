"""The aiohttp application: routes (with and without ``/vX.Y``), common headers, errors as JSON.

A cached answer (``/info``, ``docker ps``) is a dictionary lookup and a
write, so most of what it costs is what runs around the handler; that part
is kept as short as aiohttp allows:

- no aiohttp middlewares: with any, aiohttp finds a chain for the handler
  and runs every request through frames of its own and of each middleware.
  Each route's handler is wrapped once instead, when the app is made
  (:func:`_served`: errors as JSON, a replica's requests to the primary),
  and a catch-all route sends unknown paths through the same wrapper;
- no ``on_response_prepare`` signal: the headers every answer carries are
  made once per change of the nodes for cached answers, and set by the
  wrapper on any other (see headers.py);
- under ``/vX.Y``, where aiohttp tries routes one by one, the listings and
  ``/info`` have routes of their own for every version a client asks at
  (:data:`EXACT_VERSIONS`: a dictionary lookup), and are tried first for
  any other version (``_VERSIONED_FIRST``).

aiohttp's router answers by itself, with its plain-text 404, only what no
route can see because it names no path: ``OPTIONS *`` and ``CONNECT host:port``
(no Docker client sends them; dockerd answers them 200 and 301).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from time import perf_counter

import aiohttp
from aiohttp import web

from ..counters import Timings
from ..errors import connect_reason, in_words
from ..net.peer import PrimaryPeer
from ..replication import Role
from . import (
    archives,
    build,
    containers,
    disk_usage,
    distribution,
    images,
    networks,
    plugins,
    prune,
    registry,
    swarm_mode,
    system,
    volumes,
)
from .context import MANAGER, MIN_API_VERSION, Manager
from .filters import Refused
from .headers import Answer, stamp
from .proxy import error, forward, hijack, upgrade_protocol

#: Proxied as they are to the node that owns the container. Refs may hold a slash
#: (``docker logs node1/web``), so the action names are spelled out.
CONTAINER_ACTIONS = (
    "start|stop|restart|kill|pause|unpause|rename|update|wait|resize|top|logs|stats|archive|export|changes"
)

log = logging.getLogger("swarmctl.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS = Timings(
    "swarmctl_http_request_duration_seconds",
    "Time to answer a Docker API request, by the handler that answers it (a stream: until it ends).",
    ("route",),
)

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/_ping", system.ping),
    ("HEAD", "/_ping", system.ping),
    ("GET", "/version", system.version),
    ("GET", "/info", system.info),
    ("GET", "/events", system.events),
    ("GET", "/containers/json", containers.containers_json),
    ("POST", "/containers/create", containers.create),
    ("GET", "/containers/{ref:.+}/json", containers.inspect),
    ("POST", "/containers/{ref:.+}/attach", containers.attach),
    ("POST", "/containers/{ref:.+}/exec", containers.exec_create),
    ("*", "/containers/{ref:.+}/{action:" + CONTAINER_ACTIONS + "}", containers.container_action),
    ("DELETE", "/containers/{ref:.+}", containers.delete),
    ("POST", "/exec/{exec_id}/start", containers.exec_start),
    ("*", "/exec/{exec_id}/{action}", containers.exec_other),
    ("GET", "/images/json", images.images_json),
    ("POST", "/images/create", images.images_create),
    ("GET", "/images/{name:.+}/json", images.image_on_one),
    ("GET", "/images/{name:.+}/history", images.image_on_one),
    ("POST", "/images/{name:.+}/tag", images.image_on_all),
    ("DELETE", "/images/{name:.+}", images.image_on_all),
    ("GET", "/networks", networks.networks_json),
    ("POST", "/networks/create", networks.network_create),
    ("POST", "/networks/{ref:.+}/connect", networks.network_connect),
    ("POST", "/networks/{ref:.+}/disconnect", networks.network_disconnect),
    ("GET", "/networks/{ref:.+}", networks.network_inspect),
    ("DELETE", "/networks/{ref:.+}", networks.network_delete),
    ("GET", "/volumes", volumes.volumes_json),
    ("POST", "/volumes/create", volumes.volume_create),
    ("GET", "/volumes/{ref:.+}", volumes.volume_inspect),
    ("DELETE", "/volumes/{ref:.+}", volumes.volume_delete),
    # -- system-api: disk usage, prunes, swarm mode, plugins, distribution, websocket attach ----------
    ("GET", "/system/df", disk_usage.system_df),
    ("POST", "/containers/prune", prune.containers_prune),
    ("POST", "/images/prune", prune.images_prune),
    ("POST", "/networks/prune", prune.networks_prune),
    ("POST", "/volumes/prune", prune.volumes_prune),
    ("GET", "/containers/{ref:.+}/attach/ws", containers.attach_ws),
    ("GET", "/distribution/{name:.+}/json", distribution.distribution_inspect),
    ("GET", "/plugins", plugins.plugins_json),
    ("GET", "/plugins/{name:.+}/json", plugins.no_such_plugin),
    ("POST", "/plugins/{name:.+}/enable", plugins.enable),
    ("POST", "/plugins/{name:.+}/disable", plugins.no_such_plugin),
    ("POST", "/plugins/{name:.+}/push", plugins.no_such_plugin),
    ("DELETE", "/plugins/{name:.+}", plugins.no_such_plugin),
    ("GET", "/swarm", swarm_mode.swarm_inspect),
    ("POST", "/swarm/init", swarm_mode.swarm_init),
    ("POST", "/swarm/join", swarm_mode.swarm_join),
    ("POST", "/swarm/leave", swarm_mode.swarm_leave),
    ("POST", "/swarm/update", swarm_mode.swarm_update),
    ("POST", "/swarm/unlock", swarm_mode.swarm_unlock),
    ("GET", "/swarm/unlockkey", swarm_mode.swarm_unlockkey),
    ("GET", "/nodes", swarm_mode.listing),
    ("GET", "/nodes/{id}", swarm_mode.by_id),
    ("DELETE", "/nodes/{id}", swarm_mode.by_id),
    ("POST", "/nodes/{id}/update", swarm_mode.node_update),
    ("GET", "/services", swarm_mode.service_listing),
    ("POST", "/services/create", swarm_mode.service_create),
    ("GET", "/services/{id}", swarm_mode.service_inspect),
    ("DELETE", "/services/{id}", swarm_mode.by_id),
    ("POST", "/services/{id}/update", swarm_mode.service_update),
    ("GET", "/services/{id}/logs", swarm_mode.logs),
    ("GET", "/tasks", swarm_mode.listing),
    ("GET", "/tasks/{id}", swarm_mode.by_id),
    ("GET", "/tasks/{id}/logs", swarm_mode.logs),
    ("GET", "/secrets", swarm_mode.listing),
    ("POST", "/secrets/create", swarm_mode.secret_create),
    ("GET", "/secrets/{id}", swarm_mode.by_id),
    ("DELETE", "/secrets/{id}", swarm_mode.by_id),
    ("POST", "/secrets/{id}/update", swarm_mode.secret_update),
    ("GET", "/configs", swarm_mode.listing),
    ("POST", "/configs/create", swarm_mode.config_create),
    ("GET", "/configs/{id}", swarm_mode.by_id),
    ("DELETE", "/configs/{id}", swarm_mode.by_id),
    ("POST", "/configs/{id}/update", swarm_mode.config_update),
    # -- end of system-api ---------------------------------------------------------------------------------
    # Build, commit, save/load, push, search and login (one block: other branches edit this list too).
    ("POST", "/build", build.build),
    ("POST", "/build/cancel", build.cancel),
    ("POST", "/build/prune", build.prune),
    ("POST", "/commit", images.commit),
    ("GET", "/images/get", archives.save_many),
    ("GET", "/images/{name:.+}/get", archives.save_one),
    ("POST", "/images/load", archives.load),
    ("POST", "/images/{name:.+}/push", registry.push),
    ("GET", "/images/search", registry.through_any),
    ("POST", "/auth", registry.through_any),
]


#: Replicas ask the primary for ``/info`` and add their own role (see :func:`_replica_info`).
_INFO_PATH = re.compile(r"(/v[0-9.]+)?/info")


def _served(manager: Manager, handler: Handler) -> Handler:
    """``handler`` as the engine would answer: a replica's requests relayed to the primary, errors as JSON.

    This is what aiohttp middlewares would do, done without them: with any
    middleware at all, aiohttp looks up a chain for the handler and wraps
    every request in frames of its own and of each middleware, which is a
    good part of what a cached answer costs (``/info``, ``ps``: a lookup and
    a write). Wrapping each route's handler once, when the app is made, costs
    one frame per request and a test of two attributes on a primary.

    - An answer not yet sent and not an :class:`Answer` gets the headers
      every answer carries (headers.py).
    - Unknown paths and a known path's other methods: ``404 page not found``
      (as dockerd's router answers them; the catch-all route sends unknown
      paths here too).
    - A :class:`~.filters.Refused` (a request refused from deep inside a
      handler) is answered with its status and message; any other HTTP
      exception goes out as aiohttp writes it, with our headers.
    - Anything unexpected (a bug) is logged with its traceback and answered
      500 in Docker's format, without Python's words, rather than dropped.
    - On a replica, every request but ``/_ping`` goes to the primary,
      streams and hijacked connections included.
    """

    timing = REQUESTS.series(f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__.lstrip('_')}")

    async def serve(request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        try:
            if manager.replicated and not manager.role.primary and not request.path.endswith("/_ping"):
                response = await _to_primary(manager, request, handler)
            else:
                response = await handler(request)
        except Refused as exc:
            response = error(exc.status, exc.message)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            response = error(404, "page not found")
        except web.HTTPException as exc:
            stamp(manager, exc.headers)
            raise
        except Exception:
            # A bug: its traceback once in the log, and a short answer in Docker's words (never Python's).
            log.exception("failed to answer %s %s", request.method, request.path)
            response = error(500, f"the manager failed to answer {request.method} {request.path}; its log says why")
        if type(response) is not Answer and not response.prepared:
            stamp(manager, response.headers)
        timing.observe(perf_counter() - started)
        return response

    return serve


async def _to_primary(manager: Manager, request: web.Request, handler: Handler) -> web.StreamResponse:
    """A replica's request, relayed to the primary (a 503 while none is elected).

    A primary that refuses the connection (it died: nothing was sent) is being replaced:
    the request waits for the election, within the replication TTL, and goes to the new
    primary, or is served here by its own ``handler`` if that is this manager. So a
    failover loses only the requests the dead primary had taken. (``/info`` and hijacked
    requests are not retried: they fail as before.)
    """
    leader = manager.role.leader
    if not leader or leader == manager.advertise:
        role = await _next_role(manager, leader)
        if role is None or not (role.primary or role.leader):
            return error(503, "no primary manager is elected yet; try again in a moment")
        if role.primary:
            return await handler(request)
        leader = role.leader
    assert leader is not None
    peer = PrimaryPeer(leader, manager.cluster.session, manager.peer_ssl)
    if _INFO_PATH.fullmatch(request.path):
        return await _replica_info(manager, peer, request)
    if upgrade_protocol(request) is not None:
        return await hijack(request, peer)
    response = await forward(request, peer, stream_body=True)  # a build context or image tar is not held in memory
    if not peer.unreachable:
        return response
    role = await _next_role(manager, leader)
    if role is None:
        return response
    if role.primary:
        return await handler(request)
    assert role.leader is not None
    return await forward(request, PrimaryPeer(role.leader, manager.cluster.session, manager.peer_ssl), stream_body=True)


async def _next_role(manager: Manager, leader: str | None) -> Role | None:
    """This manager's role once a primary other than ``leader`` is elected; None if none is within the TTL."""
    deadline = asyncio.get_running_loop().time() + manager.replication_ttl + 2.0  # the election retries each second
    while asyncio.get_running_loop().time() < deadline:
        role = manager.role
        if role.primary or (role.leader and role.leader != leader):
            return role
        await asyncio.sleep(0.05)
    return None


async def _page_not_found(request: web.Request) -> web.Response:
    """Every path no route takes (the last route: it matches any path and method)."""
    return error(404, "page not found")


async def _replica_info(manager: Manager, peer: PrimaryPeer, request: web.Request) -> web.StreamResponse:
    """The primary's ``/info``, saying that this manager is a replica and who the primary is."""
    try:
        async with peer.request("GET", request.rel_url.raw_path_qs) as upstream:
            info = await upstream.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return error(500, f"cannot reach the primary manager {peer.addr}: {connect_reason(exc) or in_words(exc)}")
    status = [pair for pair in info.get("SystemStatus") or [] if pair[0] not in ("Role", "Primary")]
    info["SystemStatus"] = [["Role", "replica"], ["Primary", peer.addr], *status]
    return web.json_response(info)


#: The versioned routes aiohttp tries first, most read first. The docker CLI and the SDK always ask
#: under ``/vX.Y``, and aiohttp tries those routes one after the other (their first segment is not
#: fixed, so its index of paths cannot narrow them down), so a listing or ``/info`` should not wait
#: behind ``/_ping`` and ``/events``. Fixed paths only: none can take a request meant for another route.
_VERSIONED_FIRST = ("/containers/json", "/info", "/version", "/_ping", "/images/json", "/networks", "/volumes")


def _versioned_order(route: tuple[str, str, Handler]) -> int:
    path = route[1]
    return _VERSIONED_FIRST.index(path) if path in _VERSIONED_FIRST else len(_VERSIONED_FIRST)


#: API versions whose most read paths get routes of their own (found by a lookup, not by trying the
#: versioned routes one by one): every version from the oldest the manager serves to a few past
#: dockerd 20.10's 1.41 (a newer client asks at the version the manager's ``Api-Version`` names).
EXACT_VERSIONS = tuple(f"1.{minor}" for minor in range(int(MIN_API_VERSION.split(".")[1]), 46))


def make_app(manager: Manager) -> web.Application:
    """The manager's routes, each as it is and under ``/vX.Y``, then the catch-all; no middlewares, no signals."""
    app = web.Application(client_max_size=1 << 30)
    app[MANAGER] = manager
    served = {handler: _served(manager, handler) for _, _, handler in ROUTES}
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, served[handler])
    for method, path, handler in ROUTES:
        if path in _VERSIONED_FIRST:
            for version in EXACT_VERSIONS:
                app.router.add_route(method, f"/v{version}{path}", served[handler])
    for method, path, handler in sorted(ROUTES, key=_versioned_order):  # stable: ROUTES' order after the first
        app.router.add_route(method, "/v{api_version:[0-9.]+}" + path, served[handler])
    app.router.add_route("*", r"/{path:[\s\S]*}", _served(manager, _page_not_found))  # a newline too
    return app
