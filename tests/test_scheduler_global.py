"""``-e global:true`` read from the create body, and the index that finds a global container's copies.

The copies themselves, on real dockerd nodes, are in test_scheduler_global_e2e.py.
"""

from __future__ import annotations

import pytest

from swarmctl.scheduler import ExpressionError
from swarmctl.scheduler.globals import copies_of, global_names
from swarmctl.scheduler.request import GLOBAL_LABEL, ID_LABEL
from tests.test_scheduler import container, engine, request


def test_global_is_read_from_env_or_label() -> None:
    wanted = request(Env=["global:true", "A=1"])
    assert wanted.is_global and wanted.body["Env"] == ["A=1"] and wanted.labels[GLOBAL_LABEL] == "true"
    assert request(Labels={GLOBAL_LABEL: "true"}).is_global
    assert not request(Env=["global:false"]).is_global and GLOBAL_LABEL not in request(Env=["global:false"]).labels
    assert not request().is_global


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"Env": ["global:yes"]}, "invalid global 'yes': expected true or false"),
        ({"Env": ["global:true", "global:false"]}, "expected true or false"),
        ({"Env": ["global:true", "reschedule:on-node-failure"]}, "a global container is not rescheduled"),
    ],
)
def test_malformed_global_rules(body: dict[str, list[str]], says: str) -> None:
    with pytest.raises(ExpressionError, match=says):
        request(body)


def test_each_copy_has_its_own_swarm_id() -> None:
    """So the rescheduler never takes one copy for the old copy of another."""
    wanted = request(Env=["global:true", "constraint:disk==ssd"])
    copy = wanted.copy()
    assert copy.swarm_id != wanted.swarm_id
    assert copy.is_global and [str(c) for c in copy.constraints] == ["disk==ssd"]
    assert {k: v for k, v in copy.labels.items() if k != ID_LABEL} == {
        k: v for k, v in wanted.labels.items() if k != ID_LABEL
    }


def test_copies_are_found_by_name_on_each_node() -> None:
    mark = {GLOBAL_LABEL: "true"}
    engines = [
        engine("node1", containers=[container("agent", labels=mark), container("web")]),
        engine("node2", containers=[container("agent", labels=mark)]),
        engine("node3", containers=[container("agent")]),  # the same name, not a copy
    ]
    assert list(global_names(engines[0])) == ["agent"]
    assert [e.name for e, _ in copies_of(engines, "agent")] == ["node1", "node2"]
    assert copies_of(engines, "web") == []
