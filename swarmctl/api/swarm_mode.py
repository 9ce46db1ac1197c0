"""Swarm mode (``/swarm``, ``/nodes``, ``/services``, ``/tasks``, ``/secrets``, ``/configs``), refused as dockerd does.

The manager serves a Docker Swarm (classic) cluster, which is not a swarm-mode
swarm, so every such path is answered as a dockerd 20.10 that is not in swarm
mode answers it (observed): first the same checks of the request, in the same
order and with the same words (the body must decode, an update needs its
``version``, logs need a stream, ``filters`` must parse), then ``503`` with
"This node is not a swarm manager..." (or, for ``/swarm/leave``, "This node is
not part of a swarm"). So ``docker node ls``, ``docker service ls``,
``docker secret ls`` print the sentence they print on such an engine, and
``docker swarm leave --force`` and the SDK's ``swarm.leave(force=True)``
(which treats that 503 as "nothing to leave") behave as they do there.

The one place where the manager cannot answer as such an engine is
``/swarm/init`` and ``/swarm/join``: that engine would become part of a
swarm. The cluster cannot, so once the request passes dockerd's checks it is
refused with a 503 that says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from . import gojson
from .filters import parse_filters_as_dockerd
from .proxy import error

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
NOT_IN_A_SWARM = "This node is not part of a swarm"
NOT_FOR_A_CLUSTER = (
    "swarmctl serves a Docker Swarm (classic) cluster, which cannot be part of a swarm-mode swarm: "
    'run "docker swarm {action}" against a node\'s own engine instead'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Go's ``strconv.ParseBool``.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
#: dockerd's ``httputils.BoolValue``: anything but these is true.
_OFF = {"", "0", "no", "false", "none"}


@dataclass(frozen=True)
class Checks:
    """What dockerd checks on one path before it finds it is not in a swarm, in dockerd's order."""

    #: The Go type the body is decoded into (``swarm.ServiceSpec``); None: no body is read.
    body: str | None = None
    #: The object named in ``invalid <object> version ...``; None: no ``version`` parameter.
    version: str | None = None
    #: Whether the version error carries strconv's reason (secrets and configs say only "invalid X version").
    version_detail: bool = True
    #: Boolean query parameters parsed with ``strconv.ParseBool``, and whether the error names strconv's reason.
    bools: tuple[str, ...] = ()
    bool_detail: bool = True
    #: The status of an unreadable ``filters`` (None: not a listing). dockerd says 400 for services, 500 elsewhere.
    filters: int | None = None
    #: Logs: stdout or stderr must be asked for.
    streams: bool = False
    #: ``/swarm/init`` and ``/swarm/join``: the body must name a listen address (and, to join, a remote).
    listen: bool = False
    remote: bool = False
    #: The answer once every check passed.
    message: str = NOT_A_MANAGER


def _parse_uint(text: str) -> str | None:
    """Go's ``strconv.ParseUint(text, 10, 64)`` error, or None."""
    if not text.isascii() or not text.isdigit():
        return f'strconv.ParseUint: parsing "{text}": invalid syntax'
    if int(text) >= 1 << 64:
        return f'strconv.ParseUint: parsing "{text}": value out of range'
    return None


async def _check(request: web.Request, checks: Checks) -> web.Response | None:
    """dockerd's answer to a request that fails ``checks``, or None when it passes them (in dockerd's order)."""
    if checks.filters is not None:
        try:
            parse_filters_as_dockerd(request.query.get("filters", ""))
        except gojson.GoJSONError as exc:
            return error(checks.filters, str(exc))
    if checks.body is not None:
        refused = await _body_refusal(request, checks, checks.body)
        if refused is not None:
            return refused
    return _query_refusal(request.query, checks)


