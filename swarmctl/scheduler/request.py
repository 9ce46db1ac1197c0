"""A container to place: the create body, with what Swarm reads from it pulled out once.

Swarm users write placement rules as environment entries
(``-e constraint:node==node1``, ``-e affinity:container==web``,
``-e reschedule:on-node-failure``, and ours: ``-e spread:zone``,
``-e global:true``) or as labels holding JSON lists
(``com.docker.swarm.constraints``, ``com.docker.swarm.affinities``,
``com.docker.swarm.reschedule-policies``, ``com.docker.swarm.spread``; and
``com.docker.swarm.global=true``). As Swarm did, the environment
entries are taken out of ``Env`` (the container never sees them) and recorded
in those labels, so that they survive on the engine: ``docker inspect`` shows
them, and rescheduling reads them back from the container's labels. Every
container also gets a ``com.docker.swarm.id`` label, the identity that
follows it when it is recreated elsewhere.

Networks and volumes a container uses tie it to the nodes that have them
(see :mod:`swarmctl.cluster.resources` for what a name means). They may be
written ``node/name`` (``--network node1/front``, ``-v node2/data:/data``):
the container then goes to that node, and the engine is given the plain
name, the only one it knows.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..cluster.cpusets import CpusetError, parse_cpuset
from .expressions import Expression, ExpressionError, parse_all

NAMESPACE = "com.docker.swarm"
CONSTRAINTS_LABEL = f"{NAMESPACE}.constraints"
AFFINITIES_LABEL = f"{NAMESPACE}.affinities"
RESCHEDULE_LABEL = f"{NAMESPACE}.reschedule-policies"
SPREAD_LABEL = f"{NAMESPACE}.spread"
GLOBAL_LABEL = f"{NAMESPACE}.global"
ID_LABEL = f"{NAMESPACE}.id"
#: docker-compose's labels: containers of one service are siblings, whatever their image.
COMPOSE_SERVICE, COMPOSE_PROJECT = "com.docker.compose.service", "com.docker.compose.project"

ON_NODE_FAILURE, OFF = "on-node-failure", "off"
_ENV_KEYS = {
    "constraint": CONSTRAINTS_LABEL,
    "affinity": AFFINITIES_LABEL,
    "reschedule": RESCHEDULE_LABEL,
    "spread": SPREAD_LABEL,
    "global": GLOBAL_LABEL,
}
_LABEL_KEY = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Needed:
    """A network or a named volume the container uses; ``node`` when written ``node/name``."""

    kind: str  # "network" or "volume"
    name: str
    node: str | None = None

    def __str__(self) -> str:
        return f"{self.node}/{self.name}" if self.node else self.name


def _note(found: dict[str, Needed], kind: str, ref: str) -> str:
    """Record ``ref`` (``name`` or ``node/name``) in ``found``; the plain name the engine must be given."""
    node, sep, name = ref.partition("/")
    if not (sep and node and name):
        node, name = "", ref
    seen = found.get(name)
    found[name] = Needed(kind, name, node or (seen.node if seen else None))
    return name


def _network_mode_is_name(mode: str) -> bool:
    return mode not in ("", "default", "bridge", "host", "none") and not mode.startswith("container:")


def take_networks(body: dict[str, Any]) -> list[Needed]:
    """The networks the create body joins, ``node/name`` refs rewritten in place to the plain name."""
    found: dict[str, Needed] = {}
    host = body.get("HostConfig")
    if isinstance(host, dict):
        mode = host.get("NetworkMode")
        if isinstance(mode, str) and _network_mode_is_name(mode):
            host["NetworkMode"] = _note(found, "network", mode)
    networking = body.get("NetworkingConfig")
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    if isinstance(networking, dict) and isinstance(endpoints, dict):
        networking["EndpointsConfig"] = {
            (_note(found, "network", str(ref)) if _network_mode_is_name(str(ref)) else str(ref)): endpoint
            for ref, endpoint in endpoints.items()
        }
    return list(found.values())


def _named_volume(source: object) -> bool:
    """A bind or mount source that names a volume rather than a host path."""
    return isinstance(source, str) and bool(source) and not source.startswith(("/", ".", "~"))


def take_volumes(body: dict[str, Any]) -> list[Needed]:
    """The named volumes the create body mounts (binds and mounts), ``node/name`` rewritten in place."""
    found: dict[str, Needed] = {}
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        return []
    binds = host.get("Binds")
    if isinstance(binds, list):
        for index, bind in enumerate(binds):
            source, sep, rest = str(bind).partition(":")
            if sep and _named_volume(source):
                binds[index] = f"{_note(found, 'volume', source)}:{rest}"
    mounts = host.get("Mounts")
    for mount in mounts if isinstance(mounts, list) else []:
        if isinstance(mount, dict) and mount.get("Type") == "volume" and _named_volume(mount.get("Source")):
            mount["Source"] = _note(found, "volume", mount["Source"])
    return list(found.values())


def label_list(labels: dict[str, str], key: str) -> list[str]:
    """A Swarm label's list: JSON (as Swarm writes it) or, leniently, one bare entry."""
    raw = labels.get(key)
    if raw is None or not raw.strip():
        return []
    if not raw.lstrip().startswith("["):
        return [raw.strip()]
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # json.loads raises RecursionError for "[[[[..." nested too deep
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ExpressionError(f'invalid label {key}={raw}: expected a JSON list of strings, e.g. ["node==node1"]')
    return value


