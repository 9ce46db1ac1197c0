"""docker-compose 1.29 (Debian's) against the manager, as against one engine.

A project's network and the containers on it must land on one node (a local
network lives on one node), its named volume is on every node, and ``down -v``
leaves nothing behind anywhere. The first service carries a Swarm constraint
in its environment, so the project network has to follow it to that node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, managing

COMPOSE = shutil.which("docker-compose")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(dk.available() is not None, reason=str(dk.available())),
    pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (scripts/bootstrap --servers)"),
]
NODES = ("node1", "node2", "node3")

#: Both files: a database pinned to node2 by a Swarm constraint, a web service next to it sharing
#: its data, a sidecar in the web service's network namespace, and a service built from a Dockerfile.
#: Every service depends on the pinned one, so that its container is the project network's first
#: (a local network goes where its first container goes; see test_first_container_decides).
VERSION_2 = """
version: "2.4"
services:
  db:
    image: busybox:local
    command: sh -c "echo db-ready > /data/marker && exec sleep 600"
    environment:
      - "constraint:node==node2"
    volumes:
      - data:/data
  web:
    image: busybox:local
    command: sleep 600
    depends_on: [db]
    volumes_from: [db]
  sidecar:
    image: busybox:local
    command: sleep 600
    network_mode: "service:web"
  tool:
    build: ./tool
    command: cat /built
    depends_on: [db]
volumes:
  data: {}
"""
VERSION_3 = """
version: "3.8"
services:
  db:
    image: busybox:local
    command: sh -c "echo db-ready > /data/marker && exec sleep 600"
    environment:
      - "constraint:node==node2"
    volumes:
      - data:/data
    networks: [back]
  web:
    image: busybox:local
    command: sleep 600
    depends_on: [db]
    volumes:
      - data:/data
    networks: [back]
  sidecar:
    image: busybox:local
    command: sleep 600
    network_mode: "service:web"
  tool:
    build: ./tool
    command: cat /built
    depends_on: [db]
    networks: [back]
networks:
  back: {}
volumes:
  data: {}
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes([dk.DockerNode(name) for name in NODES], tmp_path_factory.mktemp("image")) as made:
        yield made


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Iterator[Manager]:
    with managing(tmp_path_factory.mktemp("manager"), nodes) as made:
        yield made


class Project:
    """A compose project in its own directory, driven by the real docker-compose."""

    def __init__(self, directory: Path, name: str, manager: Manager, text: str) -> None:
        self.directory = directory
        self.name = name
        self.manager = manager
        (directory / "docker-compose.yml").write_text(textwrap.dedent(text))
        (directory / "tool").mkdir()
        (directory / "tool" / "Dockerfile").write_text("FROM busybox:local\nRUN echo built-here > /built\n")

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        return subprocess.run(
            [COMPOSE, "--ansi", "never", "-p", self.name, *args],
            cwd=self.directory,
            env={**os.environ, "DOCKER_HOST": f"tcp://{self.manager.addr}", "COMPOSE_INTERACTIVE_NO_CLI": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 180) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def nodes_of_services(self) -> dict[str, str]:
        """Container name (without its node) -> the node it runs on, for this project's containers."""
        found = {}
        for line in self.manager.ok(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.name}", "--format", "{{.Names}}"
        ).split():
            node, _, name = line.partition("/")
            found[name] = node
        return found


def leftovers(nodes: list[dk.DockerNode], project: str) -> list[str]:
    """Containers, networks and volumes of ``project`` still on any node."""
    found = []
    for node in nodes:
        for kind in (("ps", "-a"), ("network", "ls"), ("volume", "ls")):
            out = node.docker(*kind, "--format", "{{.Names}}" if kind[0] == "ps" else "{{.Name}}").stdout.decode()
            found += [f"{node.name}: {item}" for item in out.split() if item.startswith(project)]
    return found


@pytest.mark.parametrize("version", ["2.4", "3"])
def test_compose_project_lives_together_and_leaves_nothing(
    manager: Manager, nodes: list[dk.DockerNode], tmp_path: Path, version: str
) -> None:
    name = f"shop{version.replace('.', '')}"
    project = Project(tmp_path, name, manager, VERSION_2 if version == "2.4" else VERSION_3)
    try:
        project.ok("build")
        project.ok("up", "-d")
        placed = project.nodes_of_services()
        assert set(placed) == {f"{name}_{s}_1" for s in ("db", "web", "sidecar", "tool")}, placed
        # The constraint pinned the database; everything sharing its network or volume came along.
        assert set(placed.values()) == {"node2"}, placed

        listed = project.ok("ps")
        assert all(f"{name}_{s}_1" in listed for s in ("db", "web", "sidecar")) and "Up" in listed
        assert "db-ready" in project.ok("exec", "-T", "web", "cat", "/data/marker")
        # Services reach each other by name over the project's network.
        assert "1 packets received" in project.ok("exec", "-T", "web", "ping", "-c", "1", "-W", "5", "db")
        # The sidecar shares the web container's network namespace.
        web_hostname = project.ok("exec", "-T", "web", "hostname").strip()
        assert project.ok("exec", "-T", "sidecar", "hostname").strip() == web_hostname
        assert "built-here" in project.ok("logs", "tool")
        # (A moment before the output: dockerd answers an attach before it listens to the container's
        # output, so a process that prints at once can be missed, through the manager or not.)
        one_off = project.ok("run", "--rm", "-T", "web", "sh", "-c", "sleep 0.5; cat /data/marker")
        assert one_off.strip() == "db-ready"

        project.ok("up", "-d", "--scale", "web=3")
        placed = project.nodes_of_services()
        assert {f"{name}_web_{n}" for n in (1, 2, 3)} <= set(placed)
        assert set(placed.values()) == {"node2"}, placed

        network = f"{name}_default" if version == "2.4" else f"{name}_back"
        inspected = json.loads(manager.ok("network", "inspect", network))[0]
        assert inspected["Labels"]["com.docker.compose.project"] == name
        volume = json.loads(manager.ok("volume", "inspect", f"{name}_data"))[0]
        assert volume["Status"]["Nodes"] == list(NODES)

        project.ok("down", "-v", "-t", "1", "--rmi", "local")
        assert leftovers(nodes, name) == []
        assert manager.ok("images", "-q", f"{name}_tool") == ""
    finally:
        project.run("down", "-v", "-t", "1", "--rmi", "local")


def test_first_container_decides_where_the_project_network_is(manager: Manager, tmp_path: Path) -> None:
    """A project network lives where its first container went; a later pinned service elsewhere is refused,
    the answer naming both nodes (the pinned service should come first: ``depends_on``)."""
    project = Project(
        tmp_path,
        "late",
        manager,
        """
        version: "2.4"
        services:
          free:
            image: busybox:local
            command: sleep 600
            environment: ["constraint:node==node1"]
          pinned:
            image: busybox:local
            command: sleep 600
            environment: ["constraint:node==node3"]
        """,
    )
    try:
        project.ok("up", "-d", "free")
        refused = project.run("up", "-d", "pinned")
        assert refused.returncode != 0
        assert "constraint node==node3" in refused.stderr and "network late_default (it is on node1)" in refused.stderr
    finally:
        project.run("down", "-v", "-t", "1")
