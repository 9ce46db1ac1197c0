"""The aiohttp application: routes (with and without ``/vX.Y``), common headers, errors as JSON."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from .. import __version__
from ..replication import PrimaryPeer
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
from .context import MANAGER, Manager, manager_of
from .proxy import error, forward, hijack, upgrade_protocol

#: Proxied as they are to the node that owns the container. Refs may hold a slash
#: (``docker logs node1/web``), so the action names are spelled out.
CONTAINER_ACTIONS = (
    "start|stop|restart|kill|pause|unpause|rename|update|wait|resize|top|logs|stats|archive|export|changes"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

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


@web.middleware
async def docker_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths, wrong methods and unexpected failures answered as the engine would: JSON ``message``."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error(404, "page not found")  # dockerd's router answers a known path's other methods so
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug: say so in Docker's format rather than dropping the connection
        return error(500, f"swarmctl: {type(exc).__name__}: {exc}")


@web.middleware
async def replica_forwards(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On a replica, every request goes to the primary, streams and hijacked connections included."""
    manager = manager_of(request)
    if not manager.replicated or manager.role.primary or request.path.endswith("/_ping"):
        return await handler(request)
    leader = manager.role.leader
    if not leader or leader == manager.advertise:
        return error(503, "no primary manager is elected yet; try again in a moment")
    peer = PrimaryPeer(leader, manager.cluster.session, manager.peer_ssl)
    if re.fullmatch(r"(/v[0-9.]+)?/info", request.path):
        return await _replica_info(manager, peer, request)
    if upgrade_protocol(request) is not None:
        return await hijack(request, peer)
    return await forward(request, peer, stream_body=True)  # a build context or image tar is not held in memory


async def _replica_info(manager: Manager, peer: PrimaryPeer, request: web.Request) -> web.StreamResponse:
    """The primary's ``/info``, saying that this manager is a replica and who the primary is."""
    try:
        async with peer.request("GET", request.rel_url.raw_path_qs) as upstream:
            info = await upstream.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return error(500, f"cannot reach the primary manager {peer.addr}: {exc}")
    status = [pair for pair in info.get("SystemStatus") or [] if pair[0] not in ("Role", "Primary")]
    info["SystemStatus"] = [["Role", "replica"], ["Primary", peer.addr], *status]
    return web.json_response(info)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = manager_of(request).api_version()
    response.headers["Server"] = f"swarmctl/{__version__}"
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers.setdefault("Ostype", "linux")


def make_app(manager: Manager) -> web.Application:
    app = web.Application(middlewares=[docker_errors, replica_forwards], client_max_size=1 << 30)
    app[MANAGER] = manager
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/v{api_version:[0-9.]+}" + path, handler)
    app.on_response_prepare.append(_headers)
    return app
