"""``swarmctl manage`` end to end: real dockerd nodes, the real docker CLI as the client."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, api, sdk_client
from tests.support.process import ManagedProcess, free_port, wait_for
from tests.support.swarm import SWARMCTL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes(
        [dk.DockerNode(f"node{n}", labels={"zone": f"z{n}"}) for n in (1, 2, 3)], tmp_path_factory.mktemp("image")
    ) as made:
        yield made


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Path:
    path = tmp_path_factory.mktemp("discovery") / "cluster"
    path.write_text("".join(f"{node.addr}\n" for node in nodes))
    return path


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, cluster_file: Path) -> Iterator[Manager]:
    made = Manager(tmp_path_factory.mktemp("manager"), f"file://{cluster_file}")
    try:
        made.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Healthy"})
        yield made
    finally:
        made.stop()


@pytest.fixture
def clean(manager: Manager) -> Iterator[None]:
    yield
    manager.remove_containers()


def test_info_and_version(manager: Manager) -> None:
    out = manager.ok("info")
    assert " Nodes: 3" in out
    assert out.count("└ Status: Healthy") == 3
    assert "Strategy: spread" in out and "Filters: health" in out
    assert "zone=z1" in out and "storagedriver=vfs" in out
    version = manager.ok("version")
    assert "swarm/" in version and "API version:" in version


def test_run_attached_prints_output(manager: Manager, clean: None) -> None:
    assert manager.ok("run", "--rm", dk.IMAGE, "echo", "hi") == "hi\n"
    failed = manager.docker("run", "--rm", dk.IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.returncode, failed.stdout, failed.stderr.strip()) == (3, "out\n", "err")


def test_run_with_stdin_byte_for_byte(manager: Manager, clean: None) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = subprocess.run(
        [dk.DOCKER, "-H", f"tcp://127.0.0.1:{manager.port}", "run", "-i", "--rm", dk.IMAGE, "cat"],
        input=payload,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_spread_ps_and_names(manager: Manager, clean: None) -> None:
    for n in range(6):
        manager.ok("run", "-d", "--name", f"spread{n}", dk.IMAGE, "sleep", "300")
    names = manager.ok("ps", "--format", "{{.Names}}").split()
    per_node = {node: sum(1 for name in names if name.startswith(f"{node}/")) for node in ("node1", "node2", "node3")}
    assert per_node == {"node1": 2, "node2": 2, "node3": 2}, names
    assert sorted(name.split("/", 1)[1] for name in names) == [f"spread{n}" for n in range(6)]
    manager.ok("stop", "-t", "1", "spread0")
    assert "spread0" not in manager.ok("ps", "--format", "{{.Names}}")
    assert "spread0" in manager.ok("ps", "-a", "--format", "{{.Names}}")
    node1 = manager.ok("ps", "--filter", "node=node1", "--format", "{{.Names}}").split()
    assert node1 and all(name.startswith("node1/") for name in node1)


def test_logs_and_follow(manager: Manager, clean: None) -> None:
    manager.ok(
        "run",
        "-d",
        "--name",
        "talker",
        dk.IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    )
    assert manager.ok("logs", "-f", "talker", timeout=30) == "line1\nline2\nline3\n"
    assert manager.ok("logs", "--tail", "1", "talker") == "line3\n"


def test_exec_with_piped_stdin(manager: Manager, clean: None) -> None:
    manager.ok("run", "-d", "--name", "box", dk.IMAGE, "sleep", "300")
    assert manager.ok("exec", "-i", "box", "cat", input=b"through exec\n") == "through exec\n"
    container_id = manager.ok("inspect", "-f", "{{.Id}}", "box").strip()
    assert manager.ok("exec", "box", "hostname").strip() == container_id[:12]


def test_inspect_lifecycle_and_wait(manager: Manager, clean: None) -> None:
    manager.ok("run", "-d", "--name", "life", dk.IMAGE, "sleep", "300")
    inspected = json.loads(manager.ok("inspect", "life"))[0]
    assert inspected["State"]["Running"] is True
    assert inspected["Node"]["Name"] in ("node1", "node2", "node3")
    node = inspected["Node"]["Name"]
    assert json.loads(manager.ok("inspect", f"{node}/life"))[0]["Id"] == inspected["Id"]
    assert json.loads(manager.ok("inspect", inspected["Id"][:12]))[0]["Id"] == inspected["Id"]
    manager.ok("stop", "-t", "1", "life")
    assert manager.ok("inspect", "-f", "{{.State.Status}}", "life").strip() == "exited"
    manager.ok("start", "life")
    assert manager.ok("inspect", "-f", "{{.State.Status}}", "life").strip() == "running"
    manager.ok("restart", "-t", "1", "life")
    manager.ok("kill", "life")
    assert manager.ok("wait", "life").strip() == "137"
    manager.ok("rm", "life")
    missing = manager.docker("container", "inspect", "life")
    assert missing.returncode == 1 and "No such container: life" in missing.stderr


def test_top_stats_images_networks_volumes(manager: Manager, clean: None) -> None:
    manager.ok("run", "-d", "--name", "busy", dk.IMAGE, "sleep", "300")
    assert "sleep 300" in manager.ok("top", "busy")
    stats = manager.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "busy")
    assert stats.startswith("busy ")
    # Imported separately on each node, the three copies have three IDs: one row each.
    images = manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert images == ["busybox:local"] * 3
    networks = manager.ok("network", "ls", "--format", "{{.Name}}").split()
    assert {"node1/host", "node2/none", "node3/host"} <= set(networks)
    manager.ok("volume", "ls")


def test_errors_as_one_engine_gives_them(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    missing = manager.docker("logs", "nosuch")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr
    # The same name on two nodes, made on the engines behind the manager's back.
    for node in nodes[:2]:
        assert node.docker("run", "-d", "--name", "twin", dk.IMAGE, "sleep", "300").returncode == 0
    wait_for(
        lambda: (
            manager.ok("ps", "--filter", "name=twin", "--format", "{{.Names}}").split() == ["node1/twin", "node2/twin"]
            or sorted(manager.ok("ps", "--filter", "name=twin", "--format", "{{.Names}}").split())
            == ["node1/twin", "node2/twin"]
        ),
        30,
        "both twins listed",
    )
    ambiguous = manager.docker("inspect", "twin")
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr
    assert "node1" in ambiguous.stderr and "node2" in ambiguous.stderr
    assert json.loads(manager.ok("inspect", "node2/twin"))[0]["Node"]["Name"] == "node2"
    taken = manager.docker("run", "-d", "--name", "twin", dk.IMAGE, "true")
    assert taken.returncode == 125 and "already in use" in taken.stderr


def test_no_healthy_node_is_a_clear_error(tmp_path: Path) -> None:
    dead = Manager(tmp_path, f"nodes://127.0.0.1:{free_port()}")
    try:
        result = dead.docker("run", "--rm", dk.IMAGE, "true")
        assert result.returncode == 125
        assert "No healthy node available in the cluster" in result.stderr
        assert " Nodes: 1" in dead.ok("info")
        assert "Status: Pending" in dead.ok("info")
    finally:
        dead.stop()


def test_events_show_engine_connect_when_a_node_joins(
    manager: Manager, nodes: list[dk.DockerNode], tmp_path: Path
) -> None:
    path = tmp_path / "two"
    path.write_text(f"{nodes[0].addr}\n{nodes[1].addr}\n")
    small = Manager(tmp_path, f"file://{path}")
    try:
        small.wait_nodes({"node1": "Healthy", "node2": "Healthy"})
        events = subprocess.Popen(
            [
                dk.DOCKER,
                "-H",
                f"tcp://127.0.0.1:{small.port}",
                "events",
                "--format",
                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.5)  # let the events request reach the manager before the change
            path.write_text(f"{nodes[0].addr}\n{nodes[1].addr}\n{nodes[2].addr}\n")
            assert events.stdout is not None
            deadline = time.monotonic() + 30
            line = ""
            while time.monotonic() < deadline:
                line = events.stdout.readline()
                if "engine_connect" in line:
                    break
            assert line.strip() == "engine engine_connect node3"
        finally:
            events.kill()
            events.wait()
        small.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Healthy"})
        path.write_text(f"{nodes[0].addr}\n")
        small.wait_nodes({"node1": "Healthy"})
        assert " Nodes: 1" in small.ok("info")
    finally:
        small.stop()


def test_killed_node_turns_unhealthy_and_back(manager: Manager, nodes: list[dk.DockerNode]) -> None:
    victim = nodes[2]
    victim.kill()
    manager.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Unhealthy"})
    assert " Nodes: 3" in manager.ok("info")
    victim.start()
    manager.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Healthy"})


def test_manager_on_etcd_with_joined_nodes(nodes: list[dk.DockerNode], tmp_path: Path) -> None:
    """The source document's recipe: nodes `join` an etcd, the manager follows it."""
    from tests.support.etcd import single_etcd
    from tests.support.swarm import Join

    with single_etcd(tmp_path / "etcd") as etcd:
        discovery = f"{etcd.url}/swarm"
        joins = [Join(tmp_path, node.addr, discovery).start() for node in nodes[:2]]
        try:
            manager = Manager(tmp_path, discovery)
            try:
                manager.wait_nodes({"node1": "Healthy", "node2": "Healthy"})
                assert manager.ok("run", "--rm", dk.IMAGE, "echo", "via etcd") == "via etcd\n"
                joins[1].terminate_and_wait()  # node2 leaves discovery: it leaves the cluster
                manager.wait_nodes({"node1": "Healthy"})
            finally:
                manager.stop()
        finally:
            for join in joins:
                join.kill()


