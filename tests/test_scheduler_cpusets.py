"""``--cpuset-cpus``: read as dockerd reads it, counted as reserved CPUs, checked against the CPUs a node has.

On real Engine objects whose caches hold what a refresh reads (the helpers
of test_scheduler.py); the same rules through dockerd and the docker CLI are
in test_scheduler_e2e.py.
"""

from __future__ import annotations

import pytest

from swarmctl.cluster.cpusets import CpusetError, cpuset_text, lenient_cpuset, parse_cpuset
from swarmctl.scheduler import ExpressionError, NoResourcesError, Scheduler, nodes_of
from swarmctl.scheduler.errors import NoNodeError
from tests.test_scheduler import GiB, container, engine, place, request


@pytest.mark.parametrize(
    ("text", "cpus", "written"),
    [
        ("", set(), ""),
        ("0", {0}, "0"),
        ("0-2,4", {0, 1, 2, 4}, "0-2,4"),
        ("3,1,2", {1, 2, 3}, "1-3"),
        ("1-1", {1}, "1"),
    ],
)
def test_cpusets_read_and_written(text: str, cpus: set[int], written: str) -> None:
    assert parse_cpuset(text) == cpus
    assert cpuset_text(cpus) == written


@pytest.mark.parametrize("text", ["abc", "1-0", "-1", "0,", ",0", "0-", "1--2", " 0", "0-99999", "²"])
def test_unreadable_cpusets_are_refused_in_dockerds_words(text: str) -> None:
    with pytest.raises(CpusetError) as caught:
        parse_cpuset(text)
    assert str(caught.value) == f"Invalid value {text} for cpuset cpus: invalid format: {text}"
    assert lenient_cpuset(text) == frozenset()
    with pytest.raises(ExpressionError, match="for cpuset cpus: invalid format"):
        request(HostConfig={"CpusetCpus": text})


def test_a_cpuset_reserves_its_cpus() -> None:
    pinned = request(HostConfig={"CpusetCpus": "0-1"})
    assert (pinned.cpus, pinned.cpuset) == (2.0, {0, 1})
    # --cpus asks for more than the set: the larger counts.
    assert request(HostConfig={"CpusetCpus": "0", "NanoCpus": 1_500_000_000}).cpus == 1.5
    # A container pinned to both CPUs of node1 leaves none there for --cpus 1.
    engines = [engine("node1", containers=[container("p", cpuset="0,1")]), engine("node2")]
    assert engines[0].reserved() == (2.0, 0)
    assert place(engines, request(HostConfig={"NanoCpus": 1_000_000_000})) == ["node2"]
    with pytest.raises(NoResourcesError, match="it reserves 1 CPU, and no node has that many free"):
        place(engines[:1], request(HostConfig={"NanoCpus": 1_000_000_000}))


def test_a_cpu_is_pinned_once_per_node() -> None:
    """Stopped containers keep their CPUs, as they keep their ports: starting them again must not fail."""
    engines = [
        engine("node1", ncpu=4, containers=[container("a", cpuset="0", state="exited")]),
        engine("node2", ncpu=4, containers=[container("b", cpuset="1-2")]),
    ]
    assert place(engines, request(HostConfig={"CpusetCpus": "0"})) == ["node2"]
    assert place(engines, request(HostConfig={"CpusetCpus": "3"})) == ["node1", "node2"]
    with pytest.raises(NoResourcesError) as caught:
        place(engines, request(HostConfig={"CpusetCpus": "0-1"}))
    assert str(caught.value) == (
        "no resources available to schedule container: it is pinned to CPUs 0-1 (--cpuset-cpus), and other "
        "containers are pinned to some of them on every node that has them (0 on node1, 1 on node2)"
    )
    assert caught.value.reason == "cpuset"


def test_a_cpuset_the_nodes_do_not_have_is_refused() -> None:
    engines = [engine("node1", ncpu=2), engine("node2", ncpu=4)]
    assert place(engines, request(HostConfig={"CpusetCpus": "3"})) == ["node2"]
    with pytest.raises(NoResourcesError) as caught:
        place(engines, request(HostConfig={"CpusetCpus": "2-4"}))
    assert str(caught.value) == (
        "no resources available to schedule container: it is pinned to CPUs 2-4 (--cpuset-cpus), "
        "and no node has them (the most is 4 CPUs, 0-3, on node2)"
    )


def test_cpus_shares_and_memory_beyond_the_node_are_refused() -> None:
    engines = [engine("node1", ncpu=2, memory=4 * GiB)]
    for host, says in [
        ({"NanoCpus": 3_000_000_000}, "it reserves 3 CPUs, and no node has that many free (the most is 2 CPUs"),
        ({"CpuShares": 4096}, "it reserves 4 CPUs"),
        ({"Memory": 5 * GiB}, "it reserves 5 GiB of memory, and no node has that much free (the most is 4 GiB"),
    ]:
        with pytest.raises(NoResourcesError, match=says.replace("(", r"\(")):
            place(engines, request(HostConfig=host))


def test_pending_creates_hold_their_cpus() -> None:
    """Two ``docker run --cpuset-cpus 0`` at once cannot both take CPU 0 of the one node."""
    engines = [engine("node1")]
    first = request(HostConfig={"CpusetCpus": "0"})
    nodes = nodes_of(engines, {engines[0].addr: [first]})
    with pytest.raises(NoNodeError, match="pinned to some of them"):
        Scheduler().select(request(HostConfig={"CpusetCpus": "0"}), nodes)
    assert [n.name for n in Scheduler().select(request(HostConfig={"CpusetCpus": "1"}), nodes)] == ["node1"]
    assert not nodes_of(engines)[0].pinned_cpus  # the engine itself is unchanged
