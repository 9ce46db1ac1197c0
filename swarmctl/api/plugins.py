"""``/plugins``: answered as an engine with no plugins installed answers (``docker plugin ls`` prints its header).

Managed plugins are installed engine by engine, and a cluster-wide plugin would
need every node to install, enable and configure it in step, which Docker
Swarm never did. So the manager reports none, exactly as a dockerd 20.10
with none does (observed): ``GET /plugins`` is ``[]`` once its ``filters``
pass dockerd's checks, and naming a plugin is ``plugin "x" not found``.
"""

from __future__ import annotations

from aiohttp import web

from . import gojson
from .filters import parse_filters_as_dockerd
from .gostrconv import GoNumberError, atoi
from .proxy import error

#: The filters dockerd's plugin listing accepts.
_ACCEPTED = ("enabled", "capability")


async def plugins_json(request: web.Request) -> web.Response:
    try:
        filters = parse_filters_as_dockerd(request.query.get("filters", ""))
    except gojson.GoJSONError as exc:
        return error(500, str(exc))
    for name in filters:
        if name not in _ACCEPTED:
            return error(400, f"Invalid filter '{name}'")
    enabled = filters.get("enabled")
    if enabled and "true" not in enabled and "false" not in enabled:
        return error(400, f"Invalid filter 'enabled=[{' '.join(enabled)}]'")
    return web.Response(body=b"[]", headers={"Content-Type": "application/json"})


async def no_such_plugin(request: web.Request) -> web.Response:
    """Inspect, remove, disable, push: the plugin named is not installed."""
    return error(404, f'plugin "{request.match_info["name"]}" not found')


async def enable(request: web.Request) -> web.Response:
    """dockerd reads ``timeout`` (Go's ``strconv.Atoi``) before it looks for the plugin."""
    try:
        atoi(request.query.get("timeout", ""))
    except GoNumberError as exc:
        return error(500, str(exc))
    return await no_such_plugin(request)
