"""A node as the scheduler sees it: totals, what its containers reserve, names, ports, images.

Read from the engine's cache (no round trip), and kept per engine until the
engine's ``generation`` changes, so that placing a container among a
thousand nodes does not re-add every node's containers each time. The parts
only some filters need (container names, ports) are computed on first use.

Containers being created right now (*pending*: chosen, not yet in the
engine's cache) are added on top with :meth:`Node.plus`, so that two
``docker run`` at once cannot both take the last slot, port or gigabyte.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..cluster.engine import image_matches
from ..cluster.resources import movable, networks_of
from .request import ContainerRequest, requested_ports, sibling_key

if TYPE_CHECKING:
    from ..cluster.engine import Engine


def _proto(port: str) -> str:
    return port.split("/", 1)[1] if "/" in port else "tcp"


@dataclass
class Node:
    """One engine's schedulable state (a snapshot; cheap to copy)."""

    #: Weak, so that the snapshot cache does not keep engines that left the cluster alive.
    ref: weakref.ReferenceType[Engine]
    name: str
    id: str
    healthy: bool
    labels: dict[str, str]
    total_cpus: float
    total_memory: int
    used_cpus: float
    used_memory: int
    container_count: int
    #: Requests placed here but not yet in the engine's cache.
    pending: tuple[ContainerRequest, ...] = ()
    _has_image: dict[str, bool] = field(default_factory=dict, repr=False)
    _labels: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, engine: Engine) -> Node:
        """The engine's node, reused while its cache is unchanged."""
        cached = _CACHE.get(engine)
        if cached is not None and cached[0] == engine.generation:
            return cached[1]
        cpus, memory = engine.reserved()
        node = cls(
            ref=weakref.ref(engine),
            name=engine.name,
            id=engine.id,
            healthy=engine.healthy,
            labels=engine.labels,
            total_cpus=float(engine.ncpu),
            total_memory=engine.memory,
            used_cpus=cpus,
            used_memory=memory,
            container_count=len(engine.containers),
        )
        _CACHE[engine] = (engine.generation, node)
        return node

    def plus(self, pending: list[ContainerRequest]) -> Node:
        """This node with ``pending`` requests counted as if they were already its containers."""
        if not pending:
            return self
        return replace(
            self,
            used_cpus=self.used_cpus + sum(r.cpus for r in pending),
            used_memory=self.used_memory + sum(r.memory for r in pending),
            container_count=self.container_count + len(pending),
            pending=self.pending + tuple(pending),
            _has_image=self._has_image,
            _labels=self._labels,
        )

    @property
    def engine(self) -> Engine:
        engine = self.ref()
        if engine is None:  # cannot happen while the cluster that scheduled it holds it
            raise ReferenceError(f"node {self.name} is gone")
        return engine

    # -- container facts, each read when a filter first asks (affinity, dependency, port) ------------
    @cached_property
    def container_names(self) -> frozenset[str]:
        """Every name and ID a container here answers to (name, ``node/name``, full and short ID)."""
        found: set[str] = set()
        for cid, summary in self.engine.containers.items():
            names = _names(summary)
            found.update((cid, cid[:12], *names, *(f"{self.name}/{n}" for n in names)))
        return frozenset(found)

    def has_container(self, ref: str) -> bool:
        """Whether ``ref`` (name, ``node/name``, ID or an ID prefix of 12+ characters) is a container here."""
        ref = ref.lstrip("/")
        if ref in self.container_names:
            return True
        return len(ref) >= 12 and bool(self.engine.container_ids_with_prefix(ref, limit=1))

    def container_labels(self, key: str) -> list[str]:
        """The values of label ``key`` on the containers here (those that have it), kept with the snapshot."""
        known = self._labels.get(key)
        if known is None:
            known = self._labels[key] = [
                str(labels[key])
                for summary in self.engine.containers.values()
                if key in (labels := summary.get("Labels") or {})
            ]
        return known

    def siblings(self, key: tuple[str, ...]) -> int:
        """How many containers here (and creates in flight) are siblings by ``key`` (:func:`sibling_key`).

        Counted for all of the node's containers once per change of its cache, so a decision
        looks one number up per node.
        """
        counts: Counter[tuple[str, ...]] = self.engine.memo("siblings", self._sibling_counts)
        return counts[key] + sum(1 for request in self.pending if request.siblings == key)

    def _sibling_counts(self) -> Counter[tuple[str, ...]]:
        return Counter(
            sibling_key(str(summary.get("Image") or ""), summary.get("Labels") or {})
            for summary in self.engine.containers.values()
        )

    @cached_property
    def used_ports(self) -> set[tuple[str, str, str]]:
        """``(protocol, host IP, host port)`` taken here, by bindings or host networking, stopped containers too."""
        ports: set[tuple[str, str, str]] = set()
        for cid in self.engine.containers:
            inspect: dict[str, Any] = self.engine.inspects.get(cid) or {}
            host = inspect.get("HostConfig") or {}
            config = inspect.get("Config") or {}
            ports |= {(_proto(port), ip, host_port) for port, ip, host_port in requested_ports(config, host)}
            # A port the engine picked itself (-p 80) is only in NetworkSettings.
            for port, bindings in ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).items():
                for binding in bindings or []:
                    if binding and binding.get("HostPort"):
                        ports.add((_proto(port), str(binding.get("HostIp") or ""), str(binding["HostPort"])))
        for request in self.pending:
            ports |= {(_proto(port), ip, host_port) for port, ip, host_port in request.ports}
        return ports

    @cached_property
    def image_names(self) -> frozenset[str]:
        """Every way to name an image here: IDs (with and without ``sha256:``, short), ``repo:tag``, ``repo``."""
        found: set[str] = set()
        for image in self.engine.images:
            image_id = str(image.get("Id", ""))
            bare = image_id.removeprefix("sha256:")
            found.update((image_id, bare, bare[:12]))
            for tag in image.get("RepoTags") or []:
                if tag and tag != "<none>:<none>":
                    found.update((tag, tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag))
        return frozenset(found)

    @cached_property
    def network_names(self) -> frozenset[str]:
        """Every network this node sees (local ones and multi-host ones), by name and by ID."""
        return frozenset(str(v) for n in self.engine.networks for v in (n.get("Name"), n.get("Id")) if v)

    @cached_property
    def runtimes(self) -> frozenset[str]:
        """The OCI runtimes the engine knows (``dockerd --add-runtime``), from its ``/info``."""
        return frozenset(str(name) for name in self.engine.info.get("Runtimes") or {})

    @cached_property
    def volume_names(self) -> frozenset[str]:
        return frozenset(str(v["Name"]) for v in self.engine.volumes)

    @cached_property
    def local_volumes_in_use(self) -> frozenset[str]:
        """Volumes of the ``local`` driver that a container here mounts (stopped ones too): their data is here."""
        return frozenset().union(*(facts.local_volumes for facts in self.engine.inspects.facts()))

    @cached_property
    def movable_networks(self) -> frozenset[str]:
        """Local networks here that may follow their first container to another node (``resources.movable``),
        less those a container being created here right now will use."""
        found = {n.name for n in networks_of([self.engine]) if movable(n)}
        for request in self.pending:
            found -= {need.name for need in request.networks}
        return frozenset(found)

    @cached_property
    def pinned_cpus(self) -> frozenset[int]:
        """CPUs a container here (or being created here) is pinned to (``--cpuset-cpus``): taken whole."""
        return self.engine.pinned_cpus().union(*(request.cpuset for request in self.pending))

    @property
    def cpu_ids(self) -> range:
        """The CPUs the node has, by number, as ``--cpuset-cpus`` names them (``NCPU`` of them, from 0)."""
        return range(int(self.total_cpus))

    def has_image(self, ref: str) -> bool:
        """Whether the image is here; remembered with the snapshot, as ``docker run`` repeats images."""
        if not ref:
            return False
        known = self._has_image.get(ref)
        if known is None:
            known = self._has_image[ref] = image_matches(self.engine, ref)
        return known


def _names(summary: dict[str, Any]) -> list[str]:
    """A container's own names (``/web``), without the ``/other/alias`` names links add."""
    return [name for n in summary.get("Names") or [] if "/" not in (name := str(n).lstrip("/"))]


#: Engine -> (its generation, its node); weak so that engines that leave are forgotten.
_CACHE: weakref.WeakKeyDictionary[Engine, tuple[int, Node]] = weakref.WeakKeyDictionary()
