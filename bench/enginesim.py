"""Many fake Docker engines in one process: a load generator for benchmarks of ``swarmctl manage`` at scale.

Run: .venv/bin/python -m bench.enginesim [--engines 1000] [--containers 30] --discovery-file PATH [--seed 0]

A thousand real dockerd processes cannot run on one machine, and the
manager's costs at that scale (a start-up that reads every engine, listings
of 30,000 containers, event streams from every node) only show with that many
engines answering. Each simulated engine listens on its own loopback port and
answers the part of the Engine API (dockerd 20.10, API 1.41) that the manager
reads, with the JSON shapes a real dockerd gives (``tests/test_enginesim.py``
checks them against one):

- ``GET|HEAD /_ping``, ``/version``, ``/info``, ``/images/json``, ``/networks``
  (bridge, host, none), ``/volumes``;
- ``GET /containers/json`` (``all`` and the ``id`` filter honoured, other
  filters ignored), ``GET /containers/{id or name}/json``;
- ``POST /containers/create?name=``, ``POST /containers/{id}/start|stop|kill|restart``,
  ``DELETE /containers/{id}[?force=1]``, with dockerd's statuses (304 when
  already in that state, 409 for a duplicate name, for killing a stopped
  container or removing a running one without force) and its messages;
- ``GET /events``: a chunked stream that stays open and reports container
  changes (create, start, kill, die, stop, restart, destroy) as dockerd words them;
- all of it under ``/vX.Y/`` too; anything else is 404 ``{"message":"page not found"}``.

It also lets a test change an engine behind the manager's back:
``POST /_sim/containers/{id}/state?to=running|exited|created|removed`` changes
a container without any event (so a reconciliation test can check that the
manager's periodic refresh corrects its cache), ``POST /_sim/quiet`` stops the
engine's events and ``POST /_sim/loud`` resumes them.

Why it is written this way: at start-up a manager of 1,000 engines x 30
containers asks for some 37,000 answers within seconds, and the simulator has
one core. So it is raw ``asyncio.Protocol`` with a minimal HTTP/1.1 parser
(keep-alive, ``Content-Length`` bodies; requests are never chunked), on uvloop
when it is installed, and every answer body is serialised once and kept until
that engine (or container) changes. Summaries' ``Status`` text ("Up 3 hours")
depends on the clock: a summary is re-rendered when its text may have
changed (after a second while the duration is counted in seconds, after a
minute otherwise). It is a load generator, not a stand-in for real engines in
functional tests: nothing runs, and only the endpoints above exist.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import importlib
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
ENGINE_VERSION = "20.10.24"
KERNEL_VERSION = "6.1.0-18-amd64"
GiB = 1 << 30
MiB = 1 << 20

#: A request head or body larger than this is refused (a real client never sends one; a broken one must not eat memory).
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * MiB

_REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    304: b"Not Modified",
    400: b"Bad Request",
    404: b"Not Found",
    409: b"Conflict",
    413: b"Request Entity Too Large",
    500: b"Internal Server Error",
}
#: The headers dockerd's API routes add to every answer (its router's own 404 has none of them).
_ENGINE_HEADERS = (
    f"Api-Version: {API_VERSION}\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
    f"Server: Docker/{ENGINE_VERSION} (linux)\r\n"
).encode()
_PING_HEADERS = b"Cache-Control: no-cache, no-store, must-revalidate\r\nPragma: no-cache\r\n"
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_VERSIONED = re.compile(r"/v(\d+)\.(\d+)(/.*)")
_VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ZERO_TIME = "0001-01-01T00:00:00Z"
_SIGNALS = {"KILL": 9, "TERM": 15, "INT": 2, "HUP": 1, "QUIT": 3, "USR1": 10, "USR2": 12, "STOP": 19}
#: Signals after which the simulated process is gone (the others are taken as handled, like nginx's HUP).
_FATAL = {2, 3, 9, 15}

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> bytes:
    """JSON as dockerd writes it: compact, one value per line (Go's ``json.Encoder`` adds the newline)."""
    return _encode(value).encode() + b"\n"


def rfc3339(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction dropped); 0 is Go's zero time."""
    if ns <= 0:
        return _ZERO_TIME
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def human_duration(seconds: float) -> str:
    """go-units' ``HumanDuration``, as ``docker ps`` statuses say how long ago."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header, formatted once a second for every engine."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


@dataclass(frozen=True, slots=True)
class Reply:
    """One whole answer; ``engine`` is False for the router's own 404, which lacks dockerd's API headers."""

    status: int
    body: bytes = b""
    content_type: bytes = _JSON
    engine: bool = True
    extra: bytes = b""


_PAGE_NOT_FOUND = Reply(404, dumps({"message": "page not found"}), engine=False)
_NO_CONTENT = Reply(204)
_NOT_MODIFIED = Reply(304)


def _error(status: int, message: str) -> Reply:
    return Reply(status, dumps({"message": message}))


def _truthy(query: dict[str, list[str]], name: str) -> bool:
    """A boolean query parameter as dockerd reads one (``httputils.BoolValue``)."""
    value = (query.get(name) or [""])[0].strip().lower()
    return value not in ("", "0", "no", "false", "none")


# -- images ------------------------------------------------------------------


@dataclass(slots=True)
class SimImage:
    """An image as far as containers and ``/images/json`` need one."""

    tag: str
    size: int
    created: int
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    labels: dict[str, str] | None = None
    working_dir: str = ""

    @property
    def id(self) -> str:
        """The same tag has the same ID on every engine, as a pulled image does."""
        return "sha256:" + hashlib.sha256(self.tag.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        repo = self.tag.rsplit(":", 1)[0]
        digest = "sha256:" + hashlib.sha256(b"manifest " + self.tag.encode()).hexdigest()
        return {
            "Containers": -1,
            "Created": self.created,
            "Id": self.id,
            "Labels": self.labels,
            "ParentId": "",
            "RepoDigests": [f"{repo}@{digest}"],
            "RepoTags": [self.tag],
            "SharedSize": -1,
            "Size": self.size,
            "VirtualSize": self.size,
        }


_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_IMAGE_EPOCH = 1_700_000_000
#: What the engines hold; every engine has all of them (busybox:latest is what the benchmark creates).
IMAGES = [
    SimImage("busybox:latest", 4_261_550, _IMAGE_EPOCH, cmd=["sh"], env=[_PATH_ENV]),
    SimImage(
        "nginx:1.25",
        187_000_000,
        _IMAGE_EPOCH + 86_400,
        cmd=["nginx", "-g", "daemon off;"],
        entrypoint=["/docker-entrypoint.sh"],
        env=[_PATH_ENV, "NGINX_VERSION=1.25.3", "NJS_VERSION=0.8.2", "PKG_RELEASE=1~bookworm"],
        exposed=["80/tcp"],
        labels={"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
    ),
    SimImage(
        "redis:7.2",
        138_000_000,
        _IMAGE_EPOCH + 2 * 86_400,
        cmd=["redis-server"],
        entrypoint=["docker-entrypoint.sh"],
        env=[_PATH_ENV, "GOSU_VERSION=1.17", "REDIS_VERSION=7.2.3"],
        exposed=["6379/tcp"],
        working_dir="/data",
    ),
    SimImage(
        "postgres:15",
        412_000_000,
        _IMAGE_EPOCH + 3 * 86_400,
        cmd=["postgres"],
        entrypoint=["docker-entrypoint.sh"],
        env=[_PATH_ENV, "PG_MAJOR=15", "PG_VERSION=15.5-1.pgdg120+1", "PGDATA=/var/lib/postgresql/data"],
        exposed=["5432/tcp"],
    ),
    SimImage(
        "python:3.11-slim",
        131_000_000,
        _IMAGE_EPOCH + 4 * 86_400,
        cmd=["python3"],
        env=[_PATH_ENV, "LANG=C.UTF-8", "PYTHON_VERSION=3.11.7"],
    ),
    SimImage(
        "registry.example.com/shop/api:2.14.1",
        256_000_000,
        _IMAGE_EPOCH + 5 * 86_400,
        cmd=["gunicorn", "shop.wsgi", "-b", "0.0.0.0:8000"],
        env=[_PATH_ENV, "LANG=C.UTF-8", "APP_ENV=production"],
        exposed=["8000/tcp"],
        labels={"org.opencontainers.image.source": "https://git.example.com/shop/api", "team": "shop"},
        working_dir="/srv/app",
    ),
    SimImage(
        "prom/node-exporter:v1.7.0",
        22_700_000,
        _IMAGE_EPOCH + 6 * 86_400,
        cmd=None,
        entrypoint=["/bin/node_exporter"],
        env=[_PATH_ENV],
        exposed=["9100/tcp"],
        labels={"maintainer": "The Prometheus Authors <prometheus-developers@googlegroups.com>"},
    ),
]


def normalise_image(ref: str) -> str:
    """``busybox`` means ``busybox:latest``, and ``docker.io/library/x`` is ``x``, as the engine reads them."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


# -- containers --------------------------------------------------------------


@dataclass(slots=True)
class Mount:
    kind: str  # "volume" or "bind"
    source: str  # a volume's name or a host path
    destination: str
    read_only: bool = False

    def as_json(self) -> dict[str, Any]:
        if self.kind == "volume":
            return {
                "Type": "volume",
                "Name": self.source,
                "Source": f"/var/lib/docker/volumes/{self.source}/_data",
                "Destination": self.destination,
                "Driver": "local",
                "Mode": "ro" if self.read_only else "z",
                "RW": not self.read_only,
                "Propagation": "",
            }
        return {
            "Type": "bind",
            "Source": self.source,
            "Destination": self.destination,
            "Mode": "ro" if self.read_only else "",
            "RW": not self.read_only,
            "Propagation": "rprivate",
        }


@dataclass(slots=True)
class SimContainer:
    """One container's state; its inspect and summary are rendered from it and kept as bytes until it changes."""

    id: str
    name: str
    image: str  # as the client named it
    image_id: str
    path: str
    args: list[str]
    cmd: list[str] | None
    entrypoint: list[str] | None
    env: list[str]
    labels: dict[str, str]
    created: int  # ns
    hostname: str
    working_dir: str = ""
    user: str = ""
    tty: bool = False
    open_stdin: bool = False
    exposed: list[str] = field(default_factory=list)
    port_bindings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    binds: list[str] | None = None
    mounts: list[Mount] = field(default_factory=list)
    memory: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    restart_policy: str = ""
    network_mode: str = "default"
    auto_remove: bool = False
    status: str = "created"  # created, running, exited
    pid: int = 0
    exit_code: int = 0
    started: int = 0  # ns
    finished: int = 0  # ns
    restart_count: int = 0
    ip: int = 0  # the last byte pair of 172.17.x.y while running; 0 when not
    endpoint_id: str = ""
    sandbox_id: str = ""
    inspect_bytes: bytes | None = None
    summary_bytes: bytes | None = None
    summary_expires: float = 0.0

    def changed(self) -> None:
        self.inspect_bytes = None
        self.summary_bytes = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def status_text(self, now: float) -> tuple[str, float]:
        """``docker ps``'s STATUS, and how long that text holds (it counts seconds for a minute, then minutes)."""
        if self.status == "running":
            age = now - self.started / 1e9
            text = "Up " + human_duration(age)
        elif self.status == "exited":
            age = now - self.finished / 1e9
            text = f"Exited ({self.exit_code}) {human_duration(age)} ago"
        else:
            return "Created", float("inf")
        return text, (1.0 if age < 60 else 60.0)

    def _ip_address(self) -> str:
        return f"172.17.{self.ip >> 8}.{self.ip & 0xFF}" if self.ip else ""

    def _mac(self) -> str:
        return f"02:42:ac:11:{self.ip >> 8:02x}:{self.ip & 0xFF:02x}" if self.ip else ""

    def _endpoint(self, network_id: str) -> dict[str, Any]:
        up = bool(self.ip)
        return {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": None,
            "NetworkID": network_id,
            "EndpointID": self.endpoint_id if up else "",
            "Gateway": "172.17.0.1" if up else "",
            "IPAddress": self._ip_address(),
            "IPPrefixLen": 16 if up else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": self._mac(),
            "DriverOpts": None,
        }

    def _network_name(self) -> str:
        return "bridge" if self.network_mode in ("default", "bridge") else self.network_mode

    def _published(self) -> dict[str, list[dict[str, str]] | None]:
        """NetworkSettings.Ports: each exposed port and its host bindings, while the container runs."""
        if not self.running or self.network_mode in ("host", "none"):
            return {}
        ports: dict[str, list[dict[str, str]] | None] = {port: None for port in self.exposed}
        for port, bindings in self.port_bindings.items():
            ports[port] = [
                {"HostIp": ip, "HostPort": binding.get("HostPort") or "0"}
                for binding in bindings
                for ip in ((binding["HostIp"],) if binding.get("HostIp") else ("0.0.0.0", "::"))
            ]
        return ports

    def summary(self, engine: SimEngine, now: float) -> dict[str, Any]:
        ports: list[dict[str, Any]] = []
        for port, bindings in self._published().items():
            number, _, proto = port.partition("/")
            if not bindings:
                ports.append({"PrivatePort": int(number), "Type": proto or "tcp"})
            for binding in bindings or []:
                ports.append(
                    {
                        "IP": binding["HostIp"],
                        "PrivatePort": int(number),
                        "PublicPort": int(binding["HostPort"]),
                        "Type": proto or "tcp",
                    }
                )
        status, _ = self.status_text(now)
        network = self._network_name()
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": " ".join([self.path, *self.args]),
            "Created": self.created // 1_000_000_000,
            "Ports": ports,
            "Labels": self.labels,
            "State": self.status,
            "Status": status,
            "HostConfig": {"NetworkMode": self.network_mode},
            "NetworkSettings": {"Networks": {network: self._endpoint(engine.network_id(network))}},
            "Mounts": [mount.as_json() for mount in self.mounts],
        }

    def inspect(self, engine: SimEngine) -> dict[str, Any]:
        root = f"/var/lib/docker/containers/{self.id}"
        layer = hashlib.sha256(self.id.encode()).hexdigest()
        overlay = f"/var/lib/docker/overlay2/{layer}"
        up = self.running
        config: dict[str, Any] = {
            "Hostname": self.hostname,
            "Domainname": "",
            "User": self.user,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
        }
        if self.exposed:  # omitempty in dockerd's types
            config["ExposedPorts"] = {port: {} for port in self.exposed}
        config.update(
            {
                "Tty": self.tty,
                "OpenStdin": self.open_stdin,
                "StdinOnce": False,
                "Env": self.env,
                "Cmd": self.cmd,
                "Image": self.image,
                "Volumes": {m.destination: {} for m in self.mounts if m.kind == "volume"} or None,
                "WorkingDir": self.working_dir,
                "Entrypoint": self.entrypoint,
                "OnBuild": None,
                "Labels": self.labels,
            }
        )
        host_config = dict(_HOST_CONFIG)
        host_config.update(
            {
                "Binds": self.binds,
                "NetworkMode": self.network_mode,
                "PortBindings": {
                    port: [{"HostIp": b.get("HostIp", ""), "HostPort": b.get("HostPort", "")} for b in bindings]
                    for port, bindings in self.port_bindings.items()
                },
                "RestartPolicy": {"Name": self.restart_policy, "MaximumRetryCount": 0},
                "AutoRemove": self.auto_remove,
                "CpuShares": self.cpu_shares,
                "Memory": self.memory,
                "NanoCpus": self.nano_cpus,
                "MemorySwap": 2 * self.memory if self.memory else 0,
            }
        )
        network = self._network_name()
        return {
            "Id": self.id,
            "Created": rfc3339(self.created),
            "Path": self.path,
            "Args": self.args,
            "State": {
                "Status": self.status,
                "Running": up,
                "Paused": False,
                "Restarting": False,
                "OOMKilled": False,
                "Dead": False,
                "Pid": self.pid,
                "ExitCode": self.exit_code,
                "Error": "",
                "StartedAt": rfc3339(self.started),
                "FinishedAt": rfc3339(self.finished),
            },
            "Image": self.image_id,
            "ResolvConfPath": f"{root}/resolv.conf",
            "HostnamePath": f"{root}/hostname",
            "HostsPath": f"{root}/hosts",
            "LogPath": f"{root}/{self.id}-json.log",
            "Name": f"/{self.name}",
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "docker-default",
            "ExecIDs": None,
            "HostConfig": host_config,
            "GraphDriver": {
                "Data": {
                    "LowerDir": f"{overlay}-init/diff",
                    "MergedDir": f"{overlay}/merged",
                    "UpperDir": f"{overlay}/diff",
                    "WorkDir": f"{overlay}/work",
                },
                "Name": "overlay2",
            },
            "Mounts": [mount.as_json() for mount in self.mounts],
            "Config": config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": self.sandbox_id if up else "",
                "HairpinMode": False,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "Ports": self._published(),
                "SandboxKey": f"/var/run/docker/netns/{self.sandbox_id[:12]}" if up else "",
                "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None,
                "EndpointID": self.endpoint_id if up and network == "bridge" else "",
                "Gateway": "172.17.0.1" if up and network == "bridge" else "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": self._ip_address() if network == "bridge" else "",
                "IPPrefixLen": 16 if up and network == "bridge" else 0,
                "IPv6Gateway": "",
                "MacAddress": self._mac() if network == "bridge" else "",
                "Networks": {network: self._endpoint(engine.network_id(network))},
            },
        }


