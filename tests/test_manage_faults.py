"""Engine faults under the manager: a node killed (SIGKILL) or hung (SIGSTOP) while it holds containers.

Real dockerd nodes, the real docker CLI as the client. A killed node's
containers stay listed ("Host Down") and their names stay taken; a hung
node turns Unhealthy, and a create sent to it is answered, naming it,
instead of hanging. Every node a test kills or stops is resumed or started
again in its ``finally``, so the next test finds the cluster whole.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, api, managing

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

#: Short deadlines, so that a hung node is found out in seconds (the defaults are for real clusters).
FAST = ("--engine-failure-retry", "2", "--engine-timeout", "2s")
BOTH = {"fnode1": "Healthy", "fnode2": "Healthy"}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes([dk.DockerNode(f"fnode{n}") for n in (1, 2)], tmp_path_factory.mktemp("image")) as made:
        yield made


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Iterator[Manager]:
    with managing(tmp_path_factory.mktemp("manager"), nodes, *FAST) as made:
        yield made


@pytest.fixture
def clean(manager: Manager, nodes: list[dk.DockerNode]) -> Iterator[None]:
    """After the test: every node back in service, every container removed."""
    yield
    for node in nodes:
        if node.process is None or not node.process.running:
            node.start()
    manager.wait_nodes(BOTH)
    manager.remove_containers()


def listed(manager: Manager, *flags: str) -> dict[str, str]:
    """``docker ps`` through the manager: ``node/name`` -> its STATUS column."""
    out = manager.ok("ps", *flags, "--format", "{{.Names}}\t{{.Status}}")
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def create_status(manager: Manager, name: str) -> tuple[int, str]:
    """``POST /containers/create?name=NAME`` as any client sends it: status and message."""
    body = json.dumps({"Image": dk.IMAGE, "Cmd": ["true"]}).encode()
    status, _, answer = api(manager.addr, "POST", f"/v1.41/containers/create?name={name}", body)
    return status, str((answer or {}).get("message", ""))


def test_killed_node_keeps_its_containers_and_names(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    victim = nodes[1]
    manager.ok("run", "-d", "--name", "kept-up", "-e", "constraint:node==fnode2", dk.IMAGE, "sleep", "600")
    manager.ok("create", "--name", "kept-down", "-e", "constraint:node==fnode2", dk.IMAGE, "true")
    manager.ok("run", "-d", "--name", "elsewhere", "-e", "constraint:node==fnode1", dk.IMAGE, "sleep", "600")

    victim.kill()
    manager.wait_nodes({"fnode1": "Healthy", "fnode2": "Unhealthy"})

    every = listed(manager, "-a")
    assert every["fnode2/kept-up"] == "Host Down" and every["fnode2/kept-down"] == "Host Down"
    assert every["fnode1/elsewhere"].startswith("Up")
    # Without -a, as Go Swarm: what was running when the node was last seen, marked Host Down.
    assert listed(manager) == {"fnode2/kept-up": "Host Down", "fnode1/elsewhere": every["fnode1/elsewhere"]}
    assert "fnode2/kept-up" in listed(manager, "-a", "--filter", "status=running")

    # Their names stay taken, with dockerd's conflict message; the CLI says so in one line.
    for name in ("kept-up", "kept-down"):
        status, message = create_status(manager, name)
        assert status == 409, message
        assert message == f'Conflict. The container name "/{name}" is already in use.'
    refused = manager.docker("create", "--name", "kept-up", dk.IMAGE, "true")
    assert refused.returncode != 0 and "is already in use" in refused.stderr

    # Inspect answers from the cache, naming the node.
    assert manager.ok("inspect", "-f", "{{.Node.Name}} {{.Name}}", "kept-up").split() == ["fnode2", "/kept-up"]
    # What needs the node is refused at once, naming it.
    down = manager.docker("logs", "kept-up", timeout=30)
    assert down.returncode != 0 and "fnode2" in down.stderr and "unhealthy" in down.stderr, down.stderr
    # A new container without a name goes to the node that answers.
    fresh = manager.ok("run", "-d", dk.IMAGE, "sleep", "600").strip()
    assert manager.ok("inspect", "-f", "{{.Node.Name}}", fresh).strip() == "fnode1"

    victim.start()
    manager.wait_nodes(BOTH)
    every = listed(manager, "-a")
    assert every["fnode2/kept-up"].startswith("Exited") and every["fnode2/kept-down"].startswith("Created")
    for name in ("kept-up", "kept-down"):
        assert manager.ok("inspect", "-f", "{{.Node.Name}}", name).strip() == "fnode2"
        assert create_status(manager, name)[0] == 409


def test_hung_node_turns_unhealthy_and_creates_do_not_hang(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    victim = nodes[1]
    assert victim.process is not None and victim.process.proc is not None
    pid = victim.process.proc.pid  # dockerd itself (unshare and sh exec it): its containerd runs on
    manager.ok("run", "-d", "--name", "on-frozen", "-e", "constraint:node==fnode2", dk.IMAGE, "sleep", "600")
    os.kill(pid, signal.SIGSTOP)
    try:
        # A create the scheduler must put on the hung node: answered with the reason, not after the resume.
        sent = manager.docker(
            "create", "--name", "on-hung", "-e", "constraint:node==fnode2", dk.IMAGE, "true", timeout=30
        )
        assert sent.returncode != 0
        assert "fnode2" in sent.stderr and "did not answer" in sent.stderr, sent.stderr
        assert "Traceback" not in sent.stderr

        manager.wait_nodes({"fnode1": "Healthy", "fnode2": "Unhealthy"}, timeout=60)
        # Now every create goes to the node that answers.
        for _ in range(3):
            cid = manager.ok("run", "-d", dk.IMAGE, "sleep", "600").strip()
            assert manager.ok("inspect", "-f", "{{.Node.Name}}", cid).strip() == "fnode1"
        assert listed(manager, "-a")["fnode2/on-frozen"] == "Host Down"
        # Its containers' logs are refused at once, naming it, rather than waiting for the node.
        logs = manager.docker("logs", "on-frozen", timeout=30)
        assert logs.returncode != 0 and "fnode2" in logs.stderr and "unhealthy" in logs.stderr, logs.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    manager.wait_nodes(BOTH)


def test_create_is_tried_on_the_next_node_when_the_first_refuses_connections(
    manager: Manager, nodes: list[dk.DockerNode], tmp_path: Path, clean: None
) -> None:
    """A node that refuses connections (dead, not yet Unhealthy) never received the create: the next one gets it."""
    victim = nodes[1]
    victim.kill()
    # At once, before the manager has noticed: spread may choose fnode2 first; fnode1 takes it.
    for _ in range(2):
        cid = manager.ok("run", "-d", dk.IMAGE, "sleep", "600").strip()
        assert manager.ok("inspect", "-f", "{{.Node.Name}}", cid).strip() == "fnode1"


def test_chaos_engine_faults_fail_no_unrelated_call(tmp_path: Path) -> None:
    """bench/chaos_manager.py's part (a), smaller: a node killed, then hung, under docker CLI load.

    Calls about the faulty node (its container's logs, a create sent there before it
    was found out) may fail; no other call may.
    """
    from bench.chaos_manager import chaos_engines

    rows = chaos_engines(tmp_path, workers=3, hold=3.0)
    assert [row.fault for row in rows] == ["kill", "hang"]
    for row in rows:
        assert row.unrelated_failed == 0, row.examples
        assert row.calls > row.about_node > 0


def test_chaos_primary_killed_loses_only_calls_in_flight(tmp_path: Path) -> None:
    """bench/chaos_manager.py's part (b), smaller: no call sent to the replica after the kill fails."""
    from bench.chaos_manager import chaos_replication

    row = chaos_replication(tmp_path, workers=3, hold=3.0)
    assert row.failed_after_kill == 0, row.examples
    assert row.calls > 0
