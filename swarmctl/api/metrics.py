"""``/metrics``: the manager in Prometheus' text format, served on its own address (``--metrics-addr``).

Two kinds of figures, written by ``prometheus_client``:

- what the layers counted as it happened (``swarmctl/counters.py``):
  scheduling decisions and refusals by reason, creates retried on another
  node, request times by route family, engine refreshes, their errors and
  event-stream reconnects, discovery updates, leader changes;
- what the cluster is now, read when scraped: nodes by state, containers by
  node and state, CPUs and memory per node (total and reserved), the
  replication role. Per-node figures are taken from each engine's memo, so
  a scrape costs work only for the engines that changed since the last one.

Labels stay bounded at 1,000 nodes: a node's name is the widest label, and
no figure is per container. It is its own aiohttp app on its own listener,
not a route of the Docker API: a replica answers it itself (its requests are
not relayed to the primary), and the API's hot paths carry nothing of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..cluster.engine import HEALTHY, PENDING, UNHEALTHY, Engine
from ..counters import ALL, Counts, Timings
from .context import Manager

#: The container states dockerd reports, each written for every node (0 when it has none).
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


class ManagerCollector:
    """Every figure of one manager, made when ``prometheus_client`` collects (at each scrape)."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        yield from _counted()
        yield from self._nodes()
        yield from self._per_node()
        yield self._role()

    def _nodes(self) -> Iterator[Metric]:
        engines = list(self.manager.cluster.engines.values())
        states = Counter(engine.state for engine in engines)
        nodes = GaugeMetricFamily("swarmctl_nodes", "Nodes the manager knows, by state.", labels=["state"])
        for state in (PENDING, HEALTHY, UNHEALTHY):
            nodes.add_metric([state.lower()], states.get(state, 0))
        yield nodes

    def _per_node(self) -> Iterator[Metric]:
        containers = GaugeMetricFamily(
            "swarmctl_containers", "Containers by node and state (as last seen).", labels=["node", "state"]
        )
        cpus = GaugeMetricFamily("swarmctl_node_cpus", "CPUs of a node.", labels=["node"])
        reserved_cpus = GaugeMetricFamily(
            "swarmctl_node_reserved_cpus", "CPUs its containers reserve (-c, --cpus).", labels=["node"]
        )
        memory = GaugeMetricFamily("swarmctl_node_memory_bytes", "Memory of a node.", labels=["node"])
        reserved_memory = GaugeMetricFamily(
            "swarmctl_node_reserved_memory_bytes", "Memory its containers reserve (-m).", labels=["node"]
        )
        for engine in self.manager.cluster.engines.values():
            name = engine.name
            states = _states(engine)
            for state in CONTAINER_STATES:
                containers.add_metric([name, state], states.get(state, 0))
            used_cpus, used_memory = engine.reserved()
            cpus.add_metric([name], engine.ncpu)
            reserved_cpus.add_metric([name], used_cpus)
            memory.add_metric([name], engine.memory)
            reserved_memory.add_metric([name], used_memory)
        yield from (containers, cpus, reserved_cpus, memory, reserved_memory)

    def _role(self) -> Metric:
        role = GaugeMetricFamily(
            "swarmctl_replication_primary", "1 on the primary (or a manager without --replication), 0 on a replica."
        )
        manager = self.manager
        role.add_metric([], 1 if not manager.replicated or manager.role.primary else 0)
        return role


def _states(engine: Engine) -> Counter[str]:
    """How many of the engine's containers are in each state, counted again only when they changed."""
    counted: Counter[str] = engine.memo(
        "metrics:states", lambda: Counter(str(c.get("State") or "").lower() for c in engine.containers.values())
    )
    return counted


def _counted() -> Iterator[Metric]:
    """What the layers counted (counters.py), as Prometheus counters and histograms."""
    for kept in ALL:
        if isinstance(kept, Counts):
            family: Metric = CounterMetricFamily(kept.name, kept.help, labels=list(kept.labels))
            for values, amount in sorted(kept.values.items()):
                family.add_metric(list(values), amount)  # type: ignore[attr-defined]
        else:
            family = _histogram(kept)
        yield family


def _histogram(kept: Timings) -> Metric:
    family = HistogramMetricFamily(kept.name, kept.help, labels=list(kept.labels))
    for values, series in sorted(kept.values.items()):
        family.add_metric(list(values), buckets=series.cumulative(), sum_value=series.total)
    return family


def metrics_app(manager: Manager) -> web.Application:
    """An app that answers ``GET /metrics`` (and nothing else) for ``manager``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app
