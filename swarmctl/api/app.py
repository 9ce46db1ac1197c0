"""The aiohttp application: routes (with and without ``/vX.Y``), common headers, errors as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import __version__
from . import containers, images, system
from .context import MANAGER, Manager, manager_of
from .proxy import error

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
    ("GET", "/networks", images.networks_json),
    ("GET", "/networks/{ref:.+}", images.network_inspect),
    ("GET", "/volumes", images.volumes_json),
    ("GET", "/volumes/{ref:.+}", images.volume_inspect),
]


@web.middleware
async def docker_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and unexpected failures answered as the engine would: JSON ``message``."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error(405, f"{request.method} {request.path} is not allowed")
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug: say so in Docker's format rather than dropping the connection
        return error(500, f"swarmctl: {type(exc).__name__}: {exc}")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = manager_of(request).api_version()
    response.headers["Server"] = f"swarmctl/{__version__}"
    response.headers.setdefault("Docker-Experimental", "false")
    response.headers.setdefault("Ostype", "linux")


def make_app(manager: Manager) -> web.Application:
    app = web.Application(middlewares=[docker_errors], client_max_size=1 << 30)
    app[MANAGER] = manager
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/v{api_version:[0-9.]+}" + path, handler)
    app.on_response_prepare.append(_headers)
    return app
