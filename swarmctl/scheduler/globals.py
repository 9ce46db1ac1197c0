"""Global containers (``-e global:true``): one copy on every node that passes the container's filters.

Each copy has the container's name on its node (``docker ps`` lists
``node1/NAME``, ``node2/NAME``...) and a Swarm ID of its own: the copies are
not one container rescheduled, and the rescheduler must not take one for
the old copy of another. What makes them one global container is the name
and the label ``com.docker.swarm.global=true``. They are found through a
per-engine index of the global containers' names, rebuilt only when that
engine's cache changes, so finding every copy costs one look-up per node.

A node that turns Healthy (one that joins, or comes back) gets a copy of
every global container it lacks and whose filters it passes, made from the
configuration of a copy on another node (and started if that one runs).
Only that node: a node that comes back with a copy of a global container
removed meanwhile does not make it again everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .request import is_global

if TYPE_CHECKING:
    from ..cluster.engine import Engine


def global_names(engine: Engine) -> dict[str, str]:
    """Name -> ID of the global containers' copies on ``engine`` (kept until its cache changes)."""
    names: dict[str, str] = engine.memo("globals", lambda: _global_names(engine))
    return names


def _global_names(engine: Engine) -> dict[str, str]:
    found: dict[str, str] = {}
    for cid, line in engine.containers.items():
        if is_global(line.get("Labels") or {}):
            for name in line.get("Names") or []:
                if "/" not in (plain := str(name).lstrip("/")):
                    found[plain] = cid
    return found


def copies_of(engines: Iterable[Engine], name: str) -> list[tuple[Engine, str]]:
    """Every copy of the global container ``name``: (engine, container ID), in the engines' order."""
    return [(engine, cid) for engine in engines if (cid := global_names(engine).get(name)) is not None]


def own_name(line: dict[str, object]) -> str:
    """A listed container's own name (``web``), not the ``/other/alias`` names links add; "" if none."""
    names = line.get("Names")
    for name in names if isinstance(names, list) else []:
        if "/" not in (plain := str(name).lstrip("/")):
            return plain
    return ""
