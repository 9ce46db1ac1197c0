"""``manage --metrics-addr``: Prometheus figures of a manager in front of real dockerd nodes.

Scraped as Prometheus scrapes them (plain HTTP GET, the text format parsed
with prometheus_client's own parser) and checked against what ``docker
info`` and ``docker ps`` say through the same manager: after creates, after
a placement no node can take, and after a node dies.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import docker as dk
from tests.support.manager import Manager, managing
from tests.support.process import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes([dk.DockerNode(f"mnode{n}") for n in (1, 2)], tmp_path_factory.mktemp("image")) as made:
        yield made


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def manager(
    tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode], metrics_port: int
) -> Iterator[Manager]:
    extra = ("--metrics-addr", f"tcp://127.0.0.1:{metrics_port}", "--engine-failure-retry", "2")
    with managing(tmp_path_factory.mktemp("manager"), nodes, *extra) as made:
        yield made


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, keyed by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")  # Prometheus text format
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def running_per_node(manager: Manager) -> dict[str, int]:
    """``docker ps`` through the manager: how many running containers each node has."""
    counts: dict[str, int] = {}
    for line in manager.ok("ps", "--format", "{{.Names}}").splitlines():
        node = line.split("/", 1)[0]
        counts[node] = counts.get(node, 0) + 1
    return counts


def test_figures_follow_creates_refusals_and_a_dead_node(
    manager: Manager, nodes: list[dk.DockerNode], metrics_port: int
) -> None:
    before = scrape(metrics_port)
    assert value(before, "swarmctl_nodes", state="healthy") == 2
    placed = value(before, "swarmctl_scheduler_decisions_total", outcome="placed", reason="")

    manager.ok("run", "-d", "--name", "m1", "-m", "64m", "-e", "constraint:node==mnode1", dk.IMAGE, "sleep", "600")
    manager.ok("run", "-d", "--name", "m2", "-e", "constraint:node==mnode2", dk.IMAGE, "sleep", "600")
    refused = manager.docker("run", "-d", "-e", "constraint:node==nowhere", dk.IMAGE, "true")
    assert refused.returncode != 0

    def settled() -> bool:
        samples = scrape(metrics_port)
        return all(
            value(samples, "swarmctl_containers", node=node, state="running") == count
            for node, count in running_per_node(manager).items()
        )

    wait_for(settled, 20, "the running containers docker ps lists")
    samples = scrape(metrics_port)
    assert value(samples, "swarmctl_scheduler_decisions_total", outcome="placed", reason="") == placed + 2
    assert value(samples, "swarmctl_scheduler_decisions_total", outcome="refused", reason="constraint") >= 1
    assert value(samples, "swarmctl_node_reserved_memory_bytes", node="mnode1") == 64 * 1024 * 1024
    assert value(samples, "swarmctl_node_memory_bytes", node="mnode1") > 0
    assert value(samples, "swarmctl_node_cpus", node="mnode2") >= 1
    assert value(samples, "swarmctl_http_request_duration_seconds_count", route="containers.create") >= 3
    assert value(samples, "swarmctl_discovery_updates_total") >= 1
    assert value(samples, "swarmctl_replication_primary") == 1
    total = value(samples, "swarmctl_http_request_duration_seconds_count", route="system.info")
    assert value(samples, "swarmctl_http_request_duration_seconds_bucket", route="system.info", le="+Inf") == total

    nodes[1].kill()
    try:
        manager.wait_nodes({"mnode1": "Healthy", "mnode2": "Unhealthy"})  # what docker info says
        samples = scrape(metrics_port)
        assert value(samples, "swarmctl_nodes", state="healthy") == 1
        assert value(samples, "swarmctl_nodes", state="unhealthy") == 1
        assert value(samples, "swarmctl_engine_refresh_errors_total", node="mnode2") >= 2
    finally:
        nodes[1].start()
        manager.wait_nodes({"mnode1": "Healthy", "mnode2": "Healthy"})
        manager.remove_containers()


def test_a_scrape_has_no_per_container_label(manager: Manager, metrics_port: int) -> None:
    for name, labels in scrape(metrics_port):
        assert not {key for key, _ in labels} & {"container", "id", "name"}, name
