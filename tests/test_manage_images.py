"""Images and build through ``swarmctl manage``: real dockerd nodes; the docker CLI, compose and the SDK as clients.

One set of nodes serves the module (starting dockerd is the slow part).
Where an image ended up is read from the nodes themselves, behind the
manager's back, so a test cannot pass by trusting the manager's own cache.

- node1, node2: ordinary nodes;
- node3: its data root is a small tmpfs, so a large image fails to load
  there (the engine's own "no space left on device") while the others take it.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import docker
import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, managing, sdk_client
from tests.support.process import wait_for
from tests.support.swarm import Join

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

NAMES = ("node1", "node2", "node3")
#: node3's disk: room for busybox and the module's small images, not for BIG bytes more.
SMALL_DISK = "160m"
BIG = 200_000_000


class SmallDiskNode(dk.DockerNode):
    """A node whose data root is a tmpfs of ``SMALL_DISK`` (unmounted by ``remove``, as dockerd's own mounts are)."""

    def start(self, timeout: float = 60) -> dk.DockerNode:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        if not os.path.ismount(data):
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(data)],
                capture_output=True,
                check=False,
            )
            assert mounted.returncode == 0, mounted.stderr
        return super().start(timeout)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes(
        [dk.DockerNode("node1"), dk.DockerNode("node2"), SmallDiskNode("node3")], tmp_path_factory.mktemp("image")
    ) as made:
        yield made


