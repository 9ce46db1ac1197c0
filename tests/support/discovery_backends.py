"""Discovery sources for the swarmctl scenario tests, each a real server or file.

Each backend can be *down* before it is *up*, so the tests can start ``join``
against a store that is not there yet.
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path

from .process import ManagedProcess, free_port, port_open, wait_for
from .swarm import SWARMCTL, run_swarmctl


class DiscoveryBackend(abc.ABC):
    """A discovery URL plus the options it needs, and control over its server."""

    url: str
    options: list[str]

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the store up (again), keeping its data and address."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Take the store down."""

    def close(self) -> None:
        self.stop()


class SQLiteBackend(DiscoveryBackend):
    """``sqlite://`` in a directory that does not exist while the store is "down"."""

    def __init__(self, workdir: Path) -> None:
        self.directory = workdir / "store"
        self.url = f"sqlite://{self.directory}/kv.db"
        self.options = []

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        pass  # a file cannot go away under an open connection; "down" is only before start()


class TokenBackend(DiscoveryBackend):
    """``token://<id>`` on a ``swarmctl token-server`` process keeping its clusters in sqlite."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.service = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite://{workdir}/tokens.db"
        self.server: ManagedProcess | None = None
        self.options = ["--discovery-opt", f"token.url={self.service}"]
        self.start()
        created = run_swarmctl("create", *self.options)
        assert created.returncode == 0, created.stderr
        self.cluster = created.stdout.strip()
        self.url = f"token://{self.cluster}"
        self.stop()

    def start(self) -> None:
        if self.server is not None and self.server.running:
            return
        self.server = ManagedProcess(
            "token-server",
            [SWARMCTL, "token-server", "-H", f"tcp://127.0.0.1:{self.port}", "--store", self.store],
            self.workdir,
        ).start()
        wait_for(lambda: port_open("127.0.0.1", self.port), 30, "the token server to listen")

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
            self.server = None


class EtcdBackend(DiscoveryBackend):
    """``etcd://`` on one real etcd member (ports fixed before it first starts)."""

    def __init__(self, workdir: Path) -> None:
        from .etcd import EtcdCluster

        self.cluster = EtcdCluster(workdir / "etcd", size=1)
        self.url = f"{self.cluster.url}/swarm"
        self.options = []

    def start(self) -> None:
        self.cluster.restart_stopped()

    def stop(self) -> None:
        for member in self.cluster.members:
            self.cluster.stop_member(member)

    def close(self) -> None:
        self.cluster.close()


class ZooKeeperBackend(DiscoveryBackend):
    """``zk://`` on one real ZooKeeper server."""

    def __init__(self, workdir: Path) -> None:
        from .zookeeper import ZooKeeperServer

        self.server = ZooKeeperServer(workdir / "zk")
        self.url = f"zk://{self.server.address}/swarm"
        self.options = []

    def start(self) -> None:
        if not self.server.running:
            self.server.start()

    def stop(self) -> None:
        self.server.stop()


class ConsulBackend(DiscoveryBackend):
    """``consul://`` on the Consul HTTP API test server (no Consul binary exists here)."""

    def __init__(self, workdir: Path) -> None:
        from .consul import ConsulServer

        self.server = ConsulServer(workdir / "consul", persist=True)
        self.url = f"{self.server.url}/swarm"
        self.options = []

    def start(self) -> None:
        if not self.server.running:
            self.server.start()

    def stop(self) -> None:
        self.server.stop()