def test_tag_rmi_and_pull(manager: Manager, clean: None) -> None:
    manager.ok("tag", dk.IMAGE, "busybox:extra")
    tags = manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert tags.count("busybox:extra") == 3, tags
    manager.ok("rmi", "busybox:extra")
    assert "busybox:extra" not in manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    missing = manager.docker("rmi", "busybox:nowhere")
    assert missing.returncode == 1 and "No such image: busybox:nowhere" in missing.stderr
    # No registry is reachable here: every node reports its failure, and the pull ends.
    pulled = manager.docker("pull", "127.0.0.1:1/nothing:1", timeout=120)
    assert pulled.returncode != 0
    assert "node1" in pulled.stderr and "node3" in pulled.stderr
    # An error status, as one engine answers it: a client that checks only the status sees the failure.
    status, content_type, answer = api(manager.addr, "POST", "/v1.41/images/create?fromImage=127.0.0.1:1/nothing&tag=1")
    assert status == 500 and content_type == "application/json" and "node2" in answer["message"]


def test_tty_run(manager: Manager, clean: None) -> None:
    """``docker run -it`` under a pseudo-terminal (``script`` provides one)."""
    command = f"{dk.DOCKER} -H tcp://127.0.0.1:{manager.port} run -it --rm {dk.IMAGE} sh -c 'echo tty-ok; exit 4'"
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "tty-ok" in result.stdout, result
    assert result.returncode == 4


