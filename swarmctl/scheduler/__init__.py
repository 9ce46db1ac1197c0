"""Placing new containers: which node gets ``docker run``.

The spread strategy picks the node with the fewest containers, then the least
reserved CPU and memory relative to its size. Nodes that already have the
image are preferred, so ``docker run`` does not need a pull where one node
has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.context import Manager
    from ..cluster.engine import Engine


class NoNodeError(Exception):
    """No node can take the container; the message says why."""


def choose_engine(manager: Manager, config: dict[str, Any]) -> Engine:
    candidates = manager.cluster.healthy()
    if not candidates:
        raise NoNodeError("No healthy node available in the cluster")
    image = str(config.get("Image") or "")
    with_image = [e for e in candidates if image and _has_image(e, image)]
    if with_image:
        candidates = with_image
    return min(candidates, key=_spread_rank)


def _has_image(engine: Engine, image: str) -> bool:
    from ..cluster.cluster import image_matches

    return image_matches(engine, image)


def _spread_rank(engine: Engine) -> tuple[int, float, str]:
    cpus, memory = engine.reserved()
    load = max(cpus / engine.ncpu if engine.ncpu else 0.0, memory / engine.memory if engine.memory else 0.0)
    return len(engine.containers), load, engine.name