def _spread_keys(values: list[str]) -> list[str]:
    """The engine labels to spread over, in order (``node`` for the node itself); :class:`ExpressionError` if bad."""
    keys = list(dict.fromkeys(v.strip() for v in values))
    for key in keys:
        if not _LABEL_KEY.fullmatch(key):
            raise ExpressionError(
                f"invalid spread {key!r}: expected an engine label's name (letters, digits, '.', '-', '_'), e.g. zone"
            )
    return keys


def _take_rules(body: dict[str, Any], labels: dict[str, str]) -> dict[str, list[str]]:
    """Swarm's rules, label -> entries: from the labels, and the ``-e`` entries taken out of ``Env``."""
    lists = {label: label_list(labels, label) for label in _ENV_KEYS.values() if label != GLOBAL_LABEL}
    lists[GLOBAL_LABEL] = [labels[GLOBAL_LABEL]] if GLOBAL_LABEL in labels else []  # true/false, not a list
    env: list[str] = []
    for entry in body.get("Env") or []:
        key, sep, value = str(entry).partition(":")
        if sep and key in _ENV_KEYS:
            lists[_ENV_KEYS[key]].append(value)
        else:
            env.append(entry)
    if body.get("Env") is not None:
        body["Env"] = env
    return lists


def _policy(values: list[str]) -> str:
    """The one reschedule policy given (``off`` if none); :class:`ExpressionError` for several or an unknown one."""
    policies = list(dict.fromkeys(p.strip() for p in values))
    if len(policies) > 1:
        raise ExpressionError(f"too many reschedule policies: {', '.join(policies)} (give one)")
    if policies and policies[0] not in (ON_NODE_FAILURE, OFF):
        raise ExpressionError(f"invalid reschedule policy {policies[0]!r}: expected on-node-failure or off")
    return policies[0] if policies else OFF


def _is_global(values: list[str]) -> bool:
    """``global:true`` (one copy on every node that passes the filters) or ``false``; ExpressionError else."""
    said = set(v.strip().lower() for v in values)
    if said - {"true", "false"} or len(said) > 1:
        raise ExpressionError(f"invalid global {', '.join(values)!r}: expected true or false")
    return said == {"true"}


def is_global(labels: dict[str, str]) -> bool:
    """Whether a container's labels (or a listing line's) say it is a copy of a global container."""
    return str(labels.get(GLOBAL_LABEL, "")).strip().lower() == "true"


def sibling_key(image: str, labels: dict[str, str]) -> tuple[str, ...]:
    """What makes containers siblings for ``spread``: one compose service (of one project), else one image."""
    service = labels.get(COMPOSE_SERVICE)
    if service:
        return ("service", labels.get(COMPOSE_PROJECT, ""), service)
    bare = image.rsplit("/", 1)[-1]
    return ("image", image if "@" in image or ":" in bare or not image else f"{image}:latest")


def _resources(host: dict[str, Any], config: dict[str, Any]) -> tuple[float, int, frozenset[int]]:
    """CPUs, memory and pinned CPUs reserved: ``--cpus`` (NanoCpus) or ``-c`` shares (1024 = one
    CPU), at least one CPU per CPU of ``--cpuset-cpus``; ``-m``; the CPUs of ``--cpuset-cpus``.

    The same reading as :meth:`Engine.reserved`, so what a container asks
    for here is what it is counted for once it runs. A cpuset dockerd could
    not read is refused here, in dockerd's words, before any node is chosen.
    """
    nano = int(host.get("NanoCpus") or 0)
    shares = int(host.get("CpuShares") or config.get("CpuShares") or 0)
    try:
        cpuset = parse_cpuset(str(host.get("CpusetCpus") or ""))
    except CpusetError as exc:
        raise ExpressionError(str(exc)) from None
    cpus = max(nano / 1e9 if nano else shares / 1024, float(len(cpuset)))
    memory = int(host.get("Memory") or config.get("Memory") or 0)
    return cpus, memory, cpuset


