"""``-e spread:zone``: a new container goes where its siblings are fewest among a label's values.

On real Engine objects whose caches hold what a refresh reads (the helpers
of test_scheduler.py); through dockerd and the docker CLI in
test_scheduler_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from swarmctl.cluster.engine import Engine
from swarmctl.scheduler import ExpressionError, Scheduler, nodes_of
from swarmctl.scheduler.request import SPREAD_LABEL
from tests.test_scheduler import container, engine, place, request

SERVICE = "com.docker.compose.service"


def zones(*names: str, **containers: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[Engine]:
    """Nodes node1, node2... in the zones given, with the containers given by node name."""
    return [
        engine(f"node{n}", labels={"zone": zone}, containers=containers.get(f"node{n}", []))
        for n, zone in enumerate(names, 1)
    ]


def test_spread_rules_are_read_from_env_and_labels() -> None:
    wanted = request(Env=["spread:zone", "A=1"], Labels={SPREAD_LABEL: '["rack"]'})
    assert wanted.spread == ["rack", "zone"]
    assert wanted.body["Env"] == ["A=1"]
    assert wanted.body["Labels"][SPREAD_LABEL] == '["rack","zone"]'
    assert request(Labels={SPREAD_LABEL: "zone"}).spread == ["zone"]
    with pytest.raises(ExpressionError, match="invalid spread 'zone==z1': expected an engine label's name"):
        request(Env=["spread:zone==z1"])


def test_siblings_are_one_image_or_one_compose_service() -> None:
    assert request(Image="redis").siblings == request(Image="redis:latest").siblings
    assert request(Image="redis:7").siblings != request(Image="redis").siblings
    web = request(Image="a", Labels={SERVICE: "web", "com.docker.compose.project": "p"})
    assert web.siblings == request(Image="b", Labels={SERVICE: "web", "com.docker.compose.project": "p"}).siblings
    assert web.siblings != request(Image="a", Labels={SERVICE: "web", "com.docker.compose.project": "q"}).siblings


def test_four_replicas_over_zones_z1_z1_z2() -> None:
    """Without the rule, spread puts 3 of 4 in z1; with it, 2 go to z2."""
    engines = zones("z1", "z1", "z2")
    chosen = []
    for n in range(4):
        first = place(engines, request(Env=["spread:zone"]))[0]
        chosen.append(first)
        target = next(e for e in engines if e.name == first)
        summary, inspect = container(f"r{n}")
        target.containers[summary["Id"]], target.inspects[summary["Id"]] = summary, inspect
        target.generation += 1  # as a refresh does: the node's snapshot is read again
    assert chosen == ["node1", "node3", "node2", "node3"]


def test_other_images_do_not_count_and_the_strategy_orders_each_zone() -> None:
    engines = zones(
        "z1",
        "z1",
        "z2",
        node1=[container("a")],
        node3=[container("other", image="redis:7"), container("b", image="redis:7")],
    )
    # One sibling in z1, none in z2: node3 first, though it holds more containers; then z1 in spread's order.
    assert place(engines, request(Env=["spread:zone"])) == ["node3", "node2", "node1"]
    assert place(engines, request(Env=["spread:zone"], Image="redis:7")) == ["node2", "node1", "node3"]


def test_nodes_without_the_label_are_a_place_of_their_own_and_node_is_the_node() -> None:
    engines = [*zones("z1", node1=[container("a")]), engine("bare", containers=[container("b"), container("c")])]
    assert place(engines, request(Env=["spread:zone"])) == ["node1", "bare"]
    assert place(engines, request(Env=["spread:node"])) == ["node1", "bare"]
    assert place(engines, request(Env=["spread:zone"], Image="redis:7")) == ["node1", "bare"]


def test_spread_comes_after_constraints_and_soft_rules() -> None:
    engines = zones("z1", "z1", "z2", node3=[container("a")])
    assert place(engines, request(Env=["spread:zone", "constraint:zone==z2"])) == ["node3"]
    # The soft rule cannot be met (no z3): dropped, and the spread still holds.
    assert place(engines, request(Env=["spread:zone", "constraint:zone==~z3"])) == ["node1", "node2", "node3"]


def test_nested_keys_and_the_reason_given() -> None:
    engines = [
        engine("a1", labels={"zone": "z1", "rack": "r1"}, containers=[container("x")]),
        engine("a2", labels={"zone": "z1", "rack": "r2"}),
        engine("b1", labels={"zone": "z2", "rack": "r1"}, containers=[container("y")]),
        engine("b2", labels={"zone": "z2", "rack": "r1"}),
    ]
    wanted = request(Env=["spread:zone", "spread:rack"])
    ranked, why = Scheduler().choose(wanted, nodes_of(engines))
    # One sibling in each zone; within z1 rack r2 has none, within z2 rack r1 has one.
    assert [n.name for n in ranked] == ["a2", "b2", "a1", "b1"]
    assert why.spread == "spread over zone, rack: z1/r2 0 siblings, z2/r1 1 sibling, z1/r1 1 sibling"
    assert why.text("a2", 1, 4).startswith("spread: a2 ranked 1 of 4 candidates; spread over zone, rack: z1/r2 0")


def test_pending_creates_are_siblings_too() -> None:
    """Two replicas created at once do not both go to the emptier zone."""
    engines = zones("z1", "z2")
    first = request(Env=["spread:zone"])
    assert [n.name for n in Scheduler().select(first, nodes_of(engines, {engines[0].addr: [first]}))] == [
        "node2",
        "node1",
    ]
