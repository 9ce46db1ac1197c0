"""Strategies: the order in which the nodes that passed the filters are tried (``manage --strategy``).

Every strategy first drops the nodes that cannot hold what the container
reserves (``--cpus``/``-c``, ``-m``) next to what their containers already
reserve, and refuses the container, naming the resource, when none can. A
container pinned to CPUs (``--cpuset-cpus 0,1``) reserves those CPUs whole:
it counts as that many CPUs, and goes only to a node that has CPUs of those
numbers (``NCPU`` of them, numbered from 0) that no other container there is
pinned to, stopped ones included (starting them again must not fail). Then,
as in Swarm, each node is weighed by the share of its CPUs plus the share of
its memory that would be reserved with the container on it (whole percents,
so nodes that differ by a crumb count as equal):

- ``spread``: lightest first, then fewest containers: containers go where
  they disturb least, and a node lost takes few with it;
- ``binpack``: heaviest first, then most containers: fill the most used node
  that still fits, keeping whole nodes free for big containers;
- ``random``: any node that fits.

Ties are broken by node name, so placements are reproducible.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

from ..cluster.cpusets import cpuset_text
from .errors import NoResourcesError
from .node import Node
from .request import ContainerRequest

StrategyFn = Callable[[ContainerRequest, list[Node]], list[Node]]
_EPSILON = 1e-9


def size(n: float) -> str:
    """Bytes for people: ``10 GiB``, ``512 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def _cpus(n: float) -> str:
    return f"{n:g} CPU" if n == 1 else f"{n:g} CPUs"


def _cpu_fits(node: Node, request: ContainerRequest) -> bool:
    return request.cpus <= 0 or node.used_cpus + request.cpus <= node.total_cpus + _EPSILON


def _memory_fits(node: Node, request: ContainerRequest) -> bool:
    return request.memory <= 0 or node.used_memory + request.memory <= node.total_memory


def _cpuset_fits(node: Node, request: ContainerRequest) -> bool:
    """The node has every CPU the container is pinned to, and none of them is pinned already."""
    wanted = request.cpuset
    return not wanted or (max(wanted) < len(node.cpu_ids) and wanted.isdisjoint(node.pinned_cpus))


def fitting(request: ContainerRequest, nodes: list[Node]) -> list[Node]:
    """The nodes with room for the container; :class:`NoResourcesError` naming the resource if none."""
    if not request.wants_resources:
        return nodes
    kept = [n for n in nodes if _cpu_fits(n, request) and _memory_fits(n, request) and _cpuset_fits(n, request)]
    if kept or not nodes:
        return kept
    if not any(_cpuset_fits(n, request) for n in nodes):
        raise NoResourcesError(_cpuset_refusal(request, nodes), reason="cpuset")
    cpu_short, memory_short = _short(request, nodes)
    short = "cpu" if cpu_short and not memory_short else "memory" if memory_short and not cpu_short else "cpu+memory"
    raise NoResourcesError(_refusal(request, nodes), reason=short)


def _short(request: ContainerRequest, nodes: list[Node]) -> tuple[bool, bool]:
    """Whether no node has the CPUs, and whether no node has the memory, the container reserves."""
    return not any(_cpu_fits(n, request) for n in nodes), not any(_memory_fits(n, request) for n in nodes)


def _refusal(request: ContainerRequest, nodes: list[Node]) -> str:
    """Say which resource is short, how much the container wants and the most any node has free."""
    free_cpu = max(nodes, key=lambda n: (n.total_cpus - n.used_cpus, n.name))
    free_memory = max(nodes, key=lambda n: (n.total_memory - n.used_memory, n.name))
    cpu_short, memory_short = _short(request, nodes)
    cpu_text = f"{_cpus(max(free_cpu.total_cpus - free_cpu.used_cpus, 0))} free on {free_cpu.name}"
    memory_text = f"{size(max(free_memory.total_memory - free_memory.used_memory, 0))} free on {free_memory.name}"
    if memory_short and not cpu_short:
        return (
            f"no resources available to schedule container: it reserves {size(request.memory)} of memory, "
            f"and no node has that much free (the most is {memory_text})"
        )
    if cpu_short and not memory_short:
        return (
            f"no resources available to schedule container: it reserves {_cpus(request.cpus)}, "
            f"and no node has that many free (the most is {cpu_text})"
        )
    return (
        f"no resources available to schedule container: it reserves {_cpus(request.cpus)} and "
        f"{size(request.memory)} of memory, and no node has both free (the most CPUs: {cpu_text}; "
        f"the most memory: {memory_text})"
    )


def _cpuset_refusal(request: ContainerRequest, nodes: list[Node]) -> str:
    """Say why no node can take the CPUs the container is pinned to: no node has them, or they are pinned."""
    wanted = cpuset_text(request.cpuset)
    said = f"no resources available to schedule container: it is pinned to CPUs {wanted} (--cpuset-cpus)"
    having = [n for n in nodes if max(request.cpuset) < len(n.cpu_ids)]
    if not having:
        biggest = max(nodes, key=lambda n: (len(n.cpu_ids), n.name))
        shown = cpuset_text(biggest.cpu_ids) or "none"
        return f"{said}, and no node has them (the most is {_cpus(len(biggest.cpu_ids))}, {shown}, on {biggest.name})"
    taken = [f"{cpuset_text(request.cpuset & n.pinned_cpus)} on {n.name}" for n in having[:3]]
    more = f" and {len(having) - 3} more" if len(having) > 3 else ""
    where = ", ".join(taken) + more
    return f"{said}, and other containers are pinned to some of them on every node that has them ({where})"


def weight(node: Node, request: ContainerRequest) -> int:
    """Percent of the node's CPUs plus percent of its memory reserved with the container on it."""
    cpu = int(100 * (node.used_cpus + request.cpus) / node.total_cpus) if node.total_cpus else 0
    memory = int(100 * (node.used_memory + request.memory) / node.total_memory) if node.total_memory else 0
    return cpu + memory


def spread(request: ContainerRequest, nodes: list[Node]) -> list[Node]:
    return sorted(fitting(request, nodes), key=lambda n: (weight(n, request), n.container_count, n.name))


def binpack(request: ContainerRequest, nodes: list[Node]) -> list[Node]:
    return sorted(fitting(request, nodes), key=lambda n: (-weight(n, request), -n.container_count, n.name))


def random(request: ContainerRequest, nodes: list[Node]) -> list[Node]:
    kept = list(fitting(request, nodes))
    _random.shuffle(kept)
    return kept


STRATEGIES: dict[str, StrategyFn] = {"spread": spread, "binpack": binpack, "random": random}
