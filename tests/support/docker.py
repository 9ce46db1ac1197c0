"""Real Docker engines for the manager's tests: dockerd processes with their own names.

Each node is a ``dockerd`` in its own UTS namespace (so ``docker info`` shows a
distinct name), with its own data and exec roots under a short /tmp directory
(unix socket paths are limited to 108 bytes), listening on a free loopback
port. There is no registry here, so a ``busybox:local`` image is made from
Debian's static busybox and imported into each node.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .certs import CertFiles
from .process import ManagedProcess, free_port, wait_for

DOCKER = shutil.which("docker") or "docker"
IMAGE = "busybox:local"
_APPLETS = [
    "sh",
    "echo",
    "sleep",
    "cat",
    "ls",
    "ps",
    "top",
    "env",
    "true",
    "false",
    "yes",
    "head",
    "wc",
    "date",
    "hostname",
    "id",
    "seq",
    "tr",
    "printf",
    "ping",
    "nslookup",
    "ip",
    "touch",
    "mkdir",
    "rm",
]


def available() -> str | None:
    """Why real engines cannot run here, or None when they can."""
    for tool in ("dockerd", "unshare", "busybox"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/bootstrap --docker installs it)"
    return None


def busybox_tarball(directory: Path) -> Path:
    """A root file system with a static busybox and its applets, as a tar to ``docker import``."""
    path = directory / "busybox-rootfs.tar"
    if path.exists():
        return path
    busybox = shutil.which("busybox")
    assert busybox is not None
    with tarfile.open(path, "w") as tar:
        info = tar.gettarinfo(busybox, arcname="bin/busybox")
        info.mode = 0o755
        with open(busybox, "rb") as fh:
            tar.addfile(info, fh)
        for applet in _APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name in ("tmp", "etc"):
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o1777 if name == "tmp" else 0o755
            tar.addfile(folder)
    return path


class DockerNode:
    """One dockerd, reachable at ``self.addr`` (``127.0.0.1:PORT``)."""

    def __init__(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        port: int | None = None,
        tls: CertFiles | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.name = name
        self.labels = labels or {}
        #: More dockerd flags, e.g. ``--cluster-store`` for multi-host networks.
        self.extra_args = extra_args or []
        #: With TLS, dockerd runs with --tlsverify: clients need a certificate from ``tls.ca``.
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix=f"dk-{name}-", dir="/tmp"))
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.process: ManagedProcess | None = None

    def argv(self) -> list[str]:
        r = self.root
        dockerd = [
            "dockerd",
            "--data-root",
            f"{r}/data",
            "--exec-root",
            f"{r}/exec",
            "--pidfile",
            f"{r}/pid",
            "-H",
            f"unix://{r}/sock",
            "-H",
            f"tcp://{self.addr}",
            "--iptables=false",
            "--bridge=none",
            "--storage-driver=vfs",
            "--log-level=warn",
        ]
        for key, value in self.labels.items():
            dockerd += ["--label", f"{key}={value}"]
        dockerd += self._tls_flags() + self.extra_args
        quoted = " ".join(f"'{part}'" for part in dockerd)
        return ["unshare", "--uts", "sh", "-c", f"hostname {self.name} && exec {quoted}"]

    def start(self, timeout: float = 60) -> DockerNode:
        self.process = ManagedProcess(f"dockerd-{self.name}", self.argv(), self.root).start()
        wait_for(self.answers, timeout, f"dockerd {self.name} to answer")
        return self

    def answers(self) -> bool:
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
            with urllib.request.urlopen(f"https://{self.addr}/_ping", timeout=2, context=context) as response:
                return bool(response.status == 200)
        with urllib.request.urlopen(f"http://{self.addr}/_ping", timeout=2) as response:
            return bool(response.status == 200)

    def docker_args(self) -> list[str]:
        """The docker CLI's flags to reach this node."""
        return ["-H", f"tcp://{self.addr}", *self._tls_flags()]

    def _tls_flags(self) -> list[str]:
        """dockerd and the docker CLI spell TLS the same way: --tlsverify and the three files."""
        if self.tls is None:
            return []
        return [
            "--tlsverify",
            "--tlscacert",
            str(self.tls.ca),
            "--tlscert",
            str(self.tls.cert),
            "--tlskey",
            str(self.tls.key),
        ]

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [DOCKER, *self.docker_args(), *args], input=input, capture_output=True, timeout=timeout, check=False
        )

    def load_busybox(self, tarball: Path) -> None:
        result = self.docker("import", str(tarball), IMAGE)
        assert result.returncode == 0, result.stderr

    def info(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://{self.addr}/info", timeout=10) as response:
            data: dict[str, object] = json.loads(response.read())
            return data

    def kill(self) -> None:
        """The node crashes: dockerd, its containerd and every container shim die at once.

        Like a machine that reboots, its run-time state (the exec root, /run on
        a real host) is gone too; a containerd that finds its dead shims'
        state there never comes up again.
        """
        orphans = self._container_pids()
        bridges = self._bridges()
        if self.process is not None:
            self.process.kill()
        self._kill_leftovers()
        _delete_links(bridges)
        for pid in orphans:  # a container's first process: killing it ends its whole PID namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(self.root / "exec")], check=False, capture_output=True)
        self._unmount()

    def _unmount(self) -> None:
        """dockerd mounts its data root over itself; a killed dockerd leaves that mount (and a restart adds one)."""
        for _ in range(8):
            if subprocess.run(["umount", "-l", str(self.root / "data")], capture_output=True, check=False).returncode:
                return

    def _container_pids(self) -> list[int]:
        """The host PIDs of this node's running containers (they outlive a killed dockerd and its shims)."""
        if self.process is None or not self.process.running:
            return []
        ids = self.docker("ps", "-q", timeout=20).stdout.split()
        if not ids:
            return []
        found = self.docker("inspect", "-f", "{{.State.Pid}}", *[i.decode() for i in ids], timeout=20)
        return [int(pid) for pid in found.stdout.split() if pid.isdigit() and int(pid) > 0]

    def stop(self) -> None:
        bridges = self._bridges()
        if self.process is not None:
            self.process.stop(timeout=20)
            self.process = None
        self._kill_leftovers()
        _delete_links(bridges)

    def _bridges(self) -> list[str]:
        """The host's bridge interfaces of this node's networks (``br-<id>``).

        Every node shares the host's network namespace, and a dockerd that
        stops leaves its bridges behind with their subnets: a few dozen such
        leftovers use up the engines' default address pools, and then no
        node of any later test can create a network at all.
        """
        if self.process is None or not self.process.running:
            return []
        found = self.docker("network", "ls", "-q", "--no-trunc", "--filter", "driver=bridge", timeout=20)
        return [f"br-{network_id.decode()[:12]}" for network_id in found.stdout.split()]

    def _kill_leftovers(self) -> None:
        """Container shims live in sessions of their own; find them by the node's directory."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        if self.process is not None and self.process.running:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *[i.decode() for i in ids])
        self.stop()
        self._unmount()
        # Containers' leftovers under data-root can be busy for a moment after dockerd exits.
        subprocess.run(["rm", "-rf", str(self.root)], check=False, capture_output=True)


def _delete_links(names: list[str]) -> None:
    for name in names:
        subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)


@contextlib.contextmanager
def running_nodes(nodes: list[DockerNode], image_dir: Path) -> Iterator[list[DockerNode]]:
    """Start ``nodes`` side by side, give each the busybox image, and remove them all afterwards."""
    tarball = busybox_tarball(image_dir)
    try:
        threads = [threading.Thread(target=node.start) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in nodes:
            assert node.process is not None and node.process.running, node.process and node.process.log_tail()
            node.load_busybox(tarball)
        yield nodes
    finally:
        for node in nodes:
            node.remove()