async def _body_refusal(request: web.Request, checks: Checks, go_type: str) -> web.Response | None:
    """dockerd's answer to a body that does not decode into ``go_type`` or lacks what ``checks`` need."""
    try:
        body = gojson.decode_first((await request.read()).decode("utf-8", errors="replace"))
    except EOFError:
        return error(400, "got EOF while reading request body")
    except gojson.GoJSONError as exc:
        return error(400, str(exc))
    if body is not None and not isinstance(body, dict):
        return error(400, f"json: cannot unmarshal {gojson.kind(body)} into Go value of type {go_type}")
    body = body or {}
    if checks.listen and not body.get("ListenAddr"):
        return error(400, 'invalid ListenAddr "": invalid empty address')
    if checks.remote and not body.get("RemoteAddrs"):
        return error(400, "at least 1 RemoteAddr is required to join")
    return None


def _query_refusal(query: Mapping[str, str], checks: Checks) -> web.Response | None:
    """dockerd's answer to a query whose ``version``, booleans or log streams ``checks`` refuse."""
    if checks.version is not None:
        raw = query.get("version", "")
        problem = _parse_uint(raw)
        if problem is not None:
            detail = f" '{raw}': {problem}" if checks.version_detail else ""
            return error(400, f"invalid {checks.version} version{detail}")
    for name in checks.bools:
        value = query.get(name, "")
        if value and value not in _TRUE | _FALSE:
            reason = f': strconv.ParseBool: parsing "{value}": invalid syntax' if checks.bool_detail else ""
            return error(400, f"invalid value for {name}: {value}{reason}")
    if checks.streams and not any(query.get(s, "").strip().lower() not in _OFF for s in ("stdout", "stderr")):
        return error(500, "Bad parameters: you must choose at least one stream")
    return None


def refused(checks: Checks) -> Handler:
    """A handler answering as dockerd outside swarm mode: ``checks``' errors, else 503 with their message."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _check(request, checks) or error(503, checks.message)

    handler.__doc__ = f"Refused as dockerd outside swarm mode refuses it ({checks.message[:40]}...)."
    return handler


# -- /swarm ---------------------------------------------------------------------------------------
swarm_inspect = refused(Checks())
swarm_init = refused(Checks(body="swarm.InitRequest", listen=True, message=NOT_FOR_A_CLUSTER.format(action="init")))
swarm_join = refused(
    Checks(body="swarm.JoinRequest", listen=True, remote=True, message=NOT_FOR_A_CLUSTER.format(action="join"))
)
swarm_leave = refused(Checks(message=NOT_IN_A_SWARM))
swarm_update = refused(
    Checks(
        body="swarm.Spec",
        version="swarm",
        bools=("rotateWorkerToken", "rotateManagerToken", "rotateManagerUnlockKey"),
        bool_detail=False,
    )
)
swarm_unlock = refused(Checks(body="swarm.UnlockRequest"))
swarm_unlockkey = refused(Checks())

# -- swarm-mode objects -----------------------------------------------------------------------------
#: ``GET /nodes``, ``/tasks``, ``/secrets``, ``/configs``: an unreadable ``filters`` is a 500 there.
listing = refused(Checks(filters=500))
#: ``GET /nodes/{id}``, ``DELETE /nodes/{id}``, and the same for tasks, secrets, configs and services.
by_id = refused(Checks())
node_update = refused(Checks(body="swarm.NodeSpec", version="node"))

service_listing = refused(Checks(filters=400, bools=("status",)))
service_inspect = refused(Checks(bools=("insertDefaults",)))
service_create = refused(Checks(body="swarm.ServiceSpec"))
service_update = refused(Checks(body="swarm.ServiceSpec", version="service"))
#: ``/services/{id}/logs`` and ``/tasks/{id}/logs``.
logs = refused(Checks(streams=True))

secret_create = refused(Checks(body="swarm.SecretSpec"))
secret_update = refused(Checks(body="swarm.SecretSpec", version="secret", version_detail=False))
config_create = refused(Checks(body="swarm.ConfigSpec"))
config_update = refused(Checks(body="swarm.ConfigSpec", version="config", version_detail=False))