#: The HostConfig fields every container has the same (dockerd 20.10's defaults), in dockerd's order.
_HOST_CONFIG: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default",
    "PortBindings": {},
    "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "private",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": None,
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Runtime": "runc",
    "ConsoleSize": [0, 0],
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "DeviceRequests": None,
    "KernelMemory": 0,
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "PidsLimit": None,
    "Ulimits": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": [
        "/proc/asound",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
    ],
    "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
}

_ADJECTIVES = [
    "admiring",
    "brave",
    "clever",
    "dreamy",
    "eager",
    "festive",
    "gifted",
    "happy",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "quirky",
]
_SURNAMES = [
    "babbage",
    "curie",
    "darwin",
    "euler",
    "feynman",
    "galois",
    "hopper",
    "knuth",
    "lovelace",
    "noether",
    "pascal",
    "turing",
    "wozniak",
]


@dataclass(frozen=True, slots=True)
class _Service:
    """A kind of container the engines start with, so that listings look like a real fleet's."""

    name: str
    image: str
    weight: int
    cmd: list[str] | None = None
    ports: tuple[str, ...] = ()
    publish: int = 0  # a host port base, or 0 for none
    volume: str = ""  # a named volume's mount point
    bind: tuple[str, str, bool] | None = None
    memory: tuple[int, ...] = (0,)
    cpus: tuple[float, ...] = (0.0,)
    shares: tuple[int, ...] = (0,)
    exits: tuple[int, ...] = (0, 137, 143, 1)
    running: float = 0.8
    restart: str = "unless-stopped"
    env: tuple[str, ...] = ()


