"""``GET /info`` for the whole cluster: every field an engine sends, each with a cluster-wide meaning.

Clients read ``/info`` fields without checking that they are there (the
docker CLI's templates, ``docker info --format '{{.Debug}}'``, the SDK's
users), so the answer has every key a dockerd 20.10 sends, nested objects
included, and each holds a value that means something for a cluster:

- counts and capacities are **sums** over the healthy nodes (``Containers``...,
  ``NCPU``, ``MemTotal``), as Docker Swarm answered; ``Images`` counts the
  distinct images, as ``docker images`` lists them (one row per ID, however
  many nodes hold it);
- kernel capabilities (``MemoryLimit``, ``SwapLimit``, ``CpuCfsQuota``...,
  ``LiveRestoreEnabled``) are true only when **every** healthy node has them,
  since a container may be placed on any node;
- what nodes may differ in and a user wants to see (``Driver``,
  ``LoggingDriver``, ``CgroupDriver``, ``DefaultRuntime``...) is the nodes'
  value, or their distinct values joined (``overlay2, vfs``); where a joined
  list would mean nothing (``DockerRootDir``, proxies) it is the common value
  or empty;
- what the cluster offers somewhere is the **union** (``Plugins``,
  ``Runtimes``, ``SecurityOptions``, ``GenericResources``); the placer tries
  other nodes when one lacks what a container needs;
- registry settings are **any node's** (the first healthy one by name): they
  are the same everywhere in a sane cluster, and the CLI only reads
  ``IndexServerAddress`` from them;
- the process's own facts are the **manager's** (``ID``, ``Name``, ``Debug``,
  ``NFd``, ``NGoroutines``, ``NEventsListener``, ``SystemTime``, the host's OS
  and kernel, as ``/version`` reports them), and ``Swarm`` is the block of an
  engine that is not in swarm mode (see swarm_mode.py);
- what Swarm added stays: ``SystemStatus`` (each node's report, as Swarm
  1.2.9 wrote it) and ``DriverStatus: null``.

Any field a node sends that is not listed here (a newer engine's) is passed
on as the first node's, so no field is ever missing.

The answer is rebuilt when the cluster changed or a second passed (each
node's UpdatedAt; see ``Manager.cached``), from per-node parts each kept until its
node changes (counts, reservations, its ``SystemStatus`` rows serialised);
the few fields that change by themselves (time, file descriptors, tasks,
event listeners) are appended to the cached bytes per request (files and
tasks counted at most once a second), so an ``/info`` costs a few
microseconds more than a cached answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..cluster.engine import HEALTHY, Engine
from .context import Manager

#: Kernel and daemon capabilities: true for the cluster only if true on every node.
_EVERY_NODE = (
    "MemoryLimit",
    "SwapLimit",
    "KernelMemory",
    "KernelMemoryTCP",
    "CpuCfsPeriod",
    "CpuCfsQuota",
    "CPUShares",
    "CPUSet",
    "PidsLimit",
    "IPv4Forwarding",
    "BridgeNfIptables",
    "BridgeNfIp6tables",
    "OomKillDisable",
    "LiveRestoreEnabled",
)
#: Names of drivers and tools: the nodes' value, or their distinct values joined.
_JOINED = ("Driver", "LoggingDriver", "CgroupDriver", "CgroupVersion", "DefaultRuntime", "Isolation", "InitBinary")
#: Settings that only mean something when every node agrees: that value, else "".
_AGREED = ("DockerRootDir", "HttpProxy", "HttpsProxy", "NoProxy")
#: Versions of the tools a node runs, ``{"ID", "Expected"}`` each.
_COMMITS = ("ContainerdCommit", "RuncCommit", "InitCommit")

#: What a node sends for its registry settings when there is no node to ask (dockerd 20.10's defaults).
_DEFAULT_INDEX = "https://index.docker.io/v1/"
_DEFAULT_REGISTRY = {
    "AllowNondistributableArtifactsCIDRs": [],
    "AllowNondistributableArtifactsHostnames": [],
    "InsecureRegistryCIDRs": ["127.0.0.0/8"],
    "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}},
    "Mirrors": [],
}
#: Appended per request (see :func:`info_body`), never cached.
_DYNAMIC = ("SystemTime", "NFd", "NGoroutines", "NEventsListener")
#: The block of an engine that is not in swarm mode.
_NO_SWARM = {
    "NodeID": "",
    "NodeAddr": "",
    "LocalNodeState": "inactive",
    "ControlAvailable": False,
    "Error": "",
    "RemoteManagers": None,
}


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


@functools.cache
def _host_os() -> tuple[str, str]:
    """The manager's host's ``PRETTY_NAME`` and ``VERSION_ID`` (dockerd reads the same file)."""
    fields: dict[str, str] = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip('"')
    except OSError:
        pass
    return fields.get("PRETTY_NAME", platform.system()), fields.get("VERSION_ID", "")


def _distinct(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v not in (None, "")})


def _joined(values: Iterable[Any]) -> str:
    return ", ".join(_distinct(values))


def _agreed(values: Iterable[Any]) -> str:
    found = _distinct(values)
    return found[0] if len(found) == 1 else ""


def _union_lists(lists: Iterable[Any]) -> list[Any] | None:
    """Every item once, in the order first seen; None when no node had a list (as an engine sends it)."""
    union: list[Any] = []
    seen_any = False
    for items in lists:
        if items is None:
            continue
        seen_any = True
        union += [item for item in items if item not in union]
    return union if seen_any else None


def _states(engine: Engine) -> tuple[int, int, int]:
    """How many containers the engine has, how many run, how many are paused (kept until it changes)."""

    def count() -> tuple[int, int, int]:
        states = [c.get("State") for c in engine.containers.values()]
        return len(states), states.count("running"), states.count("paused")

    counted: tuple[int, int, int] = engine.memo("states", count)
    return counted


def _node_status(engine: Engine) -> list[list[str]]:
    """One node's rows in ``SystemStatus``, as Swarm 1.2.9 wrote them."""
    total, running, paused = _states(engine)
    stopped = total - running - paused
    cpus, reserved_memory = engine.reserved()
    updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(engine.updated_at)) if engine.updated_at else ""
    rows = [
        [f" {engine.name}", engine.addr],
        ["  └ ID", f"{engine.id}|{engine.addr}"],
        ["  └ Status", engine.state],
        ["  └ Containers", f"{total} ({running} Running, {paused} Paused, {stopped} Stopped)"],
        ["  └ Reserved CPUs", f"{cpus:g} / {engine.ncpu}"],
        ["  └ Reserved Memory", f"{_bytes(reserved_memory)} / {_bytes(engine.memory)}"],
        ["  └ Labels", ", ".join(f"{k}={v}" for k, v in sorted(engine.labels.items()))],
        ["  └ UpdatedAt", updated],
        ["  └ ServerVersion", str(engine.info.get("ServerVersion", ""))],
    ]
    if engine.state != HEALTHY and engine.last_error:
        rows.append(["  └ Error", engine.last_error])
    return rows


