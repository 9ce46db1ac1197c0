"""Spread over an engine label (``-e spread:zone``): a new container goes where its siblings are fewest.

Swarm's strategies spread containers over nodes, but not over what nodes
share: with nodes in zones z1, z1, z2, ``spread`` puts two of three replicas
in z1, and losing z1 loses both. With ``spread:zone`` the candidates (the
nodes that passed the filters) are grouped by their ``zone`` label, and the
groups with the fewest siblings of the new container (same compose service,
else same image; on the cluster's healthy nodes, stopped ones too) come
first, each group in the strategy's order; nodes without the label form one
group of their own. Several keys (``spread:zone``, ``spread:rack``) nest:
the fewest in the zone first, then the fewest in the rack within it.
``node`` is the node itself (one per node, as far as they go).

This is an order, not a filter: it never refuses a container, and it comes
after the image and local-volume preferences (a rule the user wrote counts
more than a pull saved).
"""

from __future__ import annotations

from collections import Counter

from .node import Node
from .request import ContainerRequest

Place = tuple[str, ...]


def _value(node: Node, key: str) -> str:
    return node.name if key == "node" else node.labels.get(key, "")


def _place(node: Node, keys: list[str]) -> Place:
    return tuple(_value(node, key) for key in keys)


def spread_over(request: ContainerRequest, ranked: list[Node], everyone: list[Node]) -> tuple[list[Node], str]:
    """``ranked`` with the places that have fewest siblings first, and why in words ("" if no spread asked)."""
    keys = request.spread
    if not keys or not ranked:
        return ranked, ""
    counts: Counter[Place] = Counter()
    for node in everyone:
        found = node.siblings(request.siblings) if node.healthy else 0
        if found:
            place = _place(node, keys)
            for depth in range(1, len(keys) + 1):
                counts[place[:depth]] += found
    depths = range(1, len(keys) + 1)

    def fewest(node: Node) -> tuple[int, ...]:
        place = _place(node, keys)
        return tuple(counts[place[:depth]] for depth in depths)

    ordered = sorted(ranked, key=fewest)  # stable: each place keeps the strategy's order
    return ordered, _said(keys, ordered, counts)


def _said(keys: list[str], ordered: list[Node], counts: Counter[Place]) -> str:
    """``spread over zone: z2 1 sibling, z1 2 siblings``: the candidates' places, fewest first."""
    places = list(dict.fromkeys(_place(node, keys) for node in ordered))
    shown = [
        f"{'/'.join(v or f'(no {k})' for k, v in zip(keys, place, strict=True))} {_siblings(counts[place])}"
        for place in places[:5]
    ]
    more = f" and {len(places) - 5} more" if len(places) > 5 else ""
    return f"spread over {', '.join(keys)}: {', '.join(shown)}{more}"


def _siblings(n: int) -> str:
    return f"{n} sibling" if n == 1 else f"{n} siblings"