_SERVICES = [
    _Service("web", "nginx:1.25", 4, ports=("80/tcp",), publish=8080, memory=(128 * MiB, 256 * MiB), cpus=(0.5, 1.0)),
    _Service(
        "api",
        "registry.example.com/shop/api:2.14.1",
        5,
        memory=(512 * MiB, GiB),
        cpus=(1.0, 2.0),
        shares=(512, 1024),
        env=("DATABASE_URL=postgres://shop@db:5432/shop", "REDIS_URL=redis://redis:6379/0", "WORKERS=4"),
    ),
    _Service(
        "worker",
        "registry.example.com/shop/api:2.14.1",
        4,
        cmd=["celery", "-A", "shop", "worker", "--concurrency", "4"],
        memory=(256 * MiB, 512 * MiB),
        shares=(256, 512),
        env=("BROKER_URL=redis://redis:6379/1",),
    ),
    _Service("redis", "redis:7.2", 2, volume="/data", memory=(256 * MiB,), cpus=(0.5,)),
    _Service(
        "db",
        "postgres:15",
        1,
        volume="/var/lib/postgresql/data",
        memory=(2 * GiB, 4 * GiB),
        cpus=(2.0,),
        env=("POSTGRES_USER=shop", "POSTGRES_DB=shop"),
    ),
    _Service(
        "metrics",
        "prom/node-exporter:v1.7.0",
        2,
        cmd=["--path.rootfs=/host"],
        ports=("9100/tcp",),
        publish=9100,
        bind=("/", "/host", True),
        memory=(64 * MiB,),
    ),
    _Service(
        "batch",
        "python:3.11-slim",
        3,
        cmd=["python3", "-m", "jobs.nightly"],
        exits=(0, 0, 0, 1),
        running=0.2,
        restart="",
        bind=("/srv/jobs", "/jobs", False),
    ),
    _Service("sleeper", "busybox:latest", 2, cmd=["sleep", "86400"], restart="", exits=(0, 137)),
]


