"""``swarmctl manage``'s system endpoints end to end: disk usage, prunes, swarm mode, plugins, /info, websockets.

Real dockerd nodes behind the manager, driven by the real docker CLI and the
Docker SDK for Python. Where the manager must answer as one engine does, the
test asks a real node the same question and compares.
"""

from __future__ import annotations

import asyncio
import calendar
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import docker
import docker.errors
import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, api, sdk_client
from tests.support.process import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    """snode1 and snode2 make the cluster; snode3 is there to be killed (started alongside, so it costs no time)."""
    with dk.running_nodes([dk.DockerNode(f"snode{n}") for n in (1, 2, 3)], tmp_path_factory.mktemp("image")) as made:
        yield made


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Iterator[Manager]:
    made = Manager(tmp_path_factory.mktemp("manager"), f"nodes://{nodes[0].addr},{nodes[1].addr}")
    try:
        made.wait_nodes({"snode1": "Healthy", "snode2": "Healthy"})
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def sdk(manager: Manager) -> Iterator[docker.DockerClient]:
    with sdk_client(manager) as client:
        yield client


@pytest.fixture
def clean(manager: Manager) -> Iterator[None]:
    yield
    manager.remove_containers()


def on_node(node: str) -> list[str]:
    """``docker run`` arguments that place the container on ``node``."""
    return ["-e", f"constraint:node=={node}"]


def human(size: float) -> str:
    """Go's ``units.HumanSize``, as the docker CLI prints sizes: decimal units, 4 significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.4g}{unit}"
        size /= 1000
    raise AssertionError("unreachable")


def tiny_tarball(directory: Path) -> Path:
    """A root file system of one small file, to import as an image nobody uses."""
    path = directory / "tiny.tar"
    content = directory / "hello"
    content.write_text("hi\n")
    with tarfile.open(path, "w") as tar:
        tar.add(content, arcname="hello")
    return path


# -- /system/df ---------------------------------------------------------------------------------------
def images_reclaimable(usage: dict[str, Any]) -> int:
    """The docker CLI's reclaimable space for images: the layers minus what images in use hold uniquely."""
    used = sum(i["Size"] - i["SharedSize"] for i in usage["Images"] if i["Containers"] and i["SharedSize"] != -1)
    return int(usage["LayersSize"]) - used


