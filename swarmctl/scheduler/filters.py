"""Filters: which nodes may take a container at all (``manage --filter``).

Each filter keeps the nodes that pass and raises :class:`NoNodeError`, naming
what could not be met, when none does; they run in the order given (Swarm's
default order: health, port, containerslots, dependency, affinity,
constraint), so the message is the first requirement no node meets.

``soft`` says whether soft expressions (``==~``/``!=~``) count in this pass:
the scheduler first tries with them and, if that leaves no node, again
without them, which is what makes them preferences.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .errors import NoNodeError
from .expressions import Expression
from .node import Node
from .request import ContainerRequest, Needed

FilterFn = Callable[[ContainerRequest, list[Node], bool], list[Node]]


def health(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """Only nodes that answer (Healthy): a Pending or Unhealthy node would fail the create."""
    kept = [n for n in nodes if n.healthy]
    if not kept:
        raise NoNodeError("No healthy node available in the cluster")
    return kept


def _binds_all(ip: str) -> bool:
    return ip in ("", "0.0.0.0", "::")


def _clash(wanted: tuple[str, str, str], used: set[tuple[str, str, str]]) -> bool:
    proto, ip, port = wanted
    return any(
        u_proto == proto and u_port == port and (u_ip == ip or _binds_all(ip) or _binds_all(u_ip))
        for u_proto, u_ip, u_port in used
    )


def port(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """A host port is used once per node: by a binding (``-p 8080:80``) or host networking (``--net host``).

    Stopped containers keep their ports, as in Swarm: starting them again must not fail.
    """
    for container_port, ip, host_port in request.ports:
        proto = container_port.split("/", 1)[1] if "/" in container_port else "tcp"
        wanted = (proto, ip, host_port)
        nodes = [n for n in nodes if not _clash(wanted, n.used_ports)]
        if not nodes:
            where = f"{ip}:" if ip else ""
            raise NoNodeError(f"unable to find a node with port {where}{host_port}/{proto} available")
    return nodes


def containerslots(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """Nodes labelled ``containerslots=N`` take at most N containers (stopped ones count)."""
    kept = []
    for node in nodes:
        slots = node.labels.get("containerslots")
        try:
            limit = int(slots) if slots is not None else None
        except ValueError:
            limit = None  # not a number: no limit, as in Swarm
        if limit is None or node.container_count < limit:
            kept.append(node)
    if not kept:
        raise NoNodeError("no node has a free container slot (every node is at its containerslots label)")
    return kept


def dependency(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """Next to what the container uses: another container's volumes, link, network, PID or IPC
    namespace; a local network (wherever it is, unless the placer may move it); a named volume
    (among the nodes that hold it, anywhere if none does: the engine makes it); an OCI runtime
    (among the engines that know it; if none does, the engine's own refusal says so)."""
    wanted = request.dependencies
    if wanted:
        nodes = [n for n in nodes if all(n.has_container(name) for _, name in wanted)]
        if not nodes:
            flags = " ".join(flag for flag, _ in wanted)
            raise NoNodeError(f"unable to find a node fulfilling all dependencies: {flags}")
    for need in request.networks:
        nodes = _pinned(need, nodes)
        if need.name not in request.may_move:
            nodes = [n for n in nodes if need.name in n.network_names]
            if not nodes:
                raise NoNodeError(f"unable to find a node with the network {need}")
    for need in request.volumes:
        nodes = _pinned(need, nodes)
        holders = [n for n in nodes if need.name in n.volume_names]
        nodes = holders or nodes
    if request.runtime:
        nodes = [n for n in nodes if request.runtime in n.runtimes] or nodes
    return nodes


def _pinned(need: Needed, nodes: list[Node]) -> list[Node]:
    """The nodes a ``node/name`` reference allows (all of them for a plain name)."""
    if need.node is None:
        return nodes
    kept = [n for n in nodes if need.node in (n.name, n.id)]
    if not kept:
        raise NoNodeError(f"unable to find the node {need.node} of the {need.kind} {need}")
    return kept


def lacks(request: ContainerRequest, node: Node, others: list[Node]) -> str:
    """What ``node`` lacks of what the container uses, and where it is: for refusals that name both nodes."""
    for _, name in request.dependencies:
        if not node.has_container(name):
            return f"does not have the container {name}"
    for need in request.networks:
        if need.node not in (None, node.name, node.id) or (
            need.name not in request.may_move and need.name not in node.network_names
        ):
            where = sorted(n.name for n in others if need.name in n.network_names)
            return f"does not have the network {need}" + (f" (it is on {', '.join(where)})" if where else "")
    for need in request.volumes:
        if need.node not in (None, node.name, node.id) or need.name not in node.volume_names:
            where = sorted(n.name for n in others if need.name in n.volume_names)
            return f"does not have the volume {need}" + (f" (it is on {', '.join(where)})" if where else "")
    if request.runtime and request.runtime not in node.runtimes:
        return f"does not have the runtime {request.runtime}"
    return "lacks something the container uses"


def _apply(
    expressions: list[Expression],
    nodes: list[Node],
    soft: bool,
    subject: Callable[[Expression, Node], Collection[str]],
) -> list[Node]:
    for expression in expressions:
        if expression.soft and not soft:
            continue
        nodes = [n for n in nodes if expression.holds(subject(expression, n))]
        if not nodes:
            raise NoNodeError(f"unable to find a node that satisfies the {expression.kind} {expression}")
    return nodes


def _node_subject(expression: Expression, node: Node) -> list[str]:
    if expression.key == "node":
        return [node.name, node.id]
    value = node.labels.get(expression.key)
    # A node without the label has nothing to match: != holds, == does not.
    return [] if value is None else [value]


def constraint(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """``node`` (name or ID) and engine labels: ``dockerd --label``s, storagedriver, operatingsystem..."""
    return _apply(request.constraints, nodes, soft, _node_subject)


def _affinity_subject(expression: Expression, node: Node) -> Collection[str]:
    if expression.key == "container":
        return node.container_names
    if expression.key == "image":
        return node.image_names
    return node.container_labels(expression.key)


def affinity(request: ContainerRequest, nodes: list[Node], soft: bool) -> list[Node]:
    """Next to (or away from) a container, an image, or containers with a label."""
    return _apply(request.affinities, nodes, soft, _affinity_subject)


#: Every filter by name, in Swarm's default order.
FILTERS: dict[str, FilterFn] = {
    "health": health,
    "port": port,
    "containerslots": containerslots,
    "dependency": dependency,
    "affinity": affinity,
    "constraint": constraint,
}
DEFAULT_FILTERS = list(FILTERS)