@pytest.fixture(scope="module")
def rootfs(nodes: list[dk.DockerNode], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox root file system the nodes' image was imported from (a tar for ``docker import``)."""
    return dk.busybox_tarball(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Iterator[Manager]:
    with managing(tmp_path_factory.mktemp("manager"), nodes) as made:
        yield made


@pytest.fixture(scope="module")
def sdk(manager: Manager) -> Iterator[docker.DockerClient]:
    with sdk_client(manager) as client:
        yield client


@pytest.fixture
def clean(manager: Manager) -> Iterator[None]:
    yield
    manager.remove_containers()


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context: a Dockerfile with an ARG, a RUN and a COPY."""
    folder = tmp_path / "context"
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM {dk.IMAGE}\nARG GREETING=none\nRUN echo $GREETING > /greeting\nCOPY payload /payload\n"
    )
    (folder / "payload").write_text("copied\n")
    return folder


def holders(nodes: list[dk.DockerNode], ref: str) -> list[str]:
    """The nodes that have image ``ref``, asked directly."""
    return [node.name for node in nodes if node.docker("image", "inspect", ref).returncode == 0]


def image_id(node: dk.DockerNode, ref: str) -> str:
    result = node.docker("image", "inspect", "-f", "{{.Id}}", ref)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


def raw_docker(manager: Manager, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    """The docker CLI's stdout as bytes (a tar), failing the test on a non-zero exit."""
    result = subprocess.run(
        [dk.DOCKER, "-H", f"tcp://{manager.addr}", *args],
        input=input,
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def repo_tags(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return [tag for entry in json.load(member) for tag in entry.get("RepoTags") or []]


# -- build ------------------------------------------------------------------------------------------------


def test_build_lands_where_constrained_and_is_seen_at_once(
    manager: Manager, nodes: list[dk.DockerNode], context: Path, clean: None
) -> None:
    rules = ("--build-arg", "constraint:node==node2", "--build-arg", "GREETING=hello")
    out = manager.docker("build", *rules, "-t", "built:two", str(context))
    assert out.returncode == 0, out.stderr
    assert "Successfully tagged built:two" in out.stdout
    # The rule was taken out of the build args: the engine would warn about an unused one.
    assert "constraint" not in out.stdout + out.stderr
    assert holders(nodes, "built:two") == ["node2"]
    # No wait: the node's images were refreshed before the build's answer ended.
    assert "built:two" in manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    # The next run goes where the image is.
    assert manager.ok("run", "--rm", "built:two", "cat", "/greeting", "/payload") == "hello\ncopied\n"

    manager.ok("build", "-q", "--build-arg", "constraint:node==node1", "-t", "built:one", str(context))
    assert holders(nodes, "built:one") == ["node1"]
    near = manager.docker("build", "-q", "--build-arg", "affinity:image==built:two", "-t", "built:near", str(context))
    assert near.returncode == 0, near.stderr
    assert holders(nodes, "built:near") == ["node2"]


def test_build_refusals_say_why(manager: Manager, context: Path) -> None:
    huge = manager.docker("build", "-q", "-m", "100000g", str(context))
    assert huge.returncode == 1
    assert "no resources available" in huge.stderr and "memory" in huge.stderr
    malformed = manager.docker("build", "-q", "--build-arg", "constraint:node=node1", str(context))
    assert malformed.returncode == 1 and 'invalid constraint "node=node1"' in malformed.stderr
    nowhere = manager.docker("build", "-q", "--build-arg", "constraint:node==nowhere", str(context))
    assert nowhere.returncode == 1 and "satisfies the constraint node==nowhere" in nowhere.stderr
    (context / "Dockerfile").write_text(f"FROM {dk.IMAGE}\nRUN echo about to fail; exit 3\n")
    failing = manager.docker("build", str(context))
    assert failing.returncode == 3  # the CLI exits with the failed command's code, as with one engine
    assert "about to fail" in failing.stdout
    assert "returned a non-zero code: 3" in failing.stderr
    for result in (huge, malformed, nowhere, failing):
        assert "swarmctl" not in result.stderr and "Traceback" not in result.stderr


def test_build_reserves_its_memory_while_it_runs_and_can_be_cancelled(
    manager: Manager, nodes: list[dk.DockerNode], tmp_path: Path, clean: None
) -> None:
    node2 = nodes[1]
    memory = int(int(str(node2.info()["MemTotal"])) * 0.6)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {dk.IMAGE}\nRUN echo started && sleep 120\n")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(dockerfile, arcname="Dockerfile")
    buildargs = quote(json.dumps({"constraint:node": "=node2"}))
    path = f"/v1.41/build?buildid=slow-build&t=slow:1&memory={memory}&buildargs={buildargs}"
    host, port = manager.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", path, body=context.getvalue(), headers={"Content-Type": "application/x-tar"})
        response = conn.getresponse()
        assert response.status == 200
        seen = b""
        while b'{"stream":"started' not in seen:
            line = response.readline()
            assert line, seen
            seen += line
        # While it runs, the build's memory is taken on node2.
        refused = manager.docker("run", "--rm", "-m", str(memory), "-e", "constraint:node==node2", dk.IMAGE, "true")
        assert refused.returncode == 125 and "no resources available" in refused.stderr, refused.stderr
        cancel = http.client.HTTPConnection(host, int(port), timeout=30)
        cancel.request("POST", "/v1.41/build/cancel?id=slow-build")
        assert cancel.getresponse().status == 200
        rest = response.read()  # the build's answer ends, saying why
        assert json.loads(rest.splitlines()[-1])["error"] == "the build was cancelled"
    finally:
        conn.close()
    wait_for(
        lambda: "sleep 120" not in node2.docker("ps", "-a", "--no-trunc", "--format", "{{.Command}}").stdout.decode(),
        30,
        "the build's container to be gone from node2",
    )
    assert holders(nodes, "slow:1") == []
    # Its memory is free again; and the build ID is forgotten.
    assert manager.ok("run", "--rm", "-m", str(memory), "-e", "constraint:node==node2", dk.IMAGE, "echo", "fits")
    again = http.client.HTTPConnection(host, int(port), timeout=30)
    again.request("POST", "/v1.41/build/cancel?id=slow-build")
    answer = again.getresponse()
    assert answer.status == 404
    assert json.loads(answer.read()) == {"message": "no build with ID slow-build is running on this cluster"}


def test_build_through_the_sdk_and_compose(
    manager: Manager, sdk: docker.DockerClient, nodes: list[dk.DockerNode], context: Path, tmp_path: Path
) -> None:
    image, logs = sdk.images.build(
        path=str(context), tag="sdk:built", buildargs={"constraint:node": "=node1", "GREETING": "from the sdk"}
    )
    assert image.tags == ["sdk:built"]
    assert any("Successfully built" in str(entry.get("stream", "")) for entry in logs)
    assert holders(nodes, "sdk:built") == ["node1"]
    assert image.id == image_id(nodes[0], "sdk:built")
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 3"):
        sdk.images.build(fileobj=io.BytesIO(f"FROM {dk.IMAGE}\nRUN exit 3\n".encode()), rm=True)
    with pytest.raises(docker.errors.APIError) as not_a_tar:
        sdk.images.build(fileobj=io.BytesIO(b"this is not a tar"), custom_context=True)
    assert not_a_tar.value.status_code == 500 and not_a_tar.value.explanation == "unexpected EOF"

    (tmp_path / "docker-compose.yml").write_text(
        "version: '2.4'\nservices:\n  app:\n    image: composed:1\n"
        f"    build:\n      context: {context}\n      args:\n        constraint:node: '=node3'\n"
    )
    composed = subprocess.run(
        ["docker-compose", "-p", "imgs", "build"],
        cwd=tmp_path,
        env={**os.environ, "DOCKER_HOST": f"tcp://{manager.addr}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert composed.returncode == 0, composed.stderr
    assert holders(nodes, "composed:1") == ["node3"]


def test_build_cache_prune_on_every_node(manager: Manager, sdk: docker.DockerClient) -> None:
    pruned = sdk.api.prune_builds()
    assert set(pruned) == {"CachesDeleted", "SpaceReclaimed"}
    assert isinstance(pruned["SpaceReclaimed"], int)
    assert "Total reclaimed space:" in manager.ok("builder", "prune", "-f")


def test_buildkit_is_refused_clearly(manager: Manager) -> None:
    host, port = manager.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v1.41/build?version=2&session=abc", body=b"", headers={"Content-Type": "application/x-tar"})
    answer = conn.getresponse()
    assert answer.status == 501
    assert "BuildKit" in json.loads(answer.read())["message"]


# -- commit -----------------------------------------------------------------------------------------------


def test_commit_on_the_containers_node(
    manager: Manager, sdk: docker.DockerClient, nodes: list[dk.DockerNode], clean: None
) -> None:
    script = "echo kept > /made; sleep 300"
    manager.ok("run", "-d", "--name", "box", "-e", "constraint:node==node1", dk.IMAGE, "sh", "-c", script)
    wait_for(lambda: manager.docker("exec", "box", "cat", "/made").stdout == "kept\n", 30, "the file in the container")
    committed = manager.ok("commit", "-m", "from the cli", "box", "committed:cli").strip()
    assert committed.startswith("sha256:")
    assert holders(nodes, "committed:cli") == ["node1"]
    assert committed == image_id(nodes[0], "committed:cli")
    assert "committed:cli" in manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert manager.ok("run", "--rm", "committed:cli", "cat", "/made") == "kept\n"
    image = sdk.containers.get("box").commit(repository="committed", tag="sdk")
    assert image.tags == ["committed:sdk"]
    assert holders(nodes, "committed:sdk") == ["node1"]
    missing = manager.docker("commit", "nosuch", "committed:none")
    assert missing.returncode == 1 and "No such container: nosuch" in missing.stderr


# -- save and load ----------------------------------------------------------------------------------------


def test_save_then_load_onto_every_node(
    manager: Manager, sdk: docker.DockerClient, nodes: list[dk.DockerNode], context: Path, tmp_path: Path
) -> None:
    for tag in ("one", "two"):  # two images (the GREETING differs), not one image with two tags
        rules = ("--build-arg", "constraint:node==node2", "--build-arg", f"GREETING={tag}")
        manager.ok("build", "-q", *rules, "-t", f"saved:{tag}", str(context))
    assert holders(nodes, "saved:one") == ["node2"]
    saved = raw_docker(manager, "save", "saved:one")
    assert "manifest.json" in tar_names(saved) and repo_tags(saved) == ["saved:one"]
    built_id = image_id(nodes[1], "saved:one")
    manager.ok("rmi", "saved:one")
    assert holders(nodes, "saved:one") == []

    # Loaded onto every node, said once.
    assert manager.ok("load", input=saved) == "Loaded image: saved:one\n"
    assert holders(nodes, "saved:one") == list(NAMES)
    assert {image_id(node, "saved:one") for node in nodes} == {built_id}

    both = tmp_path / "both.tar"
    manager.ok("save", "-o", str(both), "saved:one", "saved:two")
    assert sorted(repo_tags(both.read_bytes())) == ["saved:one", "saved:two"]
    manager.ok("rmi", "saved:one", "saved:two")
    assert sorted(manager.ok("load", "-i", str(both)).splitlines()) == [
        "Loaded image: saved:one",
        "Loaded image: saved:two",
    ]
    assert holders(nodes, "saved:two") == list(NAMES)

    data = b"".join(sdk.images.get("saved:two").save(named=True))
    assert repo_tags(data) == ["saved:two"]
    loaded = sdk.images.load(data)
    assert [image.tags for image in loaded] == [["saved:two"]]

    missing = manager.docker("save", "-o", str(tmp_path / "none.tar"), "nosuch")
    assert missing.returncode == 1 and "No such image: nosuch" in missing.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        b"".join(sdk.images.get("nosuch").save())
    # Two images that no one node has together cannot be one tar.
    manager.ok("build", "-q", "--build-arg", "constraint:node==node1", "-t", "split:a", str(context))
    manager.ok("build", "-q", "--build-arg", "constraint:node==node2", "-t", "split:b", str(context))
    split = manager.docker("save", "-o", str(tmp_path / "split.tar"), "split:a", "split:b")
    assert split.returncode == 1
    assert "no node has all of the images split:a, split:b" in split.stderr
    assert "split:a is on node1" in split.stderr and "split:b is on node2" in split.stderr
    garbage = manager.docker("load", input=b"this is not a tar\n")
    assert garbage.returncode == 1
    assert all(f"{name}: " in garbage.stderr for name in NAMES), garbage.stderr


def test_load_that_fails_on_one_node_says_which(manager: Manager, nodes: list[dk.DockerNode], tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {dk.IMAGE}\nRUN head -c {BIG} /dev/zero > /big\n")
    built = nodes[0].docker("build", "-q", "-t", "big:1", str(folder), timeout=300)
    assert built.returncode == 0, built.stderr
    tarball = tmp_path / "big.tar"
    assert nodes[0].docker("save", "-o", str(tarball), "big:1", timeout=300).returncode == 0
    try:
        loaded = manager.docker("load", "-i", str(tarball), timeout=300)
        assert loaded.returncode == 1
        assert "Loaded image: big:1" in loaded.stdout  # the nodes that took it said so
        assert "node3: " in loaded.stderr and "no space left on device" in loaded.stderr, loaded.stderr
        assert "loaded on node1, node2" in loaded.stderr
        assert holders(nodes, "big:1") == ["node1", "node2"]
    finally:
        tarball.unlink(missing_ok=True)
        manager.docker("rmi", "big:1")


# -- import -----------------------------------------------------------------------------------------------


def test_import_gives_an_id_that_names_the_image_everywhere(
    manager: Manager, sdk: docker.DockerClient, nodes: list[dk.DockerNode], rootfs: Path, clean: None
) -> None:
    imported = manager.ok("import", "--change", "CMD echo from-import", str(rootfs), "imported:cli").strip()
    assert imported.startswith("sha256:") and " " not in imported
    assert holders(nodes, "imported:cli") == list(NAMES)
    assert {image_id(node, "imported:cli") for node in nodes} == {imported}
    assert json.loads(manager.ok("image", "inspect", imported))[0]["RepoTags"] == ["imported:cli"]
    assert manager.ok("run", "--rm", "imported:cli") == "from-import\n"

    piped = manager.ok("import", "-", "imported:stdin", input=rootfs.read_bytes()).strip()
    assert {image_id(node, "imported:stdin") for node in nodes} == {piped}

    answer = sdk.api.import_image(src=str(rootfs), repository="imported", tag="sdk")
    status = json.loads(answer.strip().splitlines()[-1])["status"]
    assert sdk.images.get(status).tags == ["imported:sdk"]
    assert holders(nodes, "imported:sdk") == list(NAMES)

    broken = manager.docker("import", "-", "imported:broken", input=b"this is not a tar\n")
    assert broken.returncode == 1 and "Error response from daemon" in broken.stderr
    assert holders(nodes, "imported:broken") == []


def test_pull_still_says_which_node(manager: Manager) -> None:
    pulled = manager.docker("pull", "127.0.0.1:1/nothing:1", timeout=120)
    assert pulled.returncode == 1
    assert any(f"{name}: " in pulled.stderr + pulled.stdout for name in NAMES), pulled.stderr


# -- registry ---------------------------------------------------------------------------------------------


def test_push_search_and_login_answer_as_the_engine(manager: Manager, sdk: docker.DockerClient, tmp_path: Path) -> None:
    manager.ok("tag", dk.IMAGE, "127.0.0.1:1/pushed:1")
    pushed = manager.docker("push", "127.0.0.1:1/pushed:1")
    assert pushed.returncode == 1
    assert "The push refers to repository [127.0.0.1:1/pushed]" in pushed.stdout
    assert "connection refused" in pushed.stderr
    nothing = manager.docker("push", "127.0.0.1:1/nothing:1")
    assert nothing.returncode == 1 and "An image does not exist locally with the tag" in nothing.stderr
    searched = manager.docker("search", "127.0.0.1:1/anything")
    assert searched.returncode == 1 and "connection refused" in searched.stderr
    login = subprocess.run(
        [dk.DOCKER, "-H", f"tcp://{manager.addr}", "login", "-u", "user", "--password-stdin", "127.0.0.1:1"],
        input="secret\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "config")},
        check=False,
    )
    assert login.returncode == 1 and "Error response from daemon" in login.stderr
    assert "connection refused" in login.stderr
    for result in (pushed, nothing, searched):
        assert "swarmctl" not in result.stderr

    progress = sdk.images.push("127.0.0.1:1/pushed", tag="1")
    assert "connection refused" in progress
    with pytest.raises(docker.errors.APIError, match="connection refused"):
        sdk.login("user", "secret", registry="127.0.0.1:1")
    with pytest.raises(docker.errors.APIError, match="connection refused"):
        sdk.images.search("127.0.0.1:1/anything")
    manager.ok("rmi", "127.0.0.1:1/pushed:1")


# -- listing and inspecting -------------------------------------------------------------------------------


def test_listing_filters_inspect_history_and_removal(
    manager: Manager, sdk: docker.DockerClient, nodes: list[dk.DockerNode], context: Path
) -> None:
    build = ("build", "-q", "--label", "purpose=listing", "--build-arg", "constraint:node==node2", "-t", "listed:1")
    first = manager.ok(*build, str(context)).strip()
    (context / "payload").write_text("changed\n")
    second = manager.ok(*build, str(context)).strip()
    assert first != second  # the first one lost its tag: dangling now

    def ids(*args: str) -> list[str]:
        return manager.ok("images", "-q", "--no-trunc", *args).split()

    assert ids("listed") == [second]
    assert ids("--filter", "reference=listed:*") == [second]
    assert ids("--filter", "label=purpose=listing") == [second, first]
    assert first in ids("--filter", "dangling=true") and second not in ids("--filter", "dangling=true")
    assert {first, second} <= set(ids())
    digests = manager.ok("images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}", "listed")
    assert digests.split() == ["listed:1", "<none>"]
    inspected = json.loads(manager.ok("image", "inspect", "listed:1"))[0]
    assert inspected["Id"] == second and inspected["Config"]["Labels"] == {"purpose": "listing"}
    assert json.loads(manager.ok("image", "inspect", second.removeprefix("sha256:")[:12]))[0]["Id"] == second
    history = manager.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "listed:1")
    assert "COPY" in history and "echo $GREETING" in history

    assert [image.id for image in sdk.images.list(name="listed")] == [second]
    assert [image.id for image in sdk.images.list(filters={"label": "purpose=listing"})] == [second, first]
    assert sdk.images.get("listed:1").history()[0]["Id"] == second

    manager.ok("image", "rm", "-f", first)
    assert ids("--filter", "label=purpose=listing") == [second]
    removed = manager.ok("image", "rm", "-f", "listed:1")
    assert removed.count("Untagged: listed:1") == 1
    assert holders(nodes, "listed:1") == []


# -- through a replica ------------------------------------------------------------------------------------


def test_build_load_and_import_through_a_replica(
    nodes: list[dk.DockerNode], context: Path, rootfs: Path, tmp_path: Path
) -> None:
    """Build, load and import work through a replica, which forwards them to the primary (bodies streamed)."""
    url = f"sqlite://{tmp_path}/kv.db"
    joins = [Join(tmp_path, node.addr, url, heartbeat="1s", ttl="5s").start() for node in nodes[:2]]
    managers = [Manager(tmp_path, url, replication_ttl="3s") for _ in range(2)]
    try:
        wait_for(
            lambda: sorted(m.info().get("Role", "") for m in managers) == ["primary", "replica"],
            60,
            "one primary and one replica",
            interval=0.3,
        )
        replica = next(m for m in managers if m.info().get("Role") == "replica")
        replica.wait_nodes({"node1": "Healthy", "node2": "Healthy"})
        built = replica.docker("build", "--build-arg", "constraint:node==node2", "-t", "replicated:1", str(context))
        assert built.returncode == 0, built.stderr
        assert holders(nodes, "replicated:1") == ["node2"]
        saved = raw_docker(replica, "save", "replicated:1")
        assert replica.ok("load", input=saved) == "Loaded image: replicated:1\n"
        assert holders(nodes[:2], "replicated:1") == ["node1", "node2"]
        imported = replica.ok("import", str(rootfs), "replicated:imported").strip()
        assert {image_id(node, "replicated:imported") for node in nodes[:2]} == {imported}
        replica.ok("rmi", "replicated:1", "replicated:imported")
    finally:
        for manager in managers:
            manager.process.kill()
        for join in joins:
            join.kill()