def test_system_df_sums_the_nodes(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    # One image on both nodes with one ID (saved on snode1, loaded on snode2), in use on both: one
    # engine holding both copies counts both as used, so nothing of it is reclaimable.
    first, second = nodes[0], nodes[1]
    assert first.docker("tag", dk.IMAGE, "shared:1").returncode == 0
    saved = first.docker("save", "shared:1").stdout
    assert second.docker("load", input=saved).returncode == 0
    for node in ("snode1", "snode2"):
        manager.ok("run", "--name", f"df-{node}", *on_node(node), "shared:1", "sh", "-c", "head -c 1000 /dev/zero > /f")
    assert first.docker("volume", "create", "dfvol").returncode == 0

    usage = [api(node.addr, "GET", "/v1.41/system/df")[2] for node in (first, second)]
    status, content_type, answer = api(manager.addr, "GET", "/v1.41/system/df")
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert answer["LayersSize"] == usage[0]["LayersSize"] + usage[1]["LayersSize"]
    assert len(answer["Images"]) == len(usage[0]["Images"]) + len(usage[1]["Images"])
    shared_id = first.docker("inspect", "-f", "{{.Id}}", "shared:1").stdout.decode().strip()
    assert [i["Id"] for i in answer["Images"]].count(shared_id) == 2  # once per node that stores it
    names = {c["Names"][0]: c.get("SizeRw") for c in answer["Containers"]}
    assert names == {"/snode1/df-snode1": 1000, "/snode2/df-snode2": 1000}
    assert "snode1/dfvol" in [v["Name"] for v in answer["Volumes"]]

    table = manager.ok("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Reclaimable}}")
    rows = {kind: values for kind, *values in (line.split("|") for line in table.splitlines())}
    reclaimable = images_reclaimable(usage[0]) + images_reclaimable(usage[1])
    total = answer["LayersSize"]
    assert rows["Images"] == [
        str(len(answer["Images"])),
        str(sum(1 for i in answer["Images"] if i["Containers"])),
        f"{human(reclaimable)} ({reclaimable * 100 // total}%)",
    ]
    assert rows["Containers"] == ["2", "0", "2kB (100%)"]
    verbose = manager.ok("system", "df", "-v")
    assert "snode1/df-snode1" in verbose and "snode2/df-snode2" in verbose and "snode1/dfvol" in verbose
    short_id = shared_id.removeprefix("sha256:")[:12]
    image_rows = [line.split() for line in verbose.split("Containers space usage")[0].splitlines()]
    assert [row[2] for row in image_rows if len(row) > 2].count(short_id) == 2, verbose

    client_df = docker.DockerClient(base_url=f"tcp://{manager.addr}", version="1.41").df()
    assert client_df["LayersSize"] == total and len(client_df["Containers"]) == 2
    # A second tag on busybox would change what an image prune untags: leave the nodes as they were.
    manager.ok("rm", "df-snode1", "df-snode2")
    assert first.docker("volume", "rm", "dfvol").returncode == 0
    for node in (first, second):
        assert node.docker("rmi", "shared:1").returncode == 0


# -- prunes ----------------------------------------------------------------------------------------------
def test_container_prune_on_every_node(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    ids = {}
    for node in ("snode1", "snode2"):
        ids[node] = manager.ok("run", "-d", "--name", f"gone-{node}", *on_node(node), dk.IMAGE, "true").strip()
        manager.ok("run", "-d", "--name", f"kept-{node}", *on_node(node), dk.IMAGE, "sleep", "300")
    wait_for(lambda: len(manager.ok("ps", "-aq", "--filter", "status=exited").split()) == 2, 30, "both exited")

    # Filters reach the engines: nothing is older than an hour.
    assert manager.ok("container", "prune", "-f", "--filter", "until=1h").strip() == "Total reclaimed space: 0B"
    out = manager.ok("container", "prune", "-f")
    assert ids["snode1"] in out and ids["snode2"] in out and out.startswith("Deleted Containers:")
    # The cache forgot them before the answer: the next ps agrees at once.
    left = sorted(manager.ok("ps", "-a", "--format", "{{.Names}}").split())
    assert left == ["snode1/kept-snode1", "snode2/kept-snode2"]
    for node in nodes[:2]:
        assert b"gone-" not in node.docker("ps", "-a", "--format", "{{.Names}}").stdout

    # A filter every engine refuses: their words, as one engine says them.
    refused = manager.docker("container", "prune", "-f", "--filter", "foo=bar")
    direct = nodes[0].docker("container", "prune", "-f", "--filter", "foo=bar")
    assert (refused.returncode, refused.stderr) == (direct.returncode, direct.stderr.decode())
    assert refused.stderr.strip() == "Error response from daemon: Invalid filter 'foo'"


def test_container_prune_with_the_sdk_and_labels(manager: Manager, sdk: docker.DockerClient, clean: None) -> None:
    for node in ("snode1", "snode2"):
        manager.ok("run", "--name", f"drop-{node}", "--label", "drop=yes", *on_node(node), dk.IMAGE, "true")
        manager.ok("run", "--name", f"stay-{node}", *on_node(node), dk.IMAGE, "true")
    answer = sdk.containers.prune(filters={"label": "drop=yes"})
    stayed = {sdk.api.inspect_container(f"stay-{n}")["Id"] for n in ("snode1", "snode2")}
    assert len(answer["ContainersDeleted"]) == 2 and not stayed & set(answer["ContainersDeleted"])
    assert answer["SpaceReclaimed"] == 0
    listed = sorted(c.attrs["Names"][0] for c in sdk.containers.list(all=True, sparse=True))
    assert listed == ["/snode1/stay-snode1", "/snode2/stay-snode2"]
    assert sdk.containers.prune(filters={"label": "nothing=here"}) == {"ContainersDeleted": None, "SpaceReclaimed": 0}


def test_image_prune_on_every_node(
    manager: Manager, nodes: list[dk.DockerNode], sdk: docker.DockerClient, clean: None, tmp_path: Path
) -> None:
    tarball = tiny_tarball(tmp_path)
    # busybox stays: a running container on each node uses it.
    for node in ("snode1", "snode2"):
        manager.ok("run", "-d", "--name", f"keeper-{node}", *on_node(node), dk.IMAGE, "sleep", "300")

    def import_everywhere(*tag: str) -> None:
        for node in nodes[:2]:
            assert node.docker("import", str(tarball), *tag).returncode == 0

    def listed(tag: str) -> int:
        return manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split().count(tag)

    import_everywhere()  # dangling: no tag
    dangling = [
        line.decode()
        for node in nodes[:2]
        for line in node.docker("images", "-q", "--filter", "dangling=true", "--no-trunc").stdout.split()
    ]
    assert len(dangling) >= 2
    out = manager.ok("image", "prune", "-f")
    assert all(f"deleted: {image}" in out for image in dangling), out
    import_everywhere("prunable:1")
    wait_for(lambda: listed("prunable:1") == 2, 30, "both prunable images listed")
    out = manager.ok("image", "prune", "-af")
    assert out.count("untagged: prunable:1") == 2, out
    # The images cache was re-read before the answer.
    assert listed("prunable:1") == 0 and listed(dk.IMAGE) == 2

    import_everywhere("prunable:2")
    wait_for(lambda: listed("prunable:2") == 2, 30, "both listed again")
    answer = sdk.images.prune(filters={"dangling": False})
    assert [d for d in answer["ImagesDeleted"] if d.get("Untagged") == "prunable:2"] == [{"Untagged": "prunable:2"}] * 2
    assert isinstance(answer["SpaceReclaimed"], int)
    assert listed("prunable:2") == 0


def test_prune_names_the_node_that_failed_and_keeps_the_others(nodes: list[dk.DockerNode], tmp_path: Path) -> None:
    """snode3 dies behind a manager that still counts it healthy: snode1's prune stands, snode3 is named."""
    alive, victim = nodes[0], nodes[2]
    patient = Manager(tmp_path, f"nodes://{alive.addr},{victim.addr}", "--engine-failure-retry", "1000")
    try:
        patient.wait_nodes({"snode1": "Healthy", "snode3": "Healthy"})
        assert alive.docker("run", "--name", "orphan", dk.IMAGE, "true").returncode == 0
        wait_for(lambda: "snode1/orphan" in patient.ok("ps", "-a", "--format", "{{.Names}}"), 30, "orphan listed")
        victim.kill()
        result = patient.docker("container", "prune", "-f")
        assert result.returncode == 1
        assert "snode3: cannot reach node snode3" in result.stderr, result.stderr
        assert "(pruned on snode1: containers deleted: 1, space reclaimed: 0B)" in result.stderr, result.stderr
        assert b"orphan" not in alive.docker("ps", "-a", "--format", "{{.Names}}").stdout
        client = docker.DockerClient(base_url=f"tcp://{patient.addr}", version="1.41")
        with pytest.raises(docker.errors.APIError, match="snode3") as raised:
            client.images.prune()
        assert raised.value.status_code == 500
    finally:
        patient.stop()


# -- swarm mode, plugins, distribution -----------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["node", "ls"],
        ["service", "ls"],
        ["secret", "ls"],
        ["config", "ls"],
        ["swarm", "leave", "--force"],
        ["swarm", "unlock-key"],
        ["service", "ps", "web"],
        ["node", "inspect", "self"],
        ["plugin", "ls"],
        ["plugin", "inspect", "nosuch"],
    ],
)
def test_swarm_mode_and_plugins_as_an_engine_outside_swarm_mode(
    manager: Manager, nodes: list[dk.DockerNode], args: list[str]
) -> None:
    """The docker CLI prints exactly what it prints against a dockerd 20.10 that is not in swarm mode."""
    direct = nodes[0].docker(*args)
    through = manager.docker(*args)
    assert (through.returncode, through.stdout, through.stderr) == (
        direct.returncode,
        direct.stdout.decode(),
        direct.stderr.decode(),
    )


