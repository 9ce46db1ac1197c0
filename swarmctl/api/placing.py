"""Where a network, a volume or a build goes: a named node, or the scheduler's candidates.

What is not a container is placed as a container without a configuration
would be: by the manager's strategy among the nodes its filters allow,
with the rules given as the labels ``com.docker.swarm.constraints`` (and
``affinities``) on the object, so that one placement logic serves all.
"""

from __future__ import annotations

from typing import Any

from ..cluster.engine import Engine
from ..scheduler import ContainerRequest, NoNodeError
from .context import Manager


def named_node(manager: Manager, node: str) -> Engine:
    """The healthy engine called ``node`` (its name or address); :class:`NoNodeError` if there is none."""
    engine = manager.cluster.by_name(node)
    if engine is None or not engine.healthy:
        raise NoNodeError(f"node {node} is not a healthy node of the cluster")
    return engine


def placement(manager: Manager, node: str | None, labels: Any) -> tuple[list[Engine], ContainerRequest]:
    """The engines that may take the object, best first, and its rules as the scheduler read them.

    ``node`` is the one from a ``node/name``; ``labels`` the object's labels
    (anything but a JSON object counts as none). :class:`ExpressionError`
    for a malformed rule, :class:`NoNodeError` when no node qualifies.
    """
    wanted = ContainerRequest.from_body({"Labels": dict(labels) if isinstance(labels, dict) else {}})
    if node is not None:
        return [named_node(manager, node)], wanted
    return manager.placer.candidates(manager.scheduler(), wanted), wanted
