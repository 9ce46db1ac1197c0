"""Networks and volumes across nodes: what one name means in the whole cluster.

A name means one thing in the cluster, so every reference is resolved here,
from the engines' caches, the same way for listing, inspecting, removing,
connecting and scheduling:

- **Networks.** A network with a multi-host scope (``global``, ``swarm``) is
  one network seen from several nodes, with the same ID on each. A local
  network lives on one node. ``node/name`` names the local network ``name`` of
  that node; a plain name (or an ID, or an ID prefix) must name one network:
  the ``bridge``, ``host`` and ``none`` every node has are several networks
  with one name, so they are told apart as ``node/bridge``.
- **Volumes.** A plain volume name is one volume wherever it exists (the
  manager creates a plain name on every node, as Docker Swarm did), so it
  resolves to every node holding it; ``node/name`` is that node's copy.

Networks and volumes cannot have a ``/`` in their names (the engine refuses
them), so ``node/name`` is never a name of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .engine import Engine, EngineError

log = logging.getLogger("swarmctl.cluster")

#: Network modes that are not a network's name: every node has them, or they point at a container.
BUILTIN_NETWORK_MODES = frozenset({"", "default", "bridge", "host", "none"})
#: The networks an engine makes itself; they cannot be removed and exist on every node.
PREDEFINED_NETWORKS = frozenset({"bridge", "host", "none", "ingress", "docker_gwbridge"})
MULTI_HOST_SCOPES = frozenset({"global", "swarm"})
#: On a local network whose node the scheduler chose (``docker network create`` with a plain name and no
#: rule of the user's): while no container uses it, it may follow its first container to another node.
SCHEDULED_LABEL = "com.docker.swarm.scheduled"


class LookupError_(Exception):
    """A reference that names no object (404) or several (ambiguous, 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def split_node(ref: str) -> tuple[str | None, str]:
    """``("node1", "web")`` for ``node1/web``; ``(None, "web")`` for a plain name."""
    node, sep, rest = ref.partition("/")
    return (node, rest) if sep and node else (None, ref)


def _on_node(engines: Iterable[Engine], node: str | None) -> list[Engine]:
    if node is None:
        return list(engines)
    return [e for e in engines if node in (e.name, e.addr)]


# -- networks ------------------------------------------------------------------------


def is_multi_host(network: dict[str, Any]) -> bool:
    return str(network.get("Scope") or "local") in MULTI_HOST_SCOPES


@dataclass
class Network:
    """One network of the cluster: its engine's record, and every node that sees it (one unless multi-host)."""

    data: dict[str, Any]
    holders: list[Engine]

    @property
    def id(self) -> str:
        return str(self.data["Id"])

    @property
    def name(self) -> str:
        return str(self.data["Name"])

    @property
    def multi_host(self) -> bool:
        return is_multi_host(self.data)

    @property
    def engine(self) -> Engine:
        """The node that answers for it (any holder, for a multi-host network)."""
        return self.holders[0]


def networks_of(engines: Iterable[Engine]) -> list[Network]:
    """Every network in the cluster once: multi-host ones merged by ID, local ones per node."""
    found: dict[tuple[str, str], Network] = {}
    for engine in engines:
        for data in engine.networks:
            key = (str(data["Id"]), "" if is_multi_host(data) else engine.addr)
            seen = found.get(key)
            if seen is None:
                found[key] = Network(data, [engine])
            else:
                seen.holders.append(engine)
    return list(found.values())


def shown_network_names(networks: list[Network]) -> dict[int, str]:
    """The name each network is listed under: plain where the cluster has one network of that name.

    Keys are ``id()`` of the :class:`Network` objects; where several networks
    share a name, each local one is shown as ``node/name``.
    """
    count: dict[str, int] = {}
    for network in networks:
        count[network.name] = count.get(network.name, 0) + 1
    return {id(n): n.name if count[n.name] == 1 or n.multi_host else f"{n.engine.name}/{n.name}" for n in networks}


def find_network(engines: Iterable[Engine], ref: str) -> Network:
    """The one network ``ref`` names (``node/name``, name, ID or ID prefix, in the engine's order)."""
    node, wanted = split_node(ref)
    networks = networks_of(_on_node(engines, node))
    for matches in (
        [n for n in networks if n.id == wanted],
        [n for n in networks if n.name == wanted],
        [n for n in networks if wanted and n.id.startswith(wanted)],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            nodes = sorted({n.engine.name for n in matches})
            hint = f"write <node>/{wanted}" if len(nodes) == len(matches) else "use its ID"
            raise LookupError_(
                409, f"network {ref} is ambiguous: {len(matches)} networks match it, on {', '.join(nodes)}; {hint}"
            )
    raise LookupError_(404, f"network {ref} not found")


def network_users(engine: Engine, network: Network) -> list[str]:
    """IDs of the containers on ``engine`` attached to ``network`` (stopped ones too: they rejoin on start)."""
    names = {network.name, network.id}
    found = []
    for cid, inspect in engine.inspects.items():
        attached = ((inspect.get("NetworkSettings") or {}).get("Networks") or {}).keys()
        mode = str((inspect.get("HostConfig") or {}).get("NetworkMode") or "")
        if mode in names or any(name in names for name in attached):
            found.append(cid)
    return found


def movable(network: Network) -> bool:
    """Whether ``network`` may follow its first container (see :data:`SCHEDULED_LABEL`): empty, local, scheduled."""
    labels = network.data.get("Labels") or {}
    if network.multi_host or labels.get(SCHEDULED_LABEL) != "true":
        return False
    return not any(network_users(engine, network) for engine in network.holders)


# -- volumes -------------------------------------------------------------------------


@dataclass
class Volume:
    """One volume name of the cluster and the nodes that hold it (each holder's record).

    The copies are kept in the order of their nodes' names, so that every
    answer about the volume (create, inspect, ls) shows the same node's copy.
    """

    name: str
    copies: list[tuple[Engine, dict[str, Any]]]

    def __post_init__(self) -> None:
        self.copies.sort(key=lambda copy: copy[0].name)

    @property
    def holders(self) -> list[Engine]:
        return [engine for engine, _ in self.copies]

    @property
    def nodes(self) -> list[str]:
        return sorted(e.name for e in self.holders)

    @property
    def data(self) -> dict[str, Any]:
        """The volume as one engine reports it, with where it exists (see :func:`with_nodes`)."""
        return with_nodes(self.copies[0][1], self.nodes)


def with_nodes(volume: dict[str, Any], nodes: list[str]) -> dict[str, Any]:
    """``volume`` with ``Status.Nodes``: the nodes holding it.

    ``Status`` (the driver's details) is what ``docker volume inspect``
    prints beside the volume's own fields, so that is where users see it.
    """
    return {**volume, "Status": {**(volume.get("Status") or {}), "Nodes": nodes}}


def volumes_of(engines: Iterable[Engine]) -> list[Volume]:
    """Every volume name in the cluster once, with the nodes that hold it."""
    found: dict[str, list[tuple[Engine, dict[str, Any]]]] = {}
    for engine in engines:
        for data in engine.volumes:
            found.setdefault(str(data["Name"]), []).append((engine, data))
    return [Volume(name, copies) for name, copies in found.items()]


def find_volume(engines: Iterable[Engine], ref: str) -> Volume:
    """The volume ``ref`` names: a plain name on every node that holds it, ``node/name`` on that node."""
    node, name = split_node(ref)
    copies = [(e, v) for e in _on_node(engines, node) for v in e.volumes if v["Name"] == name]
    if not copies:
        raise LookupError_(404, f"get {ref}: no such volume")
    return Volume(name, copies)


def volume_users(engine: Engine, name: str) -> list[str]:
    """IDs of the containers on ``engine`` that mount volume ``name`` (stopped ones too)."""
    found = []
    for cid, inspect in engine.inspects.items():
        for mount in inspect.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name") == name:
                found.append(cid)
                break
    return found


# -- moving an empty network -----------------------------------------------------------

#: What a network's inspect keeps of its create request (IPAM only by driver: see move_network).
_NETWORK_SETTINGS = ("Driver", "Options", "Internal", "Attachable", "EnableIPv6", "Labels")


async def move_network(network: Network, target: Engine) -> Network:
    """Make the empty local ``network`` exist on ``target`` instead of its node; the new network.

    The same name, driver, options and labels on ``target`` first, so that a
    refusal there leaves the old one untouched; then the old one goes. Its
    addresses are the engine's own choice (only networks created without an
    explicit subnet are moved), so the new node picks free ones.
    """
    source = network.engine
    new_id = await _create_like(network.data, target)
    async with source.request("DELETE", f"/networks/{network.id}") as response:
        gone = response.status < 300 or response.status == 404
        reason = _message(await response.read(), f"HTTP {response.status}")
    if not gone:  # somebody attached a container on the old node meanwhile: undo
        async with target.request("DELETE", f"/networks/{new_id}"):
            pass
        raise EngineError(f"network {network.name} is in use on {source.name}: {reason}")
    log.info("network %s moved from %s to %s, to follow its first container", network.name, source.name, target.name)
    await asyncio.gather(source.refresh_networks(), target.refresh_networks())
    return find_network([target], new_id)


async def _create_like(data: dict[str, Any], target: Engine) -> str:
    """A network like ``data`` (a network's inspect) on ``target``, addresses of its own choice; its ID."""
    body: dict[str, Any] = {key: data.get(key) for key in _NETWORK_SETTINGS}
    ipam = data.get("IPAM") or {}
    body.update(Name=data["Name"], CheckDuplicate=False, IPAM={"Driver": ipam.get("Driver") or "default"})
    async with target.request(
        "POST", "/networks/create", data=json.dumps(body), headers={"Content-Type": "application/json"}
    ) as response:
        answer = await response.read()
        if response.status != 201:
            raise EngineError(_message(answer, f"HTTP {response.status}"))
        return str(json.loads(answer)["Id"])


async def copy_network(data: dict[str, Any], target: Engine) -> None:
    """Make the local network ``data`` describes on ``target`` too (its node failed: a container follows it).

    The same name, driver, options and labels; the addresses are the new node's choice,
    as when a network moves.
    """
    await _create_like(data, target)
    await target.refresh_networks()


async def copy_volume(data: dict[str, Any], target: Engine) -> None:
    """Make the volume ``data`` describes (a ``/volumes`` record) on ``target``: same name, driver, options, labels.

    Its data stays on the failed node: what comes is the volume, as ``docker volume create`` makes it.
    """
    body = {
        "Name": data["Name"],
        "Driver": data.get("Driver") or "local",
        "DriverOpts": data.get("Options") or {},
        "Labels": data.get("Labels") or {},
    }
    async with target.request(
        "POST", "/volumes/create", data=json.dumps(body), headers={"Content-Type": "application/json"}
    ) as response:
        answer = await response.read()
        if response.status >= 300:
            raise EngineError(_message(answer, f"HTTP {response.status}"))
    await target.refresh_volumes()


def _message(body: bytes, default: str) -> str:
    try:
        return str(json.loads(body).get("message") or default)
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip() or default