@dataclass
class ContainerRequest:
    """What the scheduler needs to know about a container, read once from its create body."""

    #: The create body as it goes to the engine: Swarm's env entries moved into labels.
    body: dict[str, Any]
    constraints: list[Expression] = field(default_factory=list)
    affinities: list[Expression] = field(default_factory=list)
    reschedule: str = OFF
    cpus: float = 0.0
    memory: int = 0
    #: The CPUs it is pinned to (``--cpuset-cpus``); they count in ``cpus`` too.
    cpuset: frozenset[int] = frozenset()
    #: Networks and named volumes it uses (the body already names them plainly).
    networks: list[Needed] = field(default_factory=list)
    volumes: list[Needed] = field(default_factory=list)
    #: Engine labels to spread over (``-e spread:zone``): fewest siblings first, before the strategy's order.
    spread: list[str] = field(default_factory=list)
    #: Networks the placer may move to the chosen node (empty ones the scheduler placed; see Placer).
    may_move: frozenset[str] = frozenset()
    #: Networks and volumes no healthy node has, as the failed node had them ("network" or "volume", its
    #: record): the placer makes them on the chosen node first (a container rescheduled from that node).
    missing: tuple[tuple[str, dict[str, Any]], ...] = ()

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ContainerRequest:
        """Read a ``POST /containers/create`` body; :class:`ExpressionError` for a malformed rule."""
        if not isinstance(body, dict):
            raise ExpressionError("the container configuration must be a JSON object")
        body = copy.deepcopy(body)
        if "" in ((body.get("HostConfig") or {}).get("VolumesFrom") or []):  # dockerd's check, before scheduling
            raise ExpressionError("volumes-from specification cannot be an empty string")
        labels: dict[str, str] = dict(body.get("Labels") or {})
        lists = _take_rules(body, labels)
        constraints = parse_all(lists[CONSTRAINTS_LABEL], "constraint")
        affinities = parse_all(lists[AFFINITIES_LABEL], "affinity")
        policy = _policy(lists[RESCHEDULE_LABEL])
        copies = _is_global(lists.pop(GLOBAL_LABEL))
        if copies and policy == ON_NODE_FAILURE:
            raise ExpressionError("a global container is not rescheduled: it has a copy on every node (drop one)")
        for label, values in lists.items():
            if values:
                labels[label] = json.dumps(values, separators=(",", ":"))
        if copies:
            labels[GLOBAL_LABEL] = "true"
        else:
            labels.pop(GLOBAL_LABEL, None)
        labels.setdefault(ID_LABEL, secrets.token_hex(32))
        body["Labels"] = labels
        cpus, memory, cpuset = _resources(body.get("HostConfig") or {}, body)
        networks, volumes = take_networks(body), take_volumes(body)
        spread = _spread_keys(lists[SPREAD_LABEL])
        return cls(body, constraints, affinities, policy, cpus, memory, cpuset, networks, volumes, spread)

    # -- what the filters look at ---------------------------------------------------
    @property
    def host_config(self) -> dict[str, Any]:
        return dict(self.body.get("HostConfig") or {})

    @property
    def image(self) -> str:
        return str(self.body.get("Image") or "")

    @property
    def runtime(self) -> str:
        """The OCI runtime asked for (``--runtime``), "" for the engine's default."""
        return str(self.host_config.get("Runtime") or "")

    @property
    def swarm_id(self) -> str:
        return str(self.body["Labels"][ID_LABEL])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("Labels") or {})

    @property
    def is_global(self) -> bool:
        """One copy on every node that passes its filters (``-e global:true``)."""
        return is_global(self.labels)

    def copy(self) -> ContainerRequest:
        """The same container with a Swarm ID of its own: one copy of a global container."""
        body = copy.deepcopy(self.body)
        body["Labels"][ID_LABEL] = secrets.token_hex(32)
        return ContainerRequest.from_body(body)

    @cached_property
    def siblings(self) -> tuple[str, ...]:
        """Which containers count as its siblings for ``spread`` (:func:`sibling_key`)."""
        return sibling_key(self.image, self.labels)

    @cached_property
    def ports(self) -> list[tuple[str, str, str]]:
        """Host ports asked for: ``(port/proto, host IP, host port)``; in host networking, the exposed ports."""
        return requested_ports(self.body, self.host_config)

    @cached_property
    def dependencies(self) -> list[tuple[str, str]]:
        """Containers that must share the node: ``(flag as the user wrote it, container name)``."""
        host = self.host_config
        found: list[tuple[str, str]] = []
        for entry in host.get("VolumesFrom") or []:
            found.append((f"--volumes-from={entry}", str(entry).split(":", 1)[0]))
        for entry in host.get("Links") or []:
            found.append((f"--link={entry}", str(entry).split(":", 1)[0].lstrip("/")))
        for flag, mode_key in (("--net", "NetworkMode"), ("--pid", "PidMode"), ("--ipc", "IpcMode")):
            mode = str(host.get(mode_key) or "")
            if mode.startswith("container:"):
                found.append((f"{flag}={mode}", mode.removeprefix("container:")))
        return found

    @property
    def wants_resources(self) -> bool:
        return self.cpus > 0 or self.memory > 0


def requested_ports(config: dict[str, Any], host: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The host ports a container (create body or inspect ``Config``) binds, for the port filter."""
    if str(host.get("NetworkMode") or "") == "host":
        return [(str(port), "", str(port).split("/", 1)[0]) for port in config.get("ExposedPorts") or {}]
    found = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or []:
            host_port = str((binding or {}).get("HostPort") or "")
            if host_port:
                found.append((str(port), str(binding.get("HostIp") or ""), host_port))
    return found
