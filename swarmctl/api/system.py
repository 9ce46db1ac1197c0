"""``/_ping``, ``/version``, ``/info`` and ``/events``, answered by the manager itself (``/info``: cluster_info.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import platform
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import __version__
from ..cluster.events import END
from .cluster_info import info_body
from .context import MIN_API_VERSION, manager_of
from .filters import parse_filters, refusal
from .gostrconv import GoNumberError, parse_int
from .headers import answer, prepare


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"Cache-Control": "no-cache"})


async def version(request: web.Request) -> web.Response:
    body = _version_body(manager_of(request).api_version())
    return web.Response(body=body, content_type="application/json", charset="utf-8")


@functools.lru_cache(maxsize=16)
def _version_body(api: str) -> bytes:
    """``/version``'s JSON for the cluster's API version: the rest is the process's, so it is encoded once."""
    body = {
        "Platform": {"Name": "Docker Swarm (swarmctl)"},
        "Components": [
            {
                "Name": "Swarm",
                "Version": f"swarm/{__version__}",
                "Details": {"ApiVersion": api, "MinAPIVersion": MIN_API_VERSION},
            }
        ],
        "Version": f"swarm/{__version__}",
        "ApiVersion": api,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }
    return json.dumps(body).encode()


async def info(request: web.Request) -> web.StreamResponse:
    """The cluster's ``/info`` (see cluster_info.py)."""
    manager = manager_of(request)
    return answer(manager, info_body(manager))


def _event_matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "type": lambda v: event.get("Type") == v,
        "event": lambda v: event.get("Action") == v or event.get("status") == v,
        "container": lambda v: (
            event.get("Type") == "container"
            and (
                str((event.get("Actor") or {}).get("ID", "")).startswith(v)
                or (event.get("Actor") or {}).get("Attributes", {}).get("name") == v
            )
        ),
        "image": lambda v: (event.get("Actor") or {}).get("Attributes", {}).get("image") == v or event.get("from") == v,
        "node": lambda v: (event.get("node") or {}).get("Name") == v or (event.get("node") or {}).get("Addr") == v,
        "label": lambda v: _label_match((event.get("Actor") or {}).get("Attributes") or {}, v),
    }
    for name, values in filters.items():
        check = checks.get(name)
        if check is not None and not any(check(v) for v in values):
            return False
    return True


def _label_match(attributes: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in attributes and (not sep or attributes[key] == value)


def _timestamp(text: str | None) -> float | None:
    """``since``/``until`` as dockerd reads them: ``seconds[.nanoseconds]``, refused in Go's words (500).

    The docker CLI turns ``--since 10m`` or a date into that form itself.
    """
    if not text:
        return None
    seconds, dot, nanoseconds = text.partition(".")
    try:
        whole = parse_int(seconds)
        fraction = parse_int(nanoseconds) if dot else 0
    except GoNumberError as exc:
        raise refusal(500, str(exc)) from None
    return whole + (int(nanoseconds[:9].ljust(9, "0")) / 1e9 if fraction else 0.0)


async def events(request: web.Request) -> web.StreamResponse:
    """Every node's events merged into one stream, each saying its node (``node``)."""
    manager = manager_of(request)
    filters = parse_filters(request.query.get("filters"))
    since = _timestamp(request.query.get("since"))
    until = _timestamp(request.query.get("until"))
    queue = manager.cluster.bus.subscribe()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await prepare(request, response)
    try:
        if since is not None:
            for event in manager.cluster.bus.history():
                if (
                    event.get("time", 0) >= since
                    and (until is None or event.get("time", 0) <= until)
                    and _event_matches(event, filters)
                ):
                    await response.write(json.dumps(event).encode() + b"\n")
        while until is None or time.time() < until:
            timeout = None if until is None else max(0.0, until - time.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if event is END:  # the manager stops
                break
            if _event_matches(event, filters):
                await response.write(json.dumps(event).encode() + b"\n")
    finally:
        manager.cluster.bus.unsubscribe(queue)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response
