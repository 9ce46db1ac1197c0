"""Networks and volumes through the manager: one meaning per name, with the docker CLI and the Docker SDK.

Three real dockerd nodes share an etcd (its v2 API) as their cluster store, as
Docker Swarm's own deployments did, so that a multi-host (``overlay``) network
really is one network seen from every node, next to the local ``bridge``
networks that live on one node each. (dockerd 20.10 with a ZooKeeper store
crashes when an overlay network is removed, so etcd it is.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from tests.support import docker as dk
from tests.support.etcd import EtcdCluster
from tests.support.manager import Manager, api, managing, sdk_client
from tests.support.process import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(dk.available() is not None, reason=str(dk.available())),
]
NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), extra_args=["--enable-v2"]) as store:
        store.start()
        made = []
        for name in NODES:
            node = dk.DockerNode(name)
            node.extra_args = [f"--cluster-store=etcd://{store.endpoints[0]}", f"--cluster-advertise={node.addr}"]
            made.append(node)
        with dk.running_nodes(made, tmp_path_factory.mktemp("image")) as running:
            yield running


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Iterator[Manager]:
    with managing(tmp_path_factory.mktemp("manager"), nodes) as made:
        yield made


@pytest.fixture
def sdk(manager: Manager) -> Iterator[docker.DockerClient]:
    with sdk_client(manager) as client:
        yield client


@pytest.fixture
def clean(manager: Manager, nodes: list[dk.DockerNode]) -> Iterator[None]:
    """Every container, custom network and volume the test made goes, on every node."""
    yield
    for node in nodes:
        ids = node.docker("ps", "-aq").stdout.split()
        if ids:
            node.docker("rm", "-f", *[i.decode() for i in ids])
    for node in nodes:
        for network in node.docker("network", "ls", "-q", "--filter", "type=custom").stdout.split():
            node.docker("network", "rm", network.decode())
        for volume in node.docker("volume", "ls", "-q").stdout.split():
            node.docker("volume", "rm", "-f", volume.decode())
    wait_for(lambda: manager.ok("network", "ls", "-q", "--filter", "type=custom") == "", 30, "networks gone")
    wait_for(lambda: manager.ok("volume", "ls", "-q") == "", 30, "volumes gone")


def node_of(manager: Manager, container: str) -> str:
    return str(json.loads(manager.ok("inspect", container))[0]["Node"]["Name"])


def networks_on(node: dk.DockerNode) -> set[str]:
    return set(node.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split())


def volumes_on(node: dk.DockerNode) -> set[str]:
    return set(node.docker("volume", "ls", "--format", "{{.Name}}").stdout.decode().split())


def raw(manager: Manager, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    """The status and decoded answer of one plain request; errors always exactly ``application/json``."""
    status, content_type, answer = api(manager.addr, method, path, body)
    assert status < 300 or content_type == "application/json"
    return status, answer


def test_local_network_lives_on_one_node_and_takes_its_containers(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    network_id = manager.ok("network", "create", "front").strip()
    holders = [n.name for n in nodes if "front" in networks_on(n)]
    assert len(holders) == 1, holders
    home = holders[0]
    listed = manager.ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert listed.splitlines() == ["front bridge local"]
    assert json.loads(manager.ok("network", "inspect", "front"))[0]["Id"] == network_id
    assert json.loads(manager.ok("network", "inspect", network_id[:10]))[0]["Name"] == "front"
    assert json.loads(manager.ok("network", "inspect", f"{home}/front"))[0]["Id"] == network_id

    taken = manager.docker("network", "create", "front")
    assert taken.returncode == 1 and "network with name front already exists" in taken.stderr

    for n in range(3):
        manager.ok("run", "-d", "--name", f"web{n}", "--network", "front", dk.IMAGE, "sleep", "300")
    assert {node_of(manager, f"web{n}") for n in range(3)} == {home}
    # They reach each other by name, as on one engine.
    assert manager.ok("exec", "web0", "ping", "-c", "1", "-W", "5", "web2").count("1 packets received") == 1

    elsewhere = next(name for name in NODES if name != home)
    refused = manager.docker("run", "-d", "--network", "front", "-e", f"constraint:node=={elsewhere}", dk.IMAGE, "true")
    assert refused.returncode == 125
    assert f"constraint node=={elsewhere}" in refused.stderr and f"it is on {home}" in refused.stderr

    in_use = manager.docker("network", "rm", "front")
    assert in_use.returncode == 1 and "active endpoints" in in_use.stderr
    manager.ok("network", "disconnect", "front", "web1")
    assert "front" not in json.loads(manager.ok("inspect", "web1"))[0]["NetworkSettings"]["Networks"]
    manager.ok("network", "connect", "front", "web1")
    assert "front" in json.loads(manager.ok("inspect", "web1"))[0]["NetworkSettings"]["Networks"]

    manager.ok("rm", "-f", "web0", "web1", "web2")
    manager.ok("network", "rm", "front")
    assert all("front" not in networks_on(n) for n in nodes)


def test_node_slash_name_places_the_network_and_its_containers(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    manager.ok("network", "create", "node3/back")
    assert "back" in networks_on(nodes[2]) and "back" not in networks_on(nodes[0])
    manager.ok("run", "-d", "--name", "api", "--network", "node3/back", dk.IMAGE, "sleep", "300")
    assert node_of(manager, "api") == "node3"
    # `network connect` goes to the container's node; a network of another node is refused, naming both.
    manager.ok("network", "create", "node1/other")
    manager.ok("run", "-d", "--name", "lonely", "-e", "constraint:node==node2", dk.IMAGE, "sleep", "300")
    refused = manager.docker("network", "connect", "other", "lonely")
    assert refused.returncode == 1
    assert "is on node node2" in refused.stderr and "network other is on node1" in refused.stderr
    # Pinned names that contradict each other are refused with the reason.
    clash = manager.docker("run", "-d", "--network", "node1/back", dk.IMAGE, "true")
    assert clash.returncode == 125 and "network node1/back" in clash.stderr


def test_empty_network_follows_its_first_container(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    manager.ok("network", "create", "project_default")
    first = next(n.name for n in nodes if "project_default" in networks_on(n))
    target = next(name for name in NODES if name != first)
    manager.ok(
        "run", "-d", "--name", "pinned", "--network", "project_default", "-e", f"constraint:node=={target}",
        dk.IMAGE, "sleep", "300",
    )  # fmt: skip
    assert node_of(manager, "pinned") == target
    assert [n.name for n in nodes if "project_default" in networks_on(n)] == [target]
    # Not empty any more: the next container joins it where it now is, and it stays there.
    manager.ok("run", "-d", "--name", "follower", "--network", "project_default", dk.IMAGE, "sleep", "300")
    assert node_of(manager, "follower") == target
    stay = manager.docker(
        "run", "-d", "--network", "project_default", "-e", f"constraint:node=={first}", dk.IMAGE, "true"
    )
    assert stay.returncode == 125 and f"it is on {target}" in stay.stderr


def test_builtin_networks_are_told_apart_by_node(manager: Manager, clean: None) -> None:
    names = manager.ok("network", "ls", "--format", "{{.Name}}").split()
    assert {f"{node}/{builtin}" for node in NODES for builtin in ("host", "none")} <= set(names)
    ambiguous = manager.docker("network", "inspect", "host")
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr and "node2" in ambiguous.stderr
    assert json.loads(manager.ok("network", "inspect", "node2/host"))[0]["Driver"] == "host"
    manager.ok("run", "-d", "--name", "hostnet", "--network", "host", dk.IMAGE, "sleep", "300")
    assert json.loads(manager.ok("inspect", "hostnet"))[0]["HostConfig"]["NetworkMode"] == "host"
    unknown = manager.docker("run", "--rm", "--network", "nosuch", dk.IMAGE, "true")
    assert unknown.returncode == 125 and "network nosuch not found" in unknown.stderr


def test_multi_host_network_is_one_network_seen_from_every_node(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    network_id = manager.ok("network", "create", "-d", "overlay", "mesh").strip()
    wait_for(lambda: all("mesh" in networks_on(n) for n in nodes), 30, "every node to see the overlay network")
    listed = manager.ok("network", "ls", "--filter", "name=mesh", "--format", "{{.ID}} {{.Name}} {{.Scope}}")
    assert listed.splitlines() == [f"{network_id[:12]} mesh global"]
    assert json.loads(manager.ok("network", "inspect", "mesh"))[0]["Scope"] == "global"
    for node in ("node1", "node3"):
        manager.ok(
            "create", "--name", f"on-{node}", "--network", "mesh", "-e", f"constraint:node=={node}", dk.IMAGE, "true"
        )
        assert node_of(manager, f"on-{node}") == node
    manager.ok("rm", "on-node1", "on-node3")
    manager.ok("network", "rm", "mesh")
    wait_for(lambda: all("mesh" not in networks_on(n) for n in nodes), 30, "the overlay network gone everywhere")


def test_plain_volume_is_on_every_node_and_removed_from_all(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    assert manager.ok("volume", "create", "shared").strip() == "shared"
    assert all("shared" in volumes_on(n) for n in nodes)
    assert manager.ok("volume", "ls", "--format", "{{.Name}}").split() == ["shared"]
    inspected = json.loads(manager.ok("volume", "inspect", "shared"))[0]
    assert inspected["Status"]["Nodes"] == list(NODES) and inspected["Driver"] == "local"
    manager.ok("run", "--rm", "-v", "shared:/data", "-e", "constraint:node==node2", dk.IMAGE, "touch", "/data/x")
    manager.ok("run", "-d", "--name", "user", "-v", "shared:/data", dk.IMAGE, "sleep", "300")
    in_use = manager.docker("volume", "rm", "shared")
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr
    assert all("shared" in volumes_on(n) for n in nodes), "a refused removal removes nothing"
    manager.ok("rm", "-f", "user")
    manager.ok("volume", "rm", "shared")
    assert all("shared" not in volumes_on(n) for n in nodes)
    missing = manager.docker("volume", "inspect", "shared")
    assert missing.returncode == 1 and "no such volume" in missing.stderr


def test_volume_of_some_nodes_places_its_containers(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    manager.ok("volume", "create", "node2/local-data")
    assert [n.name for n in nodes if "local-data" in volumes_on(n)] == ["node2"]
    assert json.loads(manager.ok("volume", "inspect", "local-data"))[0]["Status"]["Nodes"] == ["node2"]
    for n in range(3):
        manager.ok("run", "-d", "--name", f"reader{n}", "-v", "local-data:/data", dk.IMAGE, "sleep", "300")
        assert node_of(manager, f"reader{n}") == "node2"
    manager.ok("run", "-d", "--name", "pinned-vol", "-v", "node3/fresh:/data", dk.IMAGE, "sleep", "300")
    assert node_of(manager, "pinned-vol") == "node3"
    assert [n.name for n in nodes if "fresh" in volumes_on(n)] == ["node3"]
    with_mount = manager.ok(
        "run", "-d", "--mount", "type=volume,source=local-data,target=/m", dk.IMAGE, "sleep", "300"
    ).strip()
    assert node_of(manager, with_mount) == "node2"
    anonymous = manager.ok("volume", "create").strip()
    assert sum(anonymous in volumes_on(n) for n in nodes) == 1


def test_sdk_networks_and_volumes(manager: Manager, sdk: docker.DockerClient, clean: None) -> None:
    network = sdk.networks.create("sdknet", driver="bridge", labels={"team": "a"})
    assert sdk.networks.get("sdknet").id == network.id
    assert [n.name for n in sdk.networks.list(names=["sdknet"])] == ["sdknet"]
    assert [n.name for n in sdk.networks.list(filters={"label": "team=a"})] == ["sdknet"]
    container = sdk.containers.run(dk.IMAGE, "sleep 300", detach=True, network="sdknet", name="sdkbox")
    network.reload()
    assert container.id in network.attrs["Containers"]
    network.disconnect(container)
    network.connect(container, aliases=["alias1"])
    container.reload()
    assert "alias1" in container.attrs["NetworkSettings"]["Networks"]["sdknet"]["Aliases"]
    with pytest.raises(docker.errors.APIError) as in_use:
        network.remove()
    assert in_use.value.status_code == 403
    container.remove(force=True)
    network.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.networks.get("sdknet")

    volume = sdk.volumes.create("sdkvol", labels={"team": "b"})
    assert volume.name == "sdkvol" and sdk.volumes.get("sdkvol").attrs["Status"]["Nodes"] == list(NODES)
    assert [v.name for v in sdk.volumes.list(filters={"label": "team=b"})] == ["sdkvol"]
    volume.remove()
    assert sdk.volumes.list() == []


def test_bad_requests_get_the_engines_answers(manager: Manager, clean: None) -> None:
    assert raw(manager, "POST", "/v1.41/networks/create", b"{not json")[0] == 400
    assert raw(manager, "POST", "/v1.41/networks/create", b"[1]")[0] == 400
    status, answer = raw(manager, "POST", "/v1.41/networks/create", b"{}")
    assert status == 500 and answer["message"] == "invalid name: "  # the engine says 500 too
    assert raw(manager, "GET", "/v1.41/networks/nosuch") == (404, {"message": "network nosuch not found"})
    assert raw(manager, "DELETE", "/v1.41/volumes/nosuch") == (404, {"message": "get nosuch: no such volume"})
    status, answer = raw(manager, "GET", '/v1.41/networks?filters={"bogus":["x"]}')
    assert status == 400 and "Invalid filter 'bogus'" in answer["message"]
    status, answer = raw(manager, "POST", "/v1.41/volumes/create", b'{"Name": "nowhere/v"}')
    assert status == 500 and "node nowhere" in answer["message"]
    status, answer = raw(manager, "POST", "/v1.41/networks/nosuch/connect", b'{"Container": "nosuch"}')
    assert status == 404 and "network nosuch not found" in answer["message"]
    status, answer = raw(
        manager, "POST", "/v1.41/networks/create", b'{"Name": "n", "Labels": {"com.docker.swarm.constraints": "[1]"}}'
    )
    assert status == 400 and "com.docker.swarm.constraints" in answer["message"]


def test_network_and_volume_prunes_act_on_every_node(
    manager: Manager, nodes: list[dk.DockerNode], sdk: docker.DockerClient, clean: None
) -> None:
    manager.ok("network", "create", "node1/unused1")
    manager.ok("network", "create", "node3/unused3")
    manager.ok("network", "create", "node2/kept")
    manager.ok("run", "-d", "--name", "keeper", "--network", "kept", dk.IMAGE, "sleep", "300")
    out = manager.ok("network", "prune", "-f")
    assert "unused1" in out and "unused3" in out and "kept" not in out
    assert [n.name for n in nodes if "kept" in networks_on(n)] == ["node2"]
    assert not any({"unused1", "unused3"} & networks_on(n) for n in nodes)
    assert manager.ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").split() == ["kept"]

    manager.ok("volume", "create", "spare")
    manager.ok("volume", "create", "node2/held")
    manager.ok("run", "-d", "--name", "holder", "-v", "held:/data", dk.IMAGE, "sleep", "300")
    pruned = sdk.volumes.prune()
    assert pruned["VolumesDeleted"] == ["spare"], "a name deleted on three nodes is listed once"
    assert all("spare" not in volumes_on(n) for n in nodes) and "held" in volumes_on(nodes[1])
    assert manager.ok("volume", "ls", "--format", "{{.Name}}").split() == ["held"]


def test_system_prune_cleans_every_node(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    manager.ok("network", "create", "node2/leftover")
    manager.ok("run", "--name", "done1", "-e", "constraint:node==node1", dk.IMAGE, "true")
    manager.ok("run", "--name", "done3", "-e", "constraint:node==node3", dk.IMAGE, "true")
    out = manager.ok("system", "prune", "-f")
    assert "Deleted Containers:" in out and "Deleted Networks:\nleftover" in out
    assert manager.ok("ps", "-aq") == "" and "leftover" not in networks_on(nodes[1])


def test_containers_sharing_a_local_volume_meet_where_its_data_is(manager: Manager, clean: None) -> None:
    """A plain volume is on every node, but a ``local`` one is a directory per node: a reader goes to the writer."""
    manager.ok("volume", "create", "notes")
    manager.ok("run", "--name", "writer", "-v", "notes:/n", dk.IMAGE, "sh", "-c", "echo written > /n/file")
    for n in range(3):  # spread would move each one to another node, were it not for the data
        assert manager.ok("run", "--rm", "-v", "notes:/n", dk.IMAGE, "cat", "/n/file") == "written\n"
        manager.ok("run", "-d", "--name", f"filler{n}", dk.IMAGE, "sleep", "300")
    assert node_of(manager, "writer") in NODES