def test_swarm_mode_sentences(manager: Manager) -> None:
    listed = manager.docker("node", "ls")
    assert (listed.returncode, listed.stderr.strip()) == (1, f"Error response from daemon: {NOT_A_MANAGER}")
    left = manager.docker("swarm", "leave", "--force")
    assert left.stderr.strip() == "Error response from daemon: This node is not part of a swarm"
    assert manager.ok("plugin", "ls").split() == ["ID", "NAME", "DESCRIPTION", "ENABLED"]
    init = manager.docker("swarm", "init")
    assert init.returncode == 1 and "swarmctl serves a Docker Swarm (classic) cluster" in init.stderr


#: Requests answered by the manager in an engine's place; none of them changes a real node.
_SWARM_BODIES = ["", "{", "{x", '{"a" 1}', "[1 2]", "tru", "null", '"s"', "5", "[]", "{}", '{"a":1}}', '{"a":"\\q"}']
_FILTERS = [
    "bad",
    "{",
    "[]",
    "null",
    '{"a":1}',
    '{"a":[1]}',
    '{"a":["x"]}',
    '{"a":{"b":1}}',
    "{} x",
    '{"enabled":["x"]}',
]
_REQUESTS: list[tuple[str, str, str | None]] = [
    *[
        ("POST", path, body)
        for path in (
            "/swarm/update?version=1",
            "/swarm/update?version=x",
            "/swarm/update?version=1&rotateWorkerToken=x",
            "/swarm/unlock",
            "/nodes/x/update",
            "/services/create",
            "/services/x/update?version=99999999999999999999",
            "/secrets/x/update",
            "/configs/create",
            "/swarm/leave?force=1",
            "/swarm/join",
            "/swarm/init",
        )
        for body in _SWARM_BODIES
    ],
    *[
        ("GET", f"{path}?filters={quote(f)}", None)
        for path in ("/nodes", "/services", "/tasks", "/plugins")
        for f in _FILTERS
    ],
    *[
        ("GET", path, None)
        for path in (
            "/swarm",
            "/swarm/unlockkey",
            "/services/x?insertDefaults=x",
            "/services?status=x",
            "/tasks/x",
            "/services/x/logs",
            "/services/x/logs?stdout=1",
            "/tasks/x/logs?stderr=none",
            "/plugins",
            "/plugins/foo%2Fbar:1/json",
            "/swarm/x",
            "/nodes/x/y",
        )
    ],
    ("DELETE", "/secrets/x", None),
    ("DELETE", "/plugins/x", None),
    ("POST", "/plugins/x/enable", None),
    ("POST", "/plugins/x/enable?timeout=0", None),
    ("PUT", "/swarm", None),
]


