"""Global containers end to end: one copy on every node that passes the filters, four real dockerd nodes.

node1..node3 are in the cluster from the start; node4 joins (its address
added to the discovery file) and gets the copies whose filters it passes;
then leaves, taking its copies with it. Read back as a user reads it,
through the manager with the docker CLI.

- node1, node3: disk=ssd; node2, node4: disk=hdd
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager
from tests.support.process import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

DISKS = {"node1": "ssd", "node2": "hdd", "node3": "ssd", "node4": "hdd"}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    made = [dk.DockerNode(name, labels={"disk": disk}) for name, disk in DISKS.items()]
    with dk.running_nodes(made, tmp_path_factory.mktemp("image")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Path:
    path = tmp_path_factory.mktemp("discovery") / "cluster"
    path.write_text("".join(f"{node.addr}\n" for node in nodes[:3]))
    return path


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, cluster_file: Path) -> Iterator[Manager]:
    made = Manager(tmp_path_factory.mktemp("manager"), f"file://{cluster_file}")
    try:
        made.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Healthy"})
        yield made
    finally:
        made.stop()


def copies(manager: Manager) -> dict[str, str]:
    """``node/name`` -> its state, for every container listed through the manager."""
    lines = manager.ok("ps", "-a", "--format", "{{.Names}}\t{{.State}}").splitlines()
    return dict(line.split("\t", 1) for line in lines)


def refused(manager: Manager, *args: str) -> str:
    result = manager.docker(*args)
    assert result.returncode != 0, f"docker {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr


def test_global_containers(manager: Manager, nodes: list[dk.DockerNode], cluster_file: Path) -> None:
    manager.ok("run", "-d", "-e", "global:true", "--name", "gg", dk.IMAGE, "sleep", "300")
    ssd = ("-e", "constraint:disk==ssd", "--label", "com.docker.swarm.global=true")
    manager.ok("create", "--name", "fast", *ssd, dk.IMAGE, "sleep", "300")
    # `docker run -d` started the copy create answered with: that starts every copy.
    assert copies(manager) == {
        "node1/gg": "running",
        "node2/gg": "running",
        "node3/gg": "running",
        "node1/fast": "created",
        "node3/fast": "created",
    }
    # What needs one answer asks for one copy, and says which there are.
    said = refused(manager, "logs", "gg")
    assert "gg is a global container, with a copy on each node: name one (node1/gg, node2/gg, node3/gg)" in said
    manager.ok("logs", "node2/gg")
    assert manager.ok("inspect", "-f", "{{.Node.Name}}", "node3/gg").strip() == "node3"
    # stop, start, kill and rm on the name act on every copy; node/NAME on one.
    manager.ok("stop", "-t", "0", "gg")
    assert {copies(manager)[f"node{n}/gg"] for n in (1, 2, 3)} == {"exited"}
    manager.ok("start", "gg")
    manager.ok("kill", "node2/gg")
    assert [copies(manager)[f"node{n}/gg"] for n in (1, 2, 3)] == ["running", "exited", "running"]
    manager.ok("start", "gg")  # the running copies are already so: not an error
    assert {copies(manager)[f"node{n}/gg"] for n in (1, 2, 3)} == {"running"}
    # A node that joins gets the copies whose filters it passes, running if they run.
    cluster_file.write_text("".join(f"{node.addr}\n" for node in nodes))
    manager.wait_nodes(dict.fromkeys(DISKS, "Healthy"))
    wait_for(lambda: copies(manager).get("node4/gg") == "running", 60, "node4/gg running", interval=0.3)
    assert "node4/fast" not in copies(manager)  # node4's disk is hdd
    manager.ok("rm", "-f", "gg")
    assert copies(manager) == {"node1/fast": "created", "node3/fast": "created"}
    # A node that leaves takes its copy with it.
    manager.ok("run", "-d", "-e", "global:true", "--name", "everywhere", dk.IMAGE, "sleep", "300")
    assert sorted(c for c in copies(manager) if c.endswith("/everywhere")) == [
        f"node{n}/everywhere" for n in range(1, 5)
    ]
    cluster_file.write_text("".join(f"{node.addr}\n" for node in nodes[:3]))
    wait_for(lambda: "node4/everywhere" not in copies(manager), 60, "node4 and its copy gone", interval=0.3)
    assert sorted(c for c in copies(manager) if c.endswith("/everywhere")) == [
        f"node{n}/everywhere" for n in range(1, 4)
    ]
    manager.ok("rm", "-f", "everywhere", "fast")
    assert copies(manager) == {}


def test_global_containers_refused(manager: Manager) -> None:
    assert "a global container needs a name (--name)" in refused(
        manager, "create", "-e", "global:true", dk.IMAGE, "true"
    )
    said = refused(manager, "create", "--name", "xx", "-e", "global:maybe", dk.IMAGE, "true")
    assert "invalid global 'maybe': expected true or false" in said
    both = refused(
        manager, "create", "--name", "xx", "-e", "global:true", "-e", "reschedule:on-node-failure", dk.IMAGE, "true"
    )
    assert "a global container is not rescheduled" in both
    manager.ok("create", "--name", "taken", dk.IMAGE, "true")
    try:
        assert "is already in use" in refused(
            manager, "create", "--name", "taken", "-e", "global:true", dk.IMAGE, "true"
        )
    finally:
        manager.ok("rm", "taken")
