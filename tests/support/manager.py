"""A ``swarmctl manage`` process for end-to-end tests, and the clients pointed at it.

:func:`managing` runs a manager over a file discovery of real dockerd nodes
and waits until every node is Healthy; :func:`sdk_client` is the Docker SDK
for Python pointed at it; :func:`api` one raw HTTP request, as any client
would send it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker

from . import docker as dk
from .process import ManagedProcess, free_port, port_open, wait_for
from .swarm import SWARMCTL


class Manager:
    """A ``swarmctl manage`` process and the docker CLI pointed at it."""

    def __init__(self, workdir: Path, discovery: str, *extra: str, replication_ttl: str | None = None) -> None:
        self.port = free_port()
        if replication_ttl is not None:  # a replicated manager advertises its own address
            extra = (*extra, "--replication", "--advertise", self.addr, "--replication-ttl", replication_ttl)
        self.process = ManagedProcess(
            f"manage-{self.port}",
            [
                SWARMCTL,
                "--log-level",
                "debug",
                "manage",
                "-H",
                f"tcp://127.0.0.1:{self.port}",
                "--heartbeat",
                "1s",
                "--engine-refresh-min-interval",
                "2s",
                "--engine-refresh-max-interval",
                "3s",
                *extra,
                discovery,
            ],
            workdir,
        ).start()
        wait_for(lambda: port_open("127.0.0.1", self.port), 30, "the manager to listen")

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [dk.DOCKER, "-H", f"tcp://127.0.0.1:{self.port}", *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def ok(self, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
        result = self.docker(*args, input=input, timeout=timeout)
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout

    def info(self) -> dict[str, str]:
        raw = json.loads(self.ok("info", "--format", "{{json .SystemStatus}}"))
        return {k: v for k, v in raw}

    def node_status(self) -> dict[str, str]:
        """Node name -> Status, from ``docker info``'s SystemStatus."""
        raw = json.loads(self.ok("info", "--format", "{{json .SystemStatus}}"))
        found: dict[str, str] = {}
        current = None
        for key, value in raw:
            if key.startswith(" ") and not key.startswith("  "):
                current = key.strip()
            elif key.strip() == "└ Status" and current is not None:
                found[current] = value
        return found

    def wait_nodes(self, expected: dict[str, str], timeout: float = 60) -> None:
        wait_for(lambda: self.node_status() == expected, timeout, f"nodes {expected}", interval=0.3)

    def remove_containers(self) -> None:
        """Remove every container of the cluster (the ``clean`` fixtures' teardown)."""
        ids = self.ok("ps", "-aq").split()
        if ids:
            self.docker("rm", "-f", *ids)

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def managing(workdir: Path, nodes: list[dk.DockerNode], *extra: str) -> Iterator[Manager]:
    """A manager of ``nodes`` (file discovery), once every node is Healthy; stopped afterwards."""
    listing = workdir / "cluster"
    listing.write_text("".join(f"{node.addr}\n" for node in nodes))
    made = Manager(workdir, f"file://{listing}", *extra)
    try:
        made.wait_nodes({node.name: "Healthy" for node in nodes})
        yield made
    finally:
        made.stop()


@contextlib.contextmanager
def sdk_client(manager: Manager) -> Iterator[docker.DockerClient]:
    """The Docker SDK for Python on the manager, at the API version dockerd 20.10 speaks."""
    client = docker.DockerClient(base_url=f"tcp://{manager.addr}", version="1.41", timeout=60)
    try:
        yield client
    finally:
        client.close()


def api(addr: str, method: str, path: str, body: bytes | None = None) -> tuple[int, str | None, Any]:
    """One plain HTTP request, as any client sends it: status, content type, decoded JSON body."""
    request = urllib.request.Request(
        f"http://{addr}{path}", method=method, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type"), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), json.loads(exc.read() or b"null")