def test_swarm_mode_answers_match_a_real_engine(manager: Manager, nodes: list[dk.DockerNode]) -> None:
    """Status, content type and message of every request above, from the manager and from a real dockerd."""
    differ = []
    for method, path, body in _REQUESTS:
        data = None if body is None else body.encode()
        expected = api(nodes[0].addr, method, f"/v1.41{path}", data)
        got = api(manager.addr, method, f"/v1.41{path}", data)
        if got != expected:
            differ.append(f"{method} {path} {body!r}: engine {expected}, manager {got}")
    assert not differ, "\n".join(differ)
    assert len(_REQUESTS) > 150


def test_sdk_swarm_calls_as_on_an_engine(
    manager: Manager, nodes: list[dk.DockerNode], sdk: docker.DockerClient
) -> None:
    engine = docker.DockerClient(base_url=f"tcp://{nodes[0].addr}", version="1.41")
    for client in (engine, sdk):
        assert client.swarm.leave(force=True) is True  # the SDK reads this 503 as "nothing to leave"
        with pytest.raises(docker.errors.APIError) as raised:
            client.swarm.leave()
        assert raised.value.status_code == 503 and "not part of a swarm" in str(raised.value)
        with pytest.raises(docker.errors.APIError, match="not a swarm manager"):
            client.nodes.list()
        assert client.plugins.list() == []
    with pytest.raises(docker.errors.APIError) as refused:
        sdk.swarm.init()
    assert refused.value.status_code == 503


def test_distribution_asks_one_node(manager: Manager, nodes: list[dk.DockerNode]) -> None:
    """The registry's answer through a node, as that node gives it (here, with no registry reachable, its 500)."""
    expected = api(nodes[0].addr, "GET", "/v1.41/distribution/busybox/json")
    assert api(manager.addr, "GET", "/v1.41/distribution/busybox/json") == expected


# -- /info -----------------------------------------------------------------------------------------------
def missing_keys(engine: Any, ours: Any, path: str = "") -> list[str]:
    """Keys of ``engine``'s answer (recursively, into nested objects) that ``ours`` lacks."""
    if not isinstance(engine, dict):
        return []
    if not isinstance(ours, dict):
        return [f"{path or '/'} is {type(ours).__name__}, not an object"]
    found = []
    for key, value in engine.items():
        if key not in ours:
            found.append(f"{path}/{key}")
        else:
            found += missing_keys(value, ours[key], f"{path}/{key}")
    return found