def _node_rows(engine: Engine) -> bytes:
    """The node's rows serialised (without brackets), rebuilt only when the engine changes or refreshes."""
    rows: bytes = engine.memo(
        "info-rows",
        lambda: json.dumps(_node_status(engine)).encode()[1:-1],
        stamp=(int(engine.updated_at), engine.last_error),
    )
    return rows


#: Stands for ``SystemStatus`` while the rest is serialised; replaced by the joined rows (see build_body).
_ROWS = "\x00system-status\x00"


def _system_status(manager: Manager, engines: list[Engine]) -> bytes:
    role = [["Role", "primary"]]
    if manager.replicated and not manager.role.primary:
        role = [["Role", "replica"], ["Primary", manager.role.leader or ""]]
    head = [
        *role,
        ["Strategy", manager.strategy],
        ["Filters", ", ".join(manager.filters)],
        ["Nodes", str(len(engines))],
    ]
    return b"[" + b", ".join([json.dumps(head).encode()[1:-1], *(_node_rows(e) for e in engines)]) + b"]"


def _plugins(infos: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = ("Volume", "Network", "Authorization", "Log")
    return {kind: _union_lists((info.get("Plugins") or {}).get(kind) for info in infos) for kind in kinds}


def _runtimes(infos: list[dict[str, Any]]) -> dict[str, Any]:
    runtimes: dict[str, Any] = {}
    for info in infos:
        for name, runtime in (info.get("Runtimes") or {}).items():
            runtimes.setdefault(name, runtime)
    return runtimes


def build_body(manager: Manager) -> bytes:
    """The cluster's ``/info`` without the fields that change by themselves (see :func:`info_body`).

    What follows from the nodes alone (their ``/info``s, which are healthy) is
    kept until the nodes change; the counts and each node's ``SystemStatus``
    rows (kept serialised per node) are joined to it, so that a thousand
    nodes' rows are not encoded again for every change.
    """
    engines, healthy, nodes = manager.kept("info-nodes", manager.cluster.specs_version, lambda: _of_nodes(manager))
    counts = [_states(e) for e in healthy]
    total, running, paused = (sum(column) for column in zip(*counts, strict=True)) if counts else (0, 0, 0)
    answer = {
        **nodes,
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": total - running - paused,
        "Images": len(set().union(*(_image_ids(e) for e in healthy))),
    }
    return json.dumps(answer).encode().replace(json.dumps(_ROWS).encode(), _system_status(manager, engines), 1)


def _of_nodes(manager: Manager) -> tuple[list[Engine], list[Engine], dict[str, Any]]:
    """The engines in ``SystemStatus`` order, the healthy ones, and the fields their ``/info``s make."""
    engines = sorted(manager.cluster.engines.values(), key=lambda e: (e.name, e.addr))
    healthy = [e for e in engines if e.state == HEALTHY]
    infos = [e.info for e in healthy]
    first = infos[0] if infos else {}
    host_os, host_os_version = _host_os()
    resources = [r for info in infos for r in info.get("GenericResources") or []]
    answer: dict[str, Any] = {
        **first,  # fields of newer engines that nothing below computes
        "ID": manager.id,
        "Containers": 0,  # the counts: filled in by build_body
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "DriverStatus": None,
        "SystemStatus": _ROWS,
        "Plugins": _plugins(infos),
        **{key: bool(infos) and all(bool(info.get(key)) for info in infos) for key in _EVERY_NODE},
        **{key: _joined(info.get(key) for info in infos) for key in _JOINED},
        **{key: _agreed(info.get(key) for info in infos) for key in _AGREED},
        **{
            key: {
                "ID": _joined((info.get(key) or {}).get("ID") for info in infos),
                "Expected": _joined((info.get(key) or {}).get("Expected") for info in infos),
            }
            for key in _COMMITS
        },
        "Debug": logging.getLogger().isEnabledFor(logging.DEBUG),
        "KernelVersion": platform.release(),
        "OperatingSystem": host_os,
        "OSVersion": host_os_version,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": first.get("IndexServerAddress") or _DEFAULT_INDEX,
        "RegistryConfig": first.get("RegistryConfig") or _DEFAULT_REGISTRY,
        "NCPU": sum(e.ncpu for e in healthy),
        "MemTotal": sum(e.memory for e in healthy),
        "GenericResources": resources or None,
        "Name": manager.name,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": f"swarm/{__version__}",
        "Runtimes": _runtimes(infos),
        "Swarm": _NO_SWARM,
        "SecurityOptions": _union_lists(info.get("SecurityOptions") for info in infos) or [],
        "Warnings": None,
    }
    for key in _DYNAMIC:
        answer.pop(key, None)
    return engines, healthy, answer


def _image_ids(engine: Engine) -> frozenset[str]:
    ids: frozenset[str] = engine.memo("image-ids", lambda: frozenset(str(image["Id"]) for image in engine.images))
    return ids


#: ``(when, open files, tasks)`` last counted: counting walks every file descriptor and every task
#: (half a millisecond with a thousand engines), too slow for every ``/info``, so at most once a second.
_counted: tuple[float, int, int] = (-1.0, 0, 0)


def _process_counts() -> tuple[int, int]:
    """The manager's open files, and its analogue of goroutines: asyncio tasks and threads."""
    global _counted
    now = time.monotonic()
    if _counted[0] < 0 or now - _counted[0] >= 1.0:
        try:
            files = len(os.listdir("/proc/self/fd"))
        except OSError:
            files = 0
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # no running loop
            tasks = 0
        _counted = (now, files, tasks)
    return _counted[1], _counted[2] + threading.active_count()


def _dynamic(manager: Manager) -> dict[str, Any]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
    files, concurrency = _process_counts()
    return {
        "SystemTime": stamp,
        "NFd": files,
        "NGoroutines": concurrency,
        "NEventsListener": manager.cluster.bus.subscribers,
    }


def info_body(manager: Manager) -> bytes:
    """``/info``'s JSON: the cluster part (rebuilt when the cluster changes) and the live fields, a second old at most.

    With a thousand nodes the answer is hundreds of kilobytes: joined once a
    second, not copied for every request.
    """
    second = int(time.time())
    return manager.cached("info+live", lambda: _with_live(manager, second), stamp=second)


def _with_live(manager: Manager, second: int) -> bytes:
    cluster = manager.cached("info", lambda: build_body(manager), stamp=second)
    return cluster[:-1] + b", " + json.dumps(_dynamic(manager)).encode()[1:]
