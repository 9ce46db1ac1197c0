"""Placing new containers: which node gets ``docker run``, as Docker Swarm placed them.

A :class:`Scheduler` is a list of filters (:mod:`.filters`: which nodes may
take the container) and a strategy (:mod:`.strategies`: in which order to
try them). Rules come with the container (:mod:`.request`: constraints and
affinities written in Swarm's expression language, :mod:`.expressions`) and
are checked against each node's cached state (:mod:`.node`), never with a
round trip, so a decision among a thousand nodes takes milliseconds.
:mod:`.placement` then creates the container on the first candidate that
accepts it, and :mod:`.reschedule` creates again, through the same placer,
the containers of a failed node that ask for it.

Soft rules (``==~``) are preferences: the filters run once with them and, if
no node is left, once more without them.

A container that asks to be spread over an engine label (``-e spread:zone``)
is tried first where its siblings are fewest (:mod:`.spreading`), before
the strategy's own order and the preferences below.

Among equally good candidates, nodes that already have the image come
first: the create succeeds there without a pull; and before them, nodes
where another container already uses a local volume the new one mounts: a
volume of the ``local`` driver is one directory per node, and containers
that share one (a writer, then a reader) share its data only on one node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..counters import Counts
from .errors import NoNodeError, NoResourcesError
from .expressions import ExpressionError
from .filters import DEFAULT_FILTERS, FILTERS, FilterFn, lacks
from .node import Node
from .request import ContainerRequest
from .spreading import spread_over
from .strategies import STRATEGIES

if TYPE_CHECKING:
    from ..cluster.engine import Engine

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "STRATEGIES",
    "ContainerRequest",
    "ExpressionError",
    "NoNodeError",
    "NoResourcesError",
    "Node",
    "Scheduler",
    "Why",
    "nodes_of",
]


DECISIONS = Counts(
    "swarmctl_scheduler_decisions_total",
    "Placement decisions: placed, or refused for the filter (or the resource) no node passed.",
    ("outcome", "reason"),
)


class Scheduler:
    """A strategy and filters, applied to a container request and the cluster's nodes."""

    def __init__(self, strategy: str = "spread", filters: Iterable[str] | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        names = list(dict.fromkeys(DEFAULT_FILTERS if filters is None else filters))
        unknown = [name for name in names if name not in FILTERS]
        if unknown:
            raise ValueError(f"unknown filter {unknown[0]!r}: expected some of {', '.join(FILTERS)}")
        self.strategy = strategy
        self.filters = names
        self._rank = STRATEGIES[strategy]
        self._filters = [FILTERS[name] for name in names]

    def select(self, request: ContainerRequest, nodes: list[Node]) -> list[Node]:
        """Every node that may take the container, best first; :class:`NoNodeError` saying why if none."""
        return self.choose(request, nodes)[0]

    def choose(self, request: ContainerRequest, nodes: list[Node]) -> tuple[list[Node], Why]:
        """:meth:`select`, and why: the strategy, and which nodes each filter ruled out."""
        try:
            chosen = self._select_all(request, nodes)
        except NoNodeError as exc:
            DECISIONS.add("refused", exc.reason)
            raise
        DECISIONS.add("placed", "")
        return chosen

    def _select_all(self, request: ContainerRequest, nodes: list[Node]) -> tuple[list[Node], Why]:
        if not nodes:
            raise NoNodeError("No healthy node available in the cluster", reason="health")
        request = _known_networks_only(request, nodes)
        try:
            return self._select(request, nodes, soft=True)
        except NoNodeError:
            if not any(e.soft for e in request.constraints + request.affinities):
                raise
        # The soft rules cannot all be met: place the container as if they were not there.
        ranked, why = self._select(request, nodes, soft=False)
        return ranked, replace(why, soft_dropped=True)

    def _select(self, request: ContainerRequest, nodes: list[Node], soft: bool) -> tuple[list[Node], Why]:
        #: (node, the filter that ruled it out, the nodes that filter kept): reasons are written only if needed.
        ruled_out: list[RuledOut] = []
        everyone = nodes
        for name, keep in zip(self.filters, self._filters, strict=True):
            try:
                kept = keep(request, nodes, soft)
            except NoNodeError as exc:
                reasons = _explain(keep, request, ruled_out, soft)
                raise type(exc)(f"{exc} {reasons}" if reasons else str(exc), reason=name) from None
            if len(kept) != len(nodes):
                still = {id(n) for n in kept}
                ruled_out += [(n, name, kept) for n in nodes if id(n) not in still]
            nodes = kept
        ranked = self._rank(request, nodes)
        if request.image:
            ranked = _first(ranked, lambda n: n.has_image(request.image))
        local = [need.name for need in request.volumes]
        if local:  # stronger than the image: the data is there
            ranked = _first(ranked, lambda n: any(name in n.local_volumes_in_use for name in local))
        ranked, spread = spread_over(request, ranked, everyone)
        by_filter: dict[str, list[str]] = {}
        for node, name, _ in ruled_out:
            by_filter.setdefault(name, []).append(node.name)
        return ranked, Why(self.strategy, {name: tuple(names) for name, names in by_filter.items()}, spread=spread)


@dataclass(frozen=True)
class Why:
    """Why a container's candidates are what they are: for the dashboard's placement reasons."""

    strategy: str
    #: Filter name -> the nodes it ruled out, in the filters' order.
    ruled_out: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The soft rules (``==~``) could not all be met, so the container was placed without them.
    soft_dropped: bool = False
    #: How a spread rule ordered the candidates (``spread over zone: z2 0 siblings, z1 1 sibling``), if any.
    spread: str = ""

    def text(self, node: str, rank: int, of: int) -> str:
        """In words, for the container placed on ``node``, the ``rank``-th of ``of`` candidates."""
        said = f"{self.strategy}: {node} ranked {rank} of {of} candidate{'s' if of != 1 else ''}"
        if self.spread:
            said += f"; {self.spread}"
        if self.soft_dropped:
            said += "; soft rules dropped (no node met them all)"
        for name, nodes in self.ruled_out.items():
            shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
            said += f"; {name} ruled out {shown}"
        return said


def _first(ranked: list[Node], preferred: Callable[[Node], bool]) -> list[Node]:
    """``ranked`` with the nodes that are ``preferred`` first, each part in its order."""
    if len(ranked) < 2:
        return ranked
    chosen = [n for n in ranked if preferred(n)]
    if not chosen or len(chosen) == len(ranked):
        return ranked
    ids = {id(n) for n in chosen}
    return chosen + [n for n in ranked if id(n) not in ids]


def _known_networks_only(request: ContainerRequest, nodes: list[Node]) -> ContainerRequest:
    """The request without the networks no node has: as on one engine, the container is created
    anyway and its start fails with the engine's "network X not found"."""
    known = [need for need in request.networks if any(need.name in n.network_names for n in nodes)]
    return request if len(known) == len(request.networks) else replace(request, networks=known)


#: Why a filter ruled a node out, for messages.
_WHY = {
    "health": "is not healthy",
    "port": "has the port in use",
    "containerslots": "has no free container slot",
    "affinity": "does not meet an affinity",
    "constraint": "does not meet a constraint",
}


def _why(name: str, request: ContainerRequest, node: Node, kept: list[Node]) -> str:
    if name == "dependency":
        return lacks(request, node, kept)
    return _WHY[name]


RuledOut = tuple[Node, str, list[Node]]


def _explain(keep: FilterFn, request: ContainerRequest, ruled_out: list[RuledOut], soft: bool) -> str:
    """What to add to a filter's refusal: the nodes that would pass it but an earlier filter ruled out.

    "no node satisfies node==node1" is puzzling when node1 exists; "(node1
    meets it but has no free container slot)" says what to do. Empty when
    there is nothing to add.
    """
    if not ruled_out:
        return ""
    try:
        would = {id(n) for n in keep(request, [n for n, _, _ in ruled_out], soft)}
    except NoNodeError:
        return ""
    passing = [entry for entry in ruled_out if id(entry[0]) in would]
    if not passing:
        return ""
    reasons = [f"{n.name} meets it but {_why(name, request, n, kept)}" for n, name, kept in passing[:3]]
    more = f"; and {len(passing) - 3} more" if len(passing) > 3 else ""
    return f"({'; '.join(reasons)}{more})"


def nodes_of(engines: Iterable[Engine], pending: dict[str, list[ContainerRequest]] | None = None) -> list[Node]:
    """The schedulable nodes among ``engines`` (those that have answered once), with pending creates counted."""
    found = []
    for engine in engines:
        if not engine.info:  # Pending: nothing is known of its size yet
            continue
        node = Node.of(engine)
        if pending:
            node = node.plus(pending.get(engine.addr) or [])
        found.append(node)
    return found
