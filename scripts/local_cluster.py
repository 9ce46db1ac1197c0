"""The main job: a local Swarm cluster on the embedded discovery (an sqlite file).

- the nodes: ``$NODES`` (comma-separated host:port), else the local Docker
  engine at 127.0.0.1:2375 if it answers, else (as root, with dockerd
  installed) a private dockerd started here on a free port, with a
  ``busybox:local`` image when Debian's static busybox is there;
- one ``swarmctl join`` per node into ``sqlite://<state>/kv.db``;
- ``swarmctl manage`` on ``tcp://127.0.0.1:$MANAGER_PORT`` (default 4000).

Prints the ``docker -H ...`` line to use and runs until Ctrl-C, when every
process it started stops and the nodes leave the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWARMCTL = str(ROOT / ".venv" / "bin" / "swarmctl")


def answers(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/_ping", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def busybox_image(state: Path, addr: str) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        return
    tar_path = state / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "echo", "cat", "sleep", "ls", "ps", "top", "hostname", "date", "env"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    subprocess.run(
        ["docker", "-H", f"tcp://{addr}", "import", str(tar_path), "busybox:local"],
        capture_output=True,
        check=False,
    )


def main() -> int:
    state = Path(os.environ.get("SWARMCTL_STATE", ROOT / ".local-cluster"))
    state.mkdir(parents=True, exist_ok=True)
    discovery = f"sqlite://{state}/kv.db"
    manager_port = int(os.environ.get("MANAGER_PORT", "4000"))
    children: list[subprocess.Popen[bytes]] = []
    log = open(state / "cluster.log", "ab")  # noqa: SIM115 - shared by the children

    def spawn(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
        )  # type: ignore[call-overload]
        children.append(child)
        return child

    scratch: list[Path] = []
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        nodes = [n.strip() for n in os.environ.get("NODES", "").split(",") if n.strip()]
        note = ""
        if not nodes and answers("127.0.0.1:2375"):
            nodes, note = ["127.0.0.1:2375"], "the local Docker engine"
        if not nodes and os.geteuid() == 0 and shutil.which("dockerd") and shutil.which("unshare"):
            port = free_port()
            root = Path(tempfile.mkdtemp(prefix="swarmctl-node1-", dir="/tmp"))
            scratch.append(root)
            spawn(
                [
                    "unshare",
                    "--uts",
                    "sh",
                    "-c",
                    f"hostname node1 && exec dockerd --data-root {root}/data --exec-root {root}/exec "
                    f"--pidfile {root}/pid -H unix://{root}/sock -H tcp://127.0.0.1:{port} --iptables=false "
                    "--bridge=none --storage-driver=vfs",
                ]
            )
            if wait(lambda: answers(f"127.0.0.1:{port}"), 60):
                busybox_image(state, f"127.0.0.1:{port}")
                nodes, note = [f"127.0.0.1:{port}"], f"a dockerd started for this cluster (data in {root})"
        if not nodes:
            nodes, note = ["127.0.0.1:2375"], "no Docker engine answers there yet: start one, or set NODES"
        for node in nodes:
            spawn([SWARMCTL, "join", "--advertise", node, "--heartbeat", "5s", "--ttl", "15s", discovery])
        spawn(
            [
                SWARMCTL,
                "manage",
                "-H",
                f"tcp://127.0.0.1:{manager_port}",
                "--engine-refresh-min-interval",
                "5s",
                "--engine-refresh-max-interval",
                "10s",
                discovery,
            ]
        )

        def listed() -> bool:
            result = subprocess.run(
                [SWARMCTL, "list", "--timeout", "2s", discovery], capture_output=True, text=True, check=False
            )
            return len(result.stdout.split()) >= len(nodes)

        def manager_sees_nodes() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{manager_port}/info", timeout=2) as response:
                    status = json.loads(response.read())["SystemStatus"]
            except OSError:
                return False
            healthy = sum(1 for k, v in status if k.strip() == "└ Status" and v == "Healthy")
            return healthy >= len(nodes)

        # "up" means what a user needs for `docker run`: every node Healthy in
        # the manager, not merely listed (a node is Pending until its first
        # refresh, which takes longer on a busy machine).
        up = wait(listed, 60) and wait(manager_sees_nodes, 90)
        host = f"tcp://127.0.0.1:{manager_port}"
        headline = "Local cluster is up." if up else "Local cluster started, but its nodes are not Healthy yet."
        print(
            f"""{headline}
  discovery: {discovery}
  nodes:     {", ".join(nodes)}  ({note})
  manager:   {host}

Next, in another terminal:
  docker -H {host} info
  docker -H {host} run --rm busybox:local echo hello from the cluster
  docker -H {host} ps -a
  .venv/bin/swarmctl list {discovery}
Logs: {state}/cluster.log. Press Ctrl-C to stop; the nodes leave the cluster.""",
            flush=True,
        )
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.poll() not in (None, 0)]
        if failed:
            print(
                f"a cluster process exited ({failed[0].args[:2]}); see {state}/cluster.log", file=sys.stderr
            )
            return 1
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        for root in scratch:
            subprocess.run(["rm", "-rf", str(root)], check=False, capture_output=True)
        print(f"local cluster stopped; its nodes have left {discovery}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
