"""Replicated managers (``--replication``): one primary, replicas forwarding, takeover on failure."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager
from tests.support.process import wait_for
from tests.support.swarm import Join

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

TTL = "3s"


class Replica(Manager):
    """A manager with ``--replication --advertise`` its own address."""

    def __init__(self, workdir: Path, discovery: str) -> None:
        super().__init__(workdir, discovery, replication_ttl=TTL)

    def role(self) -> tuple[str, str]:
        info = self.info()
        return info.get("Role", ""), info.get("Primary", "")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes([dk.DockerNode(f"rnode{n}") for n in (1, 2)], tmp_path_factory.mktemp("image")) as made:
        yield made


@contextlib.contextmanager
def discovery_url(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite://{workdir}/kv.db"
        return
    from tests.support.etcd import single_etcd

    with single_etcd(workdir / "etcd") as etcd:
        yield f"{etcd.url}/swarm"


def roles(managers: list[Replica]) -> dict[str, tuple[str, str]]:
    return {m.addr: m.role() for m in managers}


def settled(managers: list[Replica]) -> Replica | None:
    """The primary, once exactly one manager is primary and every other names it."""
    seen = roles(managers)
    primaries = [m for m in managers if seen[m.addr][0] == "primary"]
    if len(primaries) != 1:
        return None
    leader = primaries[0].addr
    if all(seen[m.addr] == ("replica", leader) for m in managers if m is not primaries[0]):
        return primaries[0]
    return None


def wait_settled(managers: list[Replica], timeout: float = 60) -> Replica:
    found: list[Replica] = []

    def check() -> bool:
        primary = settled(managers)
        if primary is not None:
            found.append(primary)
        return primary is not None

    wait_for(check, timeout, f"one primary among {[m.addr for m in managers]}", interval=0.3)
    return found[-1]


@pytest.mark.parametrize(("kind", "count"), [("sqlite", 2), ("sqlite", 3), ("etcd", 2), ("etcd", 3)])
def test_primary_killed_replica_takes_over(kind: str, count: int, nodes: list[dk.DockerNode], tmp_path: Path) -> None:
    with discovery_url(kind, tmp_path) as url:
        joins = [Join(tmp_path, node.addr, url, heartbeat="1s", ttl="5s").start() for node in nodes]
        managers = [Replica(tmp_path, url) for _ in range(count)]
        try:
            primary = wait_settled(managers)
            for manager in managers:
                manager.wait_nodes({"rnode1": "Healthy", "rnode2": "Healthy"})
                # Attached run, with output, through every manager (replicas forward to the primary).
                assert manager.ok("run", "--rm", dk.IMAGE, "echo", f"via {manager.addr}") == f"via {manager.addr}\n"
            replica = next(m for m in managers if m is not primary)
            replica.ok("run", "-d", "--name", f"kept-{kind}-{count}", dk.IMAGE, "sleep", "300")
            assert f"kept-{kind}-{count}" in primary.ok("ps", "--format", "{{.Names}}")

            primary.process.kill()  # SIGKILL: no goodbye, the lock must expire
            survivors = [m for m in managers if m is not primary]
            new_primary = wait_settled(survivors, timeout=3 + 30)
            assert new_primary is not primary
            for manager in survivors:
                assert manager.ok("run", "--rm", dk.IMAGE, "echo", "after") == "after\n"
                assert manager.ok("exec", "-i", f"kept-{kind}-{count}", "cat", input=b"piped\n") == "piped\n"
                assert f"kept-{kind}-{count}" in manager.ok("ps", "--format", "{{.Names}}")
            new_primary.ok("rm", "-f", f"kept-{kind}-{count}")
        finally:
            for manager in managers:
                manager.process.kill()
            for join in joins:
                join.kill()


def test_replication_needs_kv_discovery_and_advertise(tmp_path: Path) -> None:
    from tests.support.swarm import run_swarmctl

    result = run_swarmctl("manage", "--replication", "--advertise", "127.0.0.1:1", "nodes://127.0.0.1:2")
    assert result.returncode == 1 and "needs kv discovery" in result.stderr
    result = run_swarmctl("manage", "--replication", f"sqlite://{tmp_path}/kv.db", env={"SWARM_ADVERTISE": ""})
    assert result.returncode == 1 and "needs --advertise" in result.stderr