def test_unix_socket(nodes: list[dk.DockerNode], cluster_file: Path, tmp_path: Path) -> None:
    sock = Path("/tmp") / f"swarmctl-{free_port()}.sock"
    port = free_port()
    process = ManagedProcess(
        "manage-unix",
        [SWARMCTL, "manage", "-H", f"unix://{sock}", "-H", f"tcp://127.0.0.1:{port}", f"file://{cluster_file}"],
        tmp_path,
    ).start()
    try:
        wait_for(sock.exists, 30, "the unix socket")
        wait_for(
            lambda: (
                "Nodes: 3"
                in subprocess.run([dk.DOCKER, "-H", f"unix://{sock}", "info"], capture_output=True, text=True).stdout
            ),
            60,
            "info via unix",
        )
    finally:
        process.stop()
        sock.unlink(missing_ok=True)


def test_node_dying_mid_stream_ends_the_stream(manager: Manager, nodes: list[dk.DockerNode]) -> None:
    victim = nodes[2]
    assert (
        victim.docker(
            "run", "-d", "--name", "ticker", dk.IMAGE, "sh", "-c", "while true; do echo tick; sleep 0.2; done"
        ).returncode
        == 0
    )
    wait_for(lambda: "node3/ticker" in manager.ok("ps", "--format", "{{.Names}}"), 30, "the ticker listed")
    follower = subprocess.Popen(
        [dk.DOCKER, "-H", f"tcp://127.0.0.1:{manager.port}", "logs", "-f", "node3/ticker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None and follower.stdout.readline() == "tick\n"
        victim.kill()
        follower.wait(timeout=30)  # the stream ends cleanly instead of hanging
    finally:
        follower.kill()
        victim.start()
        manager.wait_nodes({"node1": "Healthy", "node2": "Healthy", "node3": "Healthy"})
        victim.docker("rm", "-f", "ticker")


def test_cp_diff_export_pause_rename(manager: Manager, clean: None, tmp_path: Path) -> None:
    manager.ok("run", "-d", "--name", "files", dk.IMAGE, "sh", "-c", "echo inside > /tmp/made; sleep 300")
    wait_for(lambda: manager.docker("exec", "files", "cat", "/tmp/made").stdout == "inside\n", 30, "the file")
    manager.ok("cp", "files:/tmp/made", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "inside\n"
    (tmp_path / "in").write_text("from outside\n")
    manager.ok("cp", str(tmp_path / "in"), "files:/tmp/in")
    assert manager.ok("exec", "files", "cat", "/tmp/in") == "from outside\n"
    assert "A /tmp/made" in manager.ok("diff", "files")
    exported = subprocess.run(
        [dk.DOCKER, "-H", f"tcp://127.0.0.1:{manager.port}", "export", "files"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "bin/busybox" in tar.getnames()
    manager.ok("pause", "files")
    assert manager.ok("inspect", "-f", "{{.State.Status}}", "files").strip() == "paused"
    manager.ok("unpause", "files")
    manager.ok("rename", "files", "renamed")
    assert "renamed" in manager.ok("ps", "--format", "{{.Names}}")


def test_client_hanging_up_frees_the_node_connection(manager: Manager, clean: None) -> None:
    """A killed ``docker run -i`` client: the manager closes its connection, the container sees stdin end."""
    client = subprocess.Popen(
        [
            dk.DOCKER,
            "-H",
            f"tcp://127.0.0.1:{manager.port}",
            "run",
            "-i",
            "--name",
            "hang",
            dk.IMAGE,
            "sh",
            "-c",
            "cat; echo stdin-closed",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"alive\n")
        client.stdin.flush()
        assert client.stdout.readline() == b"alive\n"
        client.kill()  # no half-close, no goodbye: the connection just drops
        client.wait(timeout=10)
        wait_for(
            lambda: manager.ok("inspect", "-f", "{{.State.Status}}", "hang").strip() == "exited",
            30,
            "the container to see its stdin closed",
        )
        assert manager.ok("logs", "hang") == "alive\nstdin-closed\n"
    finally:
        client.kill()


def test_remove_link(manager: Manager, clean: None) -> None:
    """``docker rm --link PARENT/ALIAS`` names a link, not ``node/container``: it goes to the parent's node."""
    for n in range(4):  # the answer comes once the cache has seen the change: right after it, every time
        manager.ok("run", "-d", "--name", f"linked-db{n}", dk.IMAGE, "sleep", "300")
        manager.ok("run", "-d", "--name", f"linked-web{n}", "--link", f"linked-db{n}:dbalias", dk.IMAGE, "sleep", "300")
        links = json.loads(manager.ok("inspect", f"linked-web{n}"))[0]["HostConfig"]["Links"]
        assert f"/linked-db{n}:/linked-web{n}/dbalias" in links
        manager.ok("rm", "--link", f"linked-web{n}/dbalias")
        assert not json.loads(manager.ok("inspect", f"linked-web{n}"))[0]["HostConfig"]["Links"]
    missing = manager.docker("rm", "--link", "nosuch/alias")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr


def test_sdk_containers_and_exec(manager: Manager, clean: None) -> None:
    """The Docker SDK for Python's container and exec calls through the manager, as on one engine."""
    import io
    import tarfile

    with sdk_client(manager) as sdk:
        assert sdk.containers.run(dk.IMAGE, "echo through the sdk", remove=True) == b"through the sdk\n"
        box = sdk.containers.run(dk.IMAGE, "sleep 300", detach=True, name="sdkbox", labels={"made": "sdk"})
        assert [c.id for c in sdk.containers.list(filters={"label": "made=sdk"})] == [box.id]
        code, output = box.exec_run("sh -c 'echo out; echo err >&2; exit 3'", demux=True)
        assert (code, output) == (3, (b"out\n", b"err\n"))
        assert box.exec_run("hostname").output.decode().strip() == box.id[:12]
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
        assert box.put_archive("/tmp", payload.getvalue())
        assert box.exec_run("cat /tmp/hello.txt").output == b"hello\n"
        stream, stat = box.get_archive("/tmp/hello.txt")
        assert stat["name"] == "hello.txt" and b"hello\n" in b"".join(stream)
        assert box.stats(stream=False)["id"] == box.id
        box.stop(timeout=1)
        assert box.wait()["StatusCode"] == 137
        box.reload()
        assert box.status == "exited"
        box.remove()
        assert sdk.containers.list(all=True, filters={"name": "sdkbox"}) == []