def test_info_has_every_field_of_an_engine(
    manager: Manager, nodes: list[dk.DockerNode], sdk: docker.DockerClient
) -> None:
    engine = nodes[0].info()
    ours = sdk.info()
    assert missing_keys(engine, ours) == []
    assert missing_keys({"Plugins": {"Volume": 1}, "Swarm": {"NodeID": 1}}, {"Plugins": {}, "Swarm": {}}) == [
        "/Plugins/Volume",
        "/Swarm/NodeID",
    ]  # the comparison itself can fail
    infos = [engine, nodes[1].info()]
    assert ours["NCPU"] == sum(int(str(i["NCPU"])) for i in infos)
    assert ours["MemTotal"] == sum(int(str(i["MemTotal"])) for i in infos)
    assert ours["Driver"] == "vfs" and ours["DriverStatus"] is None
    assert ours["Swarm"]["LocalNodeState"] == "inactive"
    assert ours["Plugins"]["Volume"] == ["local"] and ours["IndexServerAddress"] == engine["IndexServerAddress"]
    assert ours["ServerVersion"].startswith("swarm/") and [" snode1", nodes[0].addr] in ours["SystemStatus"]
    assert abs(time.time() - _rfc3339(ours["SystemTime"])) < 10
    # The manager runs with --log-level debug: its own Debug, which the CLI reads.
    assert manager.ok("info", "--format", "{{.Debug}}").strip() == "true"
    assert manager.ok("info", "--format", "{{.Swarm.LocalNodeState}} {{.CgroupDriver}}").strip() == (
        f"inactive {engine['CgroupDriver']}"
    )
    assert " Nodes: 2" in manager.ok("info")


def _rfc3339(stamp: str) -> float:
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


# -- sizes -------------------------------------------------------------------------------------------------
def test_ps_and_inspect_with_sizes(manager: Manager, sdk: docker.DockerClient, clean: None) -> None:
    for node in ("snode1", "snode2"):
        manager.ok(
            "run",
            "-d",
            "--name",
            f"sized-{node}",
            *on_node(node),
            dk.IMAGE,
            "sh",
            "-c",
            "head -c 1000 /dev/zero > /f; sleep 300",
        )

    def sizes() -> dict[str, str]:
        rows = manager.ok("ps", "-s", "--format", "{{.Names}}|{{.Size}}").split("\n")
        return dict(row.split("|") for row in rows if row)

    wait_for(lambda: set(sizes().values()) == {"1kB (virtual 1.98MB)"}, 30, "both sizes computed", interval=0.3)
    assert sorted(sizes()) == ["snode1/sized-snode1", "snode2/sized-snode2"]
    one = manager.ok("ps", "-s", "--filter", "node=snode2", "--format", "{{.Names}} {{.Size}}")
    assert one == "snode2/sized-snode2 1kB (virtual 1.98MB)\n"
    assert manager.ok("inspect", "--size", "-f", "{{.SizeRw}} {{.Node.Name}}", "sized-snode1").strip() == "1000 snode1"
    listed = sdk.api.containers(size=True)
    assert sorted((c["Names"][0], c["SizeRw"]) for c in listed) == [
        ("/snode1/sized-snode1", 1000),
        ("/snode2/sized-snode2", 1000),
    ]
    assert "SizeRw" not in sdk.api.containers()[0]  # no size asked: the cache answers, without sizes


# -- websocket attach ----------------------------------------------------------------------------------
def test_websocket_attach_relayed_to_the_node(manager: Manager, clean: None) -> None:
    for node in ("snode1", "snode2"):
        manager.ok(
            "run",
            "-d",
            "-i",
            "--name",
            f"echo-{node}",
            *on_node(node),
            dk.IMAGE,
            "sh",
            "-c",
            'while read l; do echo "$l from $(hostname)"; done',
        )
    hostnames = {
        n: manager.ok("inspect", "-f", "{{.Config.Hostname}}", f"echo-{n}").strip() for n in ("snode1", "snode2")
    }

    async def talk(name: str) -> list[Any]:
        url = f"http://{manager.addr}/v1.41/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str("hello\n")
            first = await asyncio.wait_for(ws.receive(), 20)
            await ws.send_bytes(b"bytes\n")
            second = await asyncio.wait_for(ws.receive(), 20)
            return [(first.type, first.data), (second.type, second.data)]

    async def refused() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"http://{manager.addr}/containers/nosuch/attach/ws?stream=1"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    for node in ("snode1", "snode2"):
        host = hostnames[node]
        assert asyncio.run(talk(f"{node}/echo-{node}")) == [
            (aiohttp.WSMsgType.BINARY, f"hello from {host}\n".encode()),
            (aiohttp.WSMsgType.BINARY, f"bytes from {host}\n".encode()),
        ]
    assert asyncio.run(refused()) == 404
    # Closing the websocket detaches: the container goes on running.
    assert manager.ok("inspect", "-f", "{{.State.Running}}", "echo-snode1").strip() == "true"
