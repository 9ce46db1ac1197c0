"""``/_ping``, ``/version``, ``/info`` and ``/events``: answered by the manager itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import __version__
from ..cluster.engine import HEALTHY
from .context import MIN_API_VERSION, Manager, manager_of
from .filters import parse_filters


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"Cache-Control": "no-cache"})


async def version(request: web.Request) -> web.Response:
    manager = manager_of(request)
    api = manager.api_version()
    kernel = platform.release()
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
        "KernelVersion": kernel,
        "BuildTime": "",
    }
    return web.json_response(body)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def build_info(manager: Manager) -> dict[str, Any]:
    """Swarm's ``/info``: cluster totals, and each node in ``SystemStatus`` (as Swarm 1.2.9 wrote it)."""
    engines = sorted(manager.cluster.engines.values(), key=lambda e: (e.name, e.addr))
    role = [["Role", "primary"]]
    if manager.replicated and not manager.role.primary:
        role = [["Role", "replica"], ["Primary", manager.role.leader or ""]]
    status: list[list[str]] = [
        *role,
        ["Strategy", manager.strategy],
        ["Filters", ", ".join(manager.filters)],
        ["Nodes", str(len(engines))],
    ]
    totals = {"Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0}
    images = ncpu = memory = 0
    for engine in engines:
        states = [c.get("State") for c in engine.containers.values()]
        running, paused = states.count("running"), states.count("paused")
        stopped = len(states) - running - paused
        cpus, reserved_memory = engine.reserved()
        status += [
            [f" {engine.name}", engine.addr],
            ["  └ ID", f"{engine.id}|{engine.addr}"],
            ["  └ Status", engine.state],
            ["  └ Containers", f"{len(states)} ({running} Running, {paused} Paused, {stopped} Stopped)"],
            ["  └ Reserved CPUs", f"{cpus:g} / {engine.ncpu}"],
            ["  └ Reserved Memory", f"{_bytes(reserved_memory)} / {_bytes(engine.memory)}"],
            ["  └ Labels", ", ".join(f"{k}={v}" for k, v in sorted(engine.labels.items()))],
            [
                "  └ UpdatedAt",
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(engine.updated_at)) if engine.updated_at else "",
            ],
            ["  └ ServerVersion", str(engine.info.get("ServerVersion", ""))],
        ]
        if engine.state != HEALTHY and engine.last_error:
            status.append(["  └ Error", engine.last_error])
        if engine.state == HEALTHY:
            totals["Containers"] += len(states)
            totals["ContainersRunning"] += running
            totals["ContainersPaused"] += paused
            totals["ContainersStopped"] += stopped
            images += len(engine.images)
            ncpu += engine.ncpu
            memory += engine.memory
    return {
        "ID": manager.id,
        **totals,
        "Images": images,
        "Driver": "",
        "DriverStatus": None,
        "SystemStatus": status,
        "Plugins": {"Volume": None, "Network": None, "Authorization": None, "Log": None},
        "NCPU": ncpu,
        "MemTotal": memory,
        "Name": manager.name,
        "Labels": [],
        "ServerVersion": f"swarm/{__version__}",
        "OperatingSystem": platform.system(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "KernelVersion": platform.release(),
        "IndexServerAddress": "",
        "ExperimentalBuild": False,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "Warnings": None,
    }


async def info(request: web.Request) -> web.Response:
    manager = manager_of(request)
    body = manager.cached("info", lambda: json.dumps(build_info(manager)).encode())
    return web.Response(body=body, content_type="application/json")


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
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


async def events(request: web.Request) -> web.StreamResponse:
    """Every node's events merged into one stream, each saying its node (``node``)."""
    manager = manager_of(request)
    filters = parse_filters(request.query.get("filters"))
    since = _timestamp(request.query.get("since"))
    until = _timestamp(request.query.get("until"))
    queue = manager.cluster.bus.subscribe()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
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
            if _event_matches(event, filters):
                await response.write(json.dumps(event).encode() + b"\n")
    finally:
        manager.cluster.bus.unsubscribe(queue)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response