# -- one engine --------------------------------------------------------------


class SimEngine:
    """One simulated dockerd: its containers, images, networks and volumes, and who follows its events."""

    def __init__(self, index: int, seed: int = 0, host: str = "127.0.0.1") -> None:
        self.index = index
        self.rng = random.Random(f"{seed}/{index}")
        self.host = host
        self.port = 0
        self.name = f"sim-{index + 1:04d}"
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        self.id = ":".join("".join(self.rng.choice(alphabet) for _ in range(4)) for _ in range(12))
        self.ncpu = self.rng.choice((8, 16, 32, 64))
        self.mem_total = self.rng.choice((32, 64, 128, 256)) * GiB - self.rng.randrange(64) * MiB
        self.labels = [
            f"zone=zone-{index % 3 + 1}",
            f"rack=r{index // 40:02d}",
            f"disk={'ssd' if index % 4 else 'hdd'}",
            "environment=production",
        ]
        self.booted = time.time_ns() - self.rng.randrange(86_400, 40 * 86_400) * 1_000_000_000
        self.containers: dict[str, SimContainer] = {}
        self.names: dict[str, str] = {}
        self.images = list(IMAGES)
        self.volumes: dict[str, int] = {}  # name -> created (ns)
        #: Network name -> ID: bridge, host and none, as every dockerd has.
        self.networks = {name: self._hex() for name in ("bridge", "host", "none")}
        self.subscribers: set[asyncio.Transport] = set()
        self.connections: set[_Connection] = set()
        self.quiet = False
        self._pid = self.rng.randrange(2_000, 30_000)
        self._used_ips: set[int] = set()
        self._info: tuple[int, bytes] | None = None
        self._static: dict[str, bytes] = {}
        self._lists: dict[bool, tuple[float, bytes]] = {}

    # -- identity and helpers ---------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def network_id(self, name: str) -> str:
        return self.networks.get(name, "")

    def _next_pid(self) -> int:
        self._pid = self._pid + self.rng.randrange(1, 200) if self._pid < 4_000_000 else 2_000
        return self._pid

    def _take_ip(self) -> int:
        ip = 2
        while ip in self._used_ips:
            ip += 1
        self._used_ips.add(ip)
        return ip

    def _changed(self, container: SimContainer | None = None) -> None:
        """Forget the pre-serialised answers this change makes stale."""
        if container is not None:
            container.changed()
        self._info = None
        self._lists.clear()
        self._static.pop("/volumes", None)

    # -- start-up contents --------------------------------------------------------
    def populate(self, count: int) -> None:
        """``count`` containers made over the last weeks, most running, as a real node's would be."""
        now = time.time_ns()
        weights = [s.weight for s in _SERVICES]
        made: dict[str, int] = {}
        for _ in range(count):
            service = self.rng.choices(_SERVICES, weights)[0]
            made[service.name] = made.get(service.name, 0) + 1
            number = made[service.name]
            image = next(i for i in self.images if i.tag == service.image)
            created = now - self.rng.randrange(120, 60 * 86_400) * 1_000_000_000
            body: dict[str, Any] = {
                "Image": service.image,
                "Env": list(service.env) or None,
                "Labels": {
                    "com.example.service": service.name,
                    "com.example.instance": str(number),
                    "com.docker.compose.project": "shop",
                },
                "HostConfig": {
                    "Memory": self.rng.choice(service.memory),
                    "NanoCpus": int(self.rng.choice(service.cpus) * 1e9),
                    "RestartPolicy": {"Name": service.restart},
                },
            }
            if not body["HostConfig"]["NanoCpus"]:
                body["HostConfig"]["CpuShares"] = self.rng.choice(service.shares)
            if service.cmd is not None:
                body["Cmd"] = service.cmd
            if service.ports:
                body["ExposedPorts"] = {port: {} for port in service.ports}
            if service.publish:
                body["HostConfig"]["PortBindings"] = {
                    service.ports[0]: [{"HostIp": "", "HostPort": str(service.publish + number - 1)}]
                }
            binds = []
            if service.volume:
                binds.append(f"shop_{service.name}_{number}:{service.volume}")
            if service.bind is not None:
                source, target, read_only = service.bind
                binds.append(f"{source}:{target}{':ro' if read_only else ''}")
            if binds:
                body["HostConfig"]["Binds"] = binds
            container = self._make(body, f"shop_{service.name}_{number}", image, created)
            roll = self.rng.random()
            if roll < service.running:
                container.status = "running"
                container.started = created + self.rng.randrange(1, 5) * 1_000_000_000
                if self.rng.random() < 0.3:  # restarted since
                    container.started = self.rng.randrange(container.started, now - 60_000_000_000)
                    container.restart_count = self.rng.randrange(1, 4)
                container.pid = self._next_pid()
                container.ip = self._take_ip()
                container.endpoint_id, container.sandbox_id = self._hex(), self._hex()
            elif roll < 0.97:
                container.status = "exited"
                container.started = created + self.rng.randrange(1, 5) * 1_000_000_000
                container.finished = self.rng.randrange(container.started + 1_000_000_000, now - 60_000_000_000)
                container.exit_code = self.rng.choice(service.exits)
            self._add(container)

    def _make(self, body: dict[str, Any], name: str, image: SimImage, created: int) -> SimContainer:
        """A container from a create request's body, as dockerd merges it with its image's config."""
        host = body.get("HostConfig") or {}
        cid = self._hex()
        entrypoint = body.get("Entrypoint") or None
        cmd = body.get("Cmd") or None
        if entrypoint is None:
            entrypoint = image.entrypoint
            if cmd is None:
                cmd = image.cmd
        argv = [*(entrypoint or []), *(cmd or [])]
        env = list(image.env)
        for item in body.get("Env") or []:
            key = str(item).split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key] + [str(item)]
        labels = dict(sorted({**(image.labels or {}), **(body.get("Labels") or {})}.items()))  # Go sorts map keys
        exposed = sorted({*image.exposed, *(body.get("ExposedPorts") or {}), *(host.get("PortBindings") or {})})
        mounts = []
        for bind in host.get("Binds") or []:
            source, _, rest = str(bind).partition(":")
            destination, _, mode = rest.partition(":")
            if source.startswith("/"):
                mounts.append(Mount("bind", source, destination, "ro" in mode.split(",")))
            else:
                self.volumes.setdefault(source, created)
                mounts.append(Mount("volume", source, destination, "ro" in mode.split(",")))
        restart = (host.get("RestartPolicy") or {}).get("Name") or ""
        return SimContainer(
            id=cid,
            name=name,
            image=str(body.get("Image")),
            image_id=image.id,
            path=argv[0],
            args=argv[1:],
            cmd=cmd,
            entrypoint=entrypoint,
            env=env,
            labels=labels,
            created=created,
            hostname=str(body.get("Hostname") or cid[:12]),
            working_dir=str(body.get("WorkingDir") or image.working_dir),
            user=str(body.get("User") or ""),
            tty=bool(body.get("Tty")),
            open_stdin=bool(body.get("OpenStdin")),
            exposed=exposed,
            port_bindings={
                str(port): [{"HostIp": str(b.get("HostIp") or ""), "HostPort": str(b.get("HostPort") or "")} for b in v]
                for port, v in (host.get("PortBindings") or {}).items()
                if v
            },
            binds=list(host.get("Binds") or []) or None,
            mounts=mounts,
            memory=int(host.get("Memory") or 0),
            nano_cpus=int(host.get("NanoCpus") or 0),
            cpu_shares=int(host.get("CpuShares") or 0),
            restart_policy=str(restart),
            network_mode=str(host.get("NetworkMode") or "default"),
            auto_remove=bool(host.get("AutoRemove")),
        )

    def _add(self, container: SimContainer) -> None:
        self.containers[container.id] = container
        self.names[container.name] = container.id
        self._changed(container)

    def _unique_name(self) -> str:
        """A generated name as dockerd makes one (``adjective_surname``), unique on this engine."""
        while True:
            name = f"{self.rng.choice(_ADJECTIVES)}_{self.rng.choice(_SURNAMES)}"
            if name not in self.names:
                return name
            name = f"{name}{self.rng.randrange(10)}"
            if name not in self.names:
                return name

    def warm(self) -> None:
        """Serialise every answer now, so that the first manager to ask pays nothing for it."""
        now = time.time()
        for container in self.containers.values():
            self._inspect_body(container)
            self._summary_body(container, now)
        self._list_body(True, now)
        self._info_body()
        for path in ("/version", "/images/json", "/networks", "/volumes"):
            self._static_body(path)

    # -- rendering ---------------------------------------------------------------
    def _inspect_body(self, container: SimContainer) -> bytes:
        if container.inspect_bytes is None:
            container.inspect_bytes = dumps(container.inspect(self))
        return container.inspect_bytes

    def _summary_body(self, container: SimContainer, now: float) -> bytes:
        if container.summary_bytes is None or now >= container.summary_expires:
            container.summary_bytes = _encode(container.summary(self, now)).encode()
            container.summary_expires = now + container.status_text(now)[1]
        return container.summary_bytes

    def _list_body(self, everything: bool, now: float) -> bytes:
        cached = self._lists.get(everything)
        if cached is not None and now < cached[0]:
            return cached[1]
        chosen = [c for c in reversed(self.containers.values()) if everything or c.running]  # newest first
        body = b"[" + b",".join(self._summary_body(c, now) for c in chosen) + b"]\n"
        expires = min((c.summary_expires for c in chosen), default=float("inf"))
        self._lists[everything] = (expires, body)
        return body

    def _info_body(self) -> bytes:
        now = time.time_ns()
        if self._info is not None and self._info[0] == now // 1_000_000_000:
            return self._info[1]
        running = sum(1 for c in self.containers.values() if c.running)
        info = {
            "ID": self.id,
            "Containers": len(self.containers),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": len(self.containers) - running,
            "Images": len(self.images),
            "Driver": "overlay2",
            "DriverStatus": [
                ["Backing Filesystem", "extfs"],
                ["Supports d_type", "true"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                "Authorization": None,
                "Log": [
                    "awslogs",
                    "fluentd",
                    "gcplogs",
                    "gelf",
                    "journald",
                    "json-file",
                    "local",
                    "logentries",
                    "splunk",
                    "syslog",
                ],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "KernelMemory": True,
            "KernelMemoryTCP": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": True,
            "BridgeNfIptables": True,
            "BridgeNfIp6tables": True,
            "Debug": False,
            "NFd": 40 + len(self.connections) + 2 * running,
            "OomKillDisable": True,
            "NGoroutines": 50 + 3 * len(self.subscribers) + 2 * running,
            "SystemTime": rfc3339(now),
            "LoggingDriver": "json-file",
            "CgroupDriver": "systemd",
            "CgroupVersion": "2",
            "NEventsListener": len(self.subscribers),
            "KernelVersion": KERNEL_VERSION,
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "OSVersion": "12",
            "OSType": "linux",
            "Architecture": "x86_64",
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {
                    "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
                },
                "Mirrors": [],
            },
            "NCPU": self.ncpu,
            "MemTotal": self.mem_total,
            "GenericResources": None,
            "DockerRootDir": "/var/lib/docker",
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": self.name,
            "Labels": self.labels,
            "ExperimentalBuild": False,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": {
                "io.containerd.runc.v2": {"path": "runc"},
                "io.containerd.runtime.v1.linux": {"path": "runc"},
                "runc": {"path": "runc"},
            },
            "DefaultRuntime": "runc",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "1.6.20", "Expected": "1.6.20"},
            "RuncCommit": {"ID": "1.1.5", "Expected": "1.1.5"},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": ["name=seccomp,profile=default", "name=cgroupns"],
            "Warnings": [
                f"WARNING: API is accessible on http://{self.address} without encryption.\n"
                "         Access to the remote API is equivalent to root access on the host. Refer\n"
                "         to the 'Docker daemon attack surface' section in the documentation for\n"
                "         more information: https://docs.docker.com/go/attack-surface/"
            ],
        }
        body = dumps(info)
        self._info = (now // 1_000_000_000, body)
        return body

    def _static_body(self, path: str) -> bytes:
        """``/version``, ``/images/json``, ``/networks`` and ``/volumes``: they change rarely or never."""
        body = self._static.get(path)
        if body is None:
            if path == "/version":
                body = dumps(_version())
            elif path == "/images/json":
                body = dumps([image.summary() for image in self.images])
            elif path == "/networks":
                body = dumps([self._network(name) for name in ("bridge", "host", "none")])
            else:
                body = dumps(
                    {
                        "Volumes": [
                            {
                                "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created / 1e9)),
                                "Driver": "local",
                                "Labels": None,
                                "Mountpoint": f"/var/lib/docker/volumes/{name}/_data",
                                "Name": name,
                                "Options": None,
                                "Scope": "local",
                            }
                            for name, created in sorted(self.volumes.items())
                        ],
                        "Warnings": None,
                    }
                )
            self._static[path] = body
        return body

    def _network(self, name: str) -> dict[str, Any]:
        bridge = name == "bridge"
        return {
            "Name": name,
            "Id": self.networks[name],
            "Created": rfc3339(self.booted),
            "Scope": "local",
            "Driver": {"none": "null"}.get(name, name),
            "EnableIPv6": False,
            "IPAM": {
                "Driver": "default",
                "Options": None,
                "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}] if bridge else [],
            },
            "Internal": False,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": {},
            "Options": {
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": "docker0",
                "com.docker.network.driver.mtu": "1500",
            }
            if bridge
            else {},
            "Labels": {},
        }

    # -- events ------------------------------------------------------------------
    def _emit(self, container: SimContainer, action: str, **extra: str) -> None:
        """One event to every follower, as dockerd words it (the Actor's attributes are the labels, image and name)."""
        if self.quiet or not self.subscribers:
            return
        now = time.time_ns()
        attributes = {**container.labels, "image": container.image, "name": container.name, **extra}
        data = dumps(
            {
                "status": action,
                "id": container.id,
                "from": container.image,
                "Type": "container",
                "Action": action,
                "Actor": {"ID": container.id, "Attributes": dict(sorted(attributes.items()))},
                "scope": "local",
                "time": now // 1_000_000_000,
                "timeNano": now,
            }
        )
        chunk = b"%x\r\n%s\r\n" % (len(data), data)
        for transport in list(self.subscribers):
            if transport.is_closing():
                self.subscribers.discard(transport)
            else:
                transport.write(chunk)

    def subscribe(self, transport: asyncio.Transport) -> None:
        self.subscribers.add(transport)
        self._info = None

    def unsubscribe(self, transport: asyncio.Transport) -> None:
        self.subscribers.discard(transport)
        self._info = None

    # -- life cycle --------------------------------------------------------------
    def find(self, ref: str) -> SimContainer | None:
        """By full ID, name (with or without its slash), or a unique ID prefix, as dockerd looks one up."""
        container = self.containers.get(ref)
        if container is not None:
            return container
        cid = self.names.get(ref.lstrip("/"))
        if cid is not None:
            return self.containers[cid]
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            found = [c for c in self.containers.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def create(self, query: dict[str, list[str]], body: bytes) -> Reply:
        try:
            config = json.loads(body or b"{}")
        except ValueError as exc:
            return _error(400, f"invalid character in the request body: {exc}")
        if not isinstance(config, dict):
            return _error(400, "json: cannot unmarshal the request body into Go value of type container.Config")
        name = (query.get("name") or [""])[0]
        if name:
            if not _VALID_NAME.fullmatch(name):
                return _error(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
            if name in self.names:
                return _error(
                    409,
                    f'Conflict. The container name "/{name}" is already in use by container "{self.names[name]}". '
                    "You have to remove (or rename) that container to be able to reuse that name.",
                )
        wanted = str(config.get("Image") or "")
        image = self._find_image(wanted)
        if image is None:
            return _error(404, f"No such image: {normalise_image(wanted)}")
        if not (config.get("Cmd") or config.get("Entrypoint") or image.cmd or image.entrypoint):
            return _error(400, "No command specified")
        container = self._make(config, name or self._unique_name(), image, time.time_ns())
        self._add(container)
        self._emit(container, "create")
        return Reply(201, dumps({"Id": container.id, "Warnings": []}))

    def _find_image(self, ref: str) -> SimImage | None:
        if not ref:
            return None
        bare = ref.removeprefix("sha256:")
        for image in self.images:
            if image.id == ref or (len(bare) >= 12 and image.id[7:].startswith(bare)):
                return image
        tag = normalise_image(ref)
        return next((image for image in self.images if image.tag == tag), None)

    def start(self, container: SimContainer) -> Reply:
        if container.running:
            return _NOT_MODIFIED
        self._run(container)
        return _NO_CONTENT

    def _run(self, container: SimContainer) -> None:
        container.status = "running"
        container.pid = self._next_pid()
        container.exit_code = 0
        container.started = time.time_ns()
        container.ip = self._take_ip() if container.network_mode in ("default", "bridge") else 0
        container.endpoint_id, container.sandbox_id = self._hex(), self._hex()
        self._changed(container)
        self._emit(container, "start")

    def _die(self, container: SimContainer, exit_code: int) -> None:
        container.status = "exited"
        container.pid = 0
        container.exit_code = exit_code
        container.finished = time.time_ns()
        self._used_ips.discard(container.ip)
        container.ip = 0
        self._changed(container)
        self._emit(container, "die", exitCode=str(exit_code))

    def stop(self, container: SimContainer) -> Reply:
        if not container.running:
            return _NOT_MODIFIED
        self._emit(container, "kill", signal="15")
        self._die(container, 143)
        self._emit(container, "stop")
        return _NO_CONTENT

    def kill(self, container: SimContainer, query: dict[str, list[str]]) -> Reply:
        if not container.running:
            return _error(409, f"Cannot kill container: {container.id}: Container {container.id} is not running")
        wanted = (query.get("signal") or ["KILL"])[0].upper().removeprefix("SIG")
        number = int(wanted) if wanted.isdigit() else _SIGNALS.get(wanted)
        if number is None:
            return _error(400, f"Invalid signal: {wanted}")
        self._emit(container, "kill", signal=str(number))
        if number in _FATAL:
            self._die(container, 128 + number)
        return _NO_CONTENT

    def restart(self, container: SimContainer) -> Reply:
        if container.running:
            self._emit(container, "kill", signal="15")
            self._die(container, 143)
            self._emit(container, "stop")
        self._run(container)
        self._emit(container, "restart")
        return _NO_CONTENT

    def remove(self, container: SimContainer, query: dict[str, list[str]]) -> Reply:
        if container.running:
            if not _truthy(query, "force"):
                return _error(
                    409,
                    f"You cannot remove a running container {container.id}. "
                    "Stop the container before attempting removal or force remove",
                )
            self._emit(container, "kill", signal="9")
            self._die(container, 137)
        self._forget(container)
        self._emit(container, "destroy")
        return _NO_CONTENT

    def _forget(self, container: SimContainer) -> None:
        self.containers.pop(container.id, None)
        self.names.pop(container.name, None)
        self._used_ips.discard(container.ip)
        self._changed(container)

    def set_state(self, container: SimContainer, to: str) -> Reply:
        """Change a container behind the manager's back: no event is sent."""
        quiet, self.quiet = self.quiet, True
        try:
            if to == "running" and not container.running:
                self._run(container)
            elif to == "exited" and container.status != "exited":
                if not container.running:
                    container.started = time.time_ns()
                self._die(container, 137)
            elif to == "created":
                if container.running:
                    self._die(container, 0)
                container.status, container.started, container.finished, container.exit_code = "created", 0, 0, 0
                self._changed(container)
            elif to == "removed":
                self._forget(container)
            elif to not in ("running", "exited"):
                return _error(400, f"to must be running, exited, created or removed, not {to!r}")
        finally:
            self.quiet = quiet
        return _NO_CONTENT

    # -- the API -----------------------------------------------------------------
    def answer(self, method: str, target: str, body: bytes) -> Reply | None:
        """The reply to one request; None means "follow the events" (the connection streams them)."""
        path, _, raw_query = target.partition("?")
        path = unquote(path)
        versioned = _VERSIONED.fullmatch(path)
        if versioned is not None:
            version = (int(versioned[1]), int(versioned[2]))
            asked = f"{versioned[1]}.{versioned[2]}"
            if version > (1, 41):
                return _error(400, f"client version {asked} is too new. Maximum supported API version is {API_VERSION}")
            if version < (1, 12):
                return _error(
                    400,
                    f"client version {asked} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                    "please upgrade your client to a newer version",
                )
            path = versioned[3]
        parts = path.strip("/").split("/")
        head = parts[0]
        if method in ("GET", "HEAD"):
            if path == "/_ping":
                return Reply(200, b"" if method == "HEAD" else b"OK", _TEXT, extra=_PING_HEADERS)
            if method == "HEAD":
                return _PAGE_NOT_FOUND
            if path == "/info":
                return Reply(200, self._info_body())
            if path in ("/version", "/images/json", "/networks", "/volumes"):
                return Reply(200, self._static_body(path))
            if path == "/events":
                return None
            if path == "/containers/json":
                return self._list(parse_qs(raw_query))
            if head == "containers" and len(parts) == 3 and parts[2] == "json":
                container = self.find(parts[1])
                if container is None:
                    return _error(404, f"No such container: {parts[1]}")
                return Reply(200, self._inspect_body(container))
        elif method == "POST":
            query = parse_qs(raw_query)
            if path == "/containers/create":
                return self.create(query, body)
            if head == "containers" and len(parts) == 3:
                action = parts[2]
                if action in ("start", "stop", "kill", "restart"):
                    container = self.find(parts[1])
                    if container is None:
                        return _error(404, f"No such container: {parts[1]}")
                    if action == "start":
                        return self.start(container)
                    if action == "stop":
                        return self.stop(container)
                    if action == "kill":
                        return self.kill(container, query)
                    return self.restart(container)
            if head == "_sim":
                return self._control(parts, query)
        elif method == "DELETE" and head == "containers" and len(parts) == 2:
            container = self.find(parts[1])
            if container is None:
                return _error(404, f"No such container: {parts[1]}")
            return self.remove(container, parse_qs(raw_query))
        return _PAGE_NOT_FOUND

    def _list(self, query: dict[str, list[str]]) -> Reply:
        everything = _truthy(query, "all")
        raw = (query.get("filters") or [""])[0]
        if not raw:
            return Reply(200, self._list_body(everything, time.time()))
        try:
            filters = json.loads(raw)
            wanted = filters.get("id") or []
            ids = list(wanted) if isinstance(wanted, list | dict) else []  # {"id": {"abc": true}} is the old form
        except (ValueError, AttributeError):
            return _error(400, "invalid filter")
        if not ids:
            return Reply(200, self._list_body(everything, time.time()))
        now = time.time()
        # dockerd matches an id filter as an unanchored regular expression: for hex IDs, a substring.
        chosen = [
            c
            for c in reversed(self.containers.values())
            if (everything or c.running) and any(str(i) in c.id for i in ids)
        ]
        return Reply(200, b"[" + b",".join(self._summary_body(c, now) for c in chosen) + b"]\n")

    def _control(self, parts: list[str], query: dict[str, list[str]]) -> Reply:
        if parts == ["_sim", "quiet"]:
            self.quiet = True
            return _NO_CONTENT
        if parts == ["_sim", "loud"]:
            self.quiet = False
            return _NO_CONTENT
        if len(parts) == 4 and parts[1] == "containers" and parts[3] == "state":
            container = self.find(parts[2])
            if container is None:
                return _error(404, f"No such container: {parts[2]}")
            return self.set_state(container, (query.get("to") or [""])[0])
        return _PAGE_NOT_FOUND


def _version() -> dict[str, Any]:
    return {
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [
            {
                "Name": "Engine",
                "Version": ENGINE_VERSION,
                "Details": {
                    "ApiVersion": API_VERSION,
                    "Arch": "amd64",
                    "BuildTime": "2023-04-04T17:59:04.000000000+00:00",
                    "Experimental": "false",
                    "GitCommit": "5d6db84",
                    "GoVersion": "go1.19.7",
                    "KernelVersion": KERNEL_VERSION,
                    "MinAPIVersion": MIN_API_VERSION,
                    "Os": "linux",
                },
            },
            {
                "Name": "containerd",
                "Version": "1.6.20",
                "Details": {"GitCommit": "2806fc1057397dbaeefbea0e4e17bddfbd388f38"},
            },
            {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "v1.1.5-0-gf19387a"}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": "de40ad0"}},
        ],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "5d6db84",
        "GoVersion": "go1.19.7",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": KERNEL_VERSION,
        "BuildTime": "2023-04-04T17:59:04.000000000+00:00",
    }


# -- HTTP ----------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One client connection to one engine: HTTP/1.1 requests in order, kept alive until the client closes."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.streaming = False
        #: "100 Continue" was sent for the request whose body is awaited.
        self.continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.engine.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.engine.connections.discard(self)
        if self.transport is not None:
            self.engine.unsubscribe(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.streaming or self.transport is None:
            return  # an events follower says nothing more that matters
        buffer = self.buffer
        buffer += data
        while buffer:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._fail(431, b"Request Header Fields Too Large")
                return
            lines = bytes(buffer[:end]).split(b"\r\n")
            try:
                method, target, version = lines[0].decode("latin-1").split(" ", 2)
            except ValueError:
                self._fail(400, b"Bad Request")
                return
            length = 0
            close = version == "HTTP/1.0"
            expects = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        self._fail(400, b"Bad Request")
                        return
                elif name == b"connection":
                    token = value.strip().lower()
                    close = token == b"close" or (close and token != b"keep-alive")
                elif name == b"expect":
                    expects = value.strip().lower() == b"100-continue"
                elif name == b"transfer-encoding" and value.strip().lower() != b"identity":
                    self._fail(501, b"Not Implemented")  # no client of the simulator sends a chunked request
                    return
            if length > MAX_BODY:
                self._fail(413, b"Request Entity Too Large")
                return
            if len(buffer) < end + 4 + length:
                if expects and not self.continued:  # curl asks before sending a large body
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            self.continued = False
            body = bytes(buffer[end + 4 : end + 4 + length])
            del buffer[: end + 4 + length]
            reply = self.engine.answer(method, target, body)
            if reply is None:
                self._follow()
                return
            self._send(reply, close, head_only=method == "HEAD")
            if close:
                self.transport.close()
                return

    def _send(self, reply: Reply, close: bool, head_only: bool = False) -> None:
        assert self.transport is not None
        parts = [b"HTTP/1.1 %d %s\r\n" % (reply.status, _REASONS.get(reply.status, b"Unknown"))]
        if reply.engine:
            parts.append(_ENGINE_HEADERS)
        parts.append(reply.extra)
        if reply.status not in (204, 304):
            parts.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (reply.content_type, len(reply.body)))
        parts.append(b"Date: %s\r\n" % _http_date())
        if close:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if not head_only and reply.status not in (204, 304):
            parts.append(reply.body)
        self.transport.write(b"".join(parts))

    def _follow(self) -> None:
        """Answer ``GET /events``: the head now, then one chunk per event until the client goes."""
        assert self.transport is not None
        self.streaming = True
        self.transport.write(
            b"HTTP/1.1 200 OK\r\n%sContent-Type: application/json\r\nDate: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
            % (_ENGINE_HEADERS, _http_date())
        )
        self.engine.subscribe(self.transport)

    def _fail(self, status: int, reason: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (status, reason))
        self.transport.close()


# -- the simulator ---------------------------------------------------------------


class Simulator:
    """``engines`` simulated engines, each listening on its own free port of ``host``."""

    def __init__(self, engines: int = 1000, containers: int = 30, host: str = "127.0.0.1", seed: int = 0) -> None:
        self.host = host
        self.containers_per_engine = containers
        self.engines = [SimEngine(n, seed, host) for n in range(engines)]
        self._servers: list[asyncio.Server] = []

    @property
    def addresses(self) -> list[str]:
        """``host:port`` of every engine, in order (empty before :meth:`start`)."""
        return [engine.address for engine in self.engines if engine.port]

    async def start(self) -> None:
        """Fill every engine, serialise its answers, and listen; returns once every engine accepts connections."""
        loop = asyncio.get_running_loop()
        try:
            for engine in self.engines:
                engine.populate(self.containers_per_engine)
                engine.warm()
                # Port 0: the kernel picks a free port, so nothing can take it between choosing and binding.
                server = await loop.create_server(
                    functools.partial(_Connection, engine), self.host, 0, backlog=512, reuse_address=True
                )
                self._servers.append(server)
                engine.port = int(server.sockets[0].getsockname()[1])
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening and drop every connection (events followers see their stream end)."""
        for server in self._servers:
            server.close()
        for engine in self.engines:
            for connection in list(engine.connections):
                if connection.transport is not None:
                    connection.transport.close()
            engine.subscribers.clear()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def write_discovery(self, path: Path) -> None:
        """One ``host:port`` a line, written whole (a manager watching the file never reads half of it)."""
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text("".join(f"{address}\n" for address in self.addresses))
        temporary.replace(path)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (several times faster at this), else asyncio's."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())


@contextlib.contextmanager
def running(engines: int = 3, containers: int = 30, seed: int = 0) -> Iterator[Simulator]:
    """A simulator served from a thread of its own, for synchronous tests; stopped on leaving."""
    simulator = Simulator(engines, containers, seed=seed)
    loop = new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(simulator.start())
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="enginesim", daemon=True)
    thread.start()
    if not started.wait(120):
        raise TimeoutError("the engine simulator did not start within 120 s")
    try:
        if failure:
            raise RuntimeError("the engine simulator did not start") from failure[0]
        yield simulator
    finally:
        if not failure:
            _call(loop, simulator.stop)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _call(loop: asyncio.AbstractEventLoop, coroutine: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run_coroutine_threadsafe(coroutine(), loop).result(30)


async def _serve(args: argparse.Namespace) -> None:
    simulator = Simulator(args.engines, args.containers, args.host, args.seed)
    began = time.perf_counter()
    await simulator.start()
    if args.discovery_file is not None:
        simulator.write_discovery(args.discovery_file)
    ports = [engine.port for engine in simulator.engines]
    print(
        f"enginesim ready: {len(ports)} engines x {args.containers} containers on {args.host} "
        f"(ports {min(ports, default=0)}..{max(ports, default=0)}) in {time.perf_counter() - began:.1f} s"
        + (f"; discovery file {args.discovery_file}" if args.discovery_file else ""),
        flush=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await simulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30, help="containers each engine starts with")
    parser.add_argument("--discovery-file", type=Path, help="written with one host:port a line once all listen")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address to listen on")
    parser.add_argument("--seed", type=int, default=0, help="the same seed makes the same engines and containers")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
