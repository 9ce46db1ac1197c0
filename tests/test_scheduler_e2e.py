"""The scheduler end to end: three real dockerd nodes with different labels, the real docker CLI.

One set of nodes serves the whole module (starting dockerd is the slow
part); each test removes its containers. Placement is read back the way a
user reads it, from ``docker ps`` names (``node/name``) through the manager.

- node1: zone=z1, disk=ssd, site=s1, containerslots=3
- node2: zone=z2, disk=hdd, site=s1
- node3: zone=z3, disk=ssd, site=s2, and a runtime named ``custom`` the others lack
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager
from tests.support.process import free_port, wait_for
from tests.support.swarm import run_swarmctl

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

ALL = {"node1", "node2", "node3"}
LABELS = {
    "node1": {"zone": "z1", "disk": "ssd", "site": "s1", "containerslots": "3"},
    "node2": {"zone": "z2", "disk": "hdd", "site": "s1"},
    "node3": {"zone": "z3", "disk": "ssd", "site": "s2"},
}


class RuntimeNode(dk.DockerNode):
    """A node whose dockerd knows one more runtime, so that some creates succeed only there."""

    def argv(self) -> list[str]:
        argv = super().argv()
        argv[-1] += " '--add-runtime' 'custom=runc'"
        return argv


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dk.DockerNode]]:
    with dk.running_nodes(
        [
            dk.DockerNode("node1", labels=LABELS["node1"]),
            dk.DockerNode("node2", labels=LABELS["node2"]),
            RuntimeNode("node3", labels=LABELS["node3"]),
        ],
        tmp_path_factory.mktemp("image"),
    ) as made:
        yield made


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory: pytest.TempPathFactory, nodes: list[dk.DockerNode]) -> Path:
    path = tmp_path_factory.mktemp("discovery") / "cluster"
    path.write_text("".join(f"{node.addr}\n" for node in nodes))
    return path


def _start(workdir: Path, cluster_file: Path, *extra: str) -> Manager:
    made = Manager(workdir, f"file://{cluster_file}", *extra)
    try:
        made.wait_nodes(dict.fromkeys(sorted(ALL), "Healthy"))
    except BaseException:
        made.stop()
        raise
    return made


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, cluster_file: Path) -> Iterator[Manager]:
    made = _start(tmp_path_factory.mktemp("spread"), cluster_file)
    yield made
    made.stop()


@pytest.fixture(scope="class")
def binpack(tmp_path_factory: pytest.TempPathFactory, cluster_file: Path) -> Iterator[Manager]:
    """A second manager, for its class only: two managers (without replication) would both reschedule."""
    made = _start(tmp_path_factory.mktemp("binpack"), cluster_file, "--strategy", "binpack")
    yield made
    made.stop()


@pytest.fixture
def clean(manager: Manager) -> Iterator[None]:
    yield
    manager.remove_containers()


def placed(manager: Manager) -> dict[str, str]:
    """Container name -> node name, for every container of a node that answers (``docker ps -a`` through the manager).

    A down node's containers stay listed, "Host Down": they are left out here.
    """
    lines = manager.ok("ps", "-a", "--format", "{{.Names}}\t{{.Status}}").splitlines()
    names = [name for name, _, status in (line.partition("\t") for line in lines) if status != "Host Down"]
    return {name.split("/", 1)[1]: name.split("/", 1)[0] for name in names}


def create(manager: Manager, name: str, *options: str, command: tuple[str, ...] = ("true",)) -> str:
    """``docker create`` through the manager; the node it landed on."""
    manager.ok("create", "--name", name, *options, dk.IMAGE, *command)
    return str(json.loads(manager.ok("inspect", name))[0]["Node"]["Name"])


def refused(manager: Manager, *args: str) -> str:
    """A command the manager must refuse; its error output."""
    result = manager.docker(*args)
    assert result.returncode != 0, f"docker {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr


def wait_image(manager: Manager, tag: str) -> None:
    wait_for(lambda: tag in manager.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split(), 30, f"{tag} listed")


def test_info_shows_the_strategy_and_filters(manager: Manager) -> None:
    info = manager.info()
    assert info["Strategy"] == "spread"
    assert info["Filters"] == "health, port, containerslots, dependency, affinity, constraint"
    assert "containerslots=3" in manager.ok("info")


def test_spread_six_on_three_nodes_and_least_reserved_first(manager: Manager, clean: None) -> None:
    for n in range(6):
        create(manager, f"s{n}")
    assert Counter(placed(manager).values()) == {"node1": 2, "node2": 2, "node3": 2}
    # node1 now reserves most of its memory: reserving containers go to the others first.
    assert create(manager, "big", "-m", "16g", "-e", "constraint:node==node1") == "node1"
    assert {create(manager, "r1", "-m", "1g"), create(manager, "r2", "-m", "1g")} == {"node2", "node3"}


class TestBinpack:
    def test_info(self, binpack: Manager) -> None:
        assert binpack.info()["Strategy"] == "binpack"

    def test_fills_one_node_until_it_is_full(self, binpack: Manager, clean: None) -> None:
        order = [create(binpack, f"b{n}", "-m", "10g") for n in range(6)]
        # 24 GiB nodes hold two 10 GiB containers: pairs, each on a node of its own.
        assert order[0] == order[1] and order[2] == order[3] and order[4] == order[5], order
        assert len({order[0], order[2], order[4]}) == 3, order
        message = refused(binpack, "create", "-m", "10g", dk.IMAGE, "true")
        assert "no resources available to schedule container: it reserves 10 GiB of memory" in message
        assert "Reserved Memory: 20 GiB" in binpack.ok("info")

    def test_stops_at_containerslots(self, binpack: Manager, clean: None) -> None:
        # Nothing reserved: binpack piles onto the node with the most containers; node1 holds 3.
        order = [create(binpack, f"p{n}") for n in range(5)]
        assert order[:3] == ["node1"] * 3, order
        assert order[3] == order[4] != "node1", order


def test_nothing_fits_is_refused_naming_the_resource(manager: Manager, clean: None) -> None:
    memory = refused(manager, "run", "-d", "-m", "30g", dk.IMAGE, "true")
    assert "no resources available to schedule container: it reserves 30 GiB of memory" in memory
    assert "free on node" in memory
    cpus = refused(manager, "run", "-d", "-c", "3072", dk.IMAGE, "true")
    assert "it reserves 3 CPUs, and no node has that many free (the most is 2 CPUs free on node" in cpus
    assert placed(manager) == {}


def test_cpusets_are_reserved_and_checked_against_the_node(
    manager: Manager, nodes: list[dk.DockerNode], clean: None
) -> None:
    """A CPU is pinned once per node and counts as a reserved CPU; a CPU the nodes lack is refused."""
    ncpu = int(str(nodes[0].info()["NCPU"]))
    assert all(node.info()["NCPU"] == ncpu for node in nodes) and ncpu >= 2
    every, last, on1 = f"0-{ncpu - 1}", ncpu - 1, ("-e", "constraint:node==node1")
    assert create(manager, "pin0", "--cpuset-cpus", "0", *on1) == "node1"
    taken = refused(manager, "run", "-d", "--cpuset-cpus", every, *on1, dk.IMAGE, "true")
    assert f"it is pinned to CPUs {every} (--cpuset-cpus), and other containers are pinned to some of them" in taken
    assert "(0 on node1)" in taken
    counted = refused(manager, "run", "-d", "--cpus", f"{ncpu - 0.5}", *on1, dk.IMAGE, "true")
    assert f"it reserves {ncpu - 0.5:g} CPUs, and no node has that many free (the most is {ncpu - 1:g} CPU" in counted
    assert create(manager, "pin1", "--cpuset-cpus", f"1-{last}", *on1) == "node1"
    missing = refused(manager, "run", "-d", "--cpuset-cpus", f"1-{ncpu}", dk.IMAGE, "true")
    assert (
        f"pinned to CPUs 1-{ncpu} (--cpuset-cpus), and no node has them (the most is {ncpu} CPUs, {every}, on node"
        in (missing)
    )
    unread = refused(manager, "run", "-d", "--cpuset-cpus", "0-", dk.IMAGE, "true")
    assert "Invalid value 0- for cpuset cpus: invalid format: 0-" in unread
    # CPU 0 is free on node2 and node3 only: two more fit there, a third nowhere.
    again = [create(manager, name, "--cpuset-cpus", "0") for name in ("q1", "q2")]
    assert sorted(again) == ["node2", "node3"]
    assert "pinned to some of them on every node" in refused(
        manager, "run", "-d", "--cpuset-cpus", "0", dk.IMAGE, "true"
    )
    assert placed(manager) == {"pin0": "node1", "pin1": "node1", "q1": again[0], "q2": again[1]}
    # The pin is dockerd's own: the container runs on its CPUs.
    manager.ok("start", "pin1")
    assert manager.ok("inspect", "-f", "{{.HostConfig.CpusetCpus}}", "pin1").strip() == f"1-{last}"


def test_spread_over_a_label(manager: Manager, clean: None) -> None:
    """Sites s1, s1, s2: of 4 replicas, 2 go to s2 (node3); without the rule, spread would put 1 there."""
    sites = Counter(create(manager, f"r{n}", "-e", "spread:site") for n in range(4))
    assert sites == {"node1": 1, "node2": 1, "node3": 2}
    # The rule is kept in the container's labels, and the env entry is gone.
    config = json.loads(manager.ok("inspect", "r0"))[0]["Config"]
    assert config["Labels"]["com.docker.swarm.spread"] == '["site"]'
    assert not any(entry.startswith("spread:") for entry in config["Env"] or [])
    # Siblings are one compose service's containers, whatever the image; with a constraint too.
    service = ("--label", "com.docker.compose.service=web", "--label", 'com.docker.swarm.spread=["site"]')
    ssd = ("-e", "constraint:disk==ssd")
    assert sorted(create(manager, f"w{n}", *service, *ssd) for n in range(2)) == ["node1", "node3"]
    malformed = refused(manager, "run", "-d", "-e", "spread:site==s1", dk.IMAGE, "true")
    assert "invalid spread 'site==s1': expected an engine label's name" in malformed


def test_constraints(manager: Manager, clean: None) -> None:
    def where(*rules: str) -> str:
        options = [option for rule in rules for option in ("-e", f"constraint:{rule}")]
        return create(manager, f"c{len(placed(manager))}", *options)

    assert where("node==node2") == "node2"
    assert where("node==*3") == "node3"  # glob
    assert where("zone==z[12]", "disk==ssd") == "node1"  # glob class; dockerd --label
    assert {where("zone!=z1") for _ in range(3)} == {"node2", "node3"}
    assert {where("node==/^node[12]$/") for _ in range(3)} == {"node1", "node2"}  # regular expression
    assert where("storagedriver==vfs", "ostype==linux", f"kernelversion=={platform.release()}") in ALL
    assert where("operatingsystem==*") in ALL
    assert where("node==~node3") == "node3"  # soft, honoured
    assert where("zone==~z9") in ALL  # soft, no node has it: placed anyway
    # As a label (Swarm's JSON list), as Swarm accepted it.
    assert create(manager, "labelled", "--label", 'com.docker.swarm.constraints=["node==node2"]') == "node2"
    # The rule left Env for a label the container keeps.
    inspected = json.loads(manager.ok("inspect", "c0"))[0]
    assert not any(e.startswith("constraint:") for e in inspected["Config"]["Env"] or [])
    assert json.loads(inspected["Config"]["Labels"]["com.docker.swarm.constraints"]) == ["node==node2"]
    assert len(inspected["Config"]["Labels"]["com.docker.swarm.id"]) == 64
    missing = refused(manager, "create", "-e", "constraint:zone==z9", dk.IMAGE, "true")
    assert "unable to find a node that satisfies the constraint zone==z9" in missing


def test_malformed_expressions_are_client_errors(manager: Manager, clean: None) -> None:
    for rule, says in [
        ("constraint:node=node1", 'invalid constraint "node=node1": expected KEY==VALUE or KEY!=VALUE'),
        ("constraint:node==/node[/", "bad regular expression /node[/"),
        ("affinity:container==", 'invalid affinity "container==": the value after == is missing'),
        ("reschedule:sometimes", "invalid reschedule policy 'sometimes'"),
    ]:
        result = manager.docker("run", "--rm", "-e", rule, dk.IMAGE, "true")
        assert result.returncode == 125, result
        assert says in result.stderr
    bad_label = manager.docker("create", "--label", "com.docker.swarm.affinities=[oops", dk.IMAGE, "true")
    assert bad_label.returncode != 0 and "expected a JSON list of strings" in bad_label.stderr
    assert placed(manager) == {}


def test_affinities(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    assert create(manager, "front", "-e", "constraint:node==node2") == "node2"
    assert create(manager, "near", "-e", "affinity:container==front") == "node2"
    assert {create(manager, f"far{n}", "-e", "affinity:container!=front") for n in range(3)} == {"node1", "node3"}
    assert create(manager, "soft", "-e", "affinity:container==~nosuch") in ALL
    message = refused(manager, "create", "-e", "affinity:container==nosuch", dk.IMAGE, "true")
    assert "unable to find a node that satisfies the affinity container==nosuch" in message
    # Container labels.
    assert create(manager, "db", "--label", "role=db", "-e", "constraint:node==node3") == "node3"
    assert create(manager, "client", "-e", "affinity:role==db") == "node3"
    # Images: a tag only node3 has.
    assert nodes[2].docker("tag", dk.IMAGE, "special:1").returncode == 0
    wait_image(manager, "special:1")
    assert create(manager, "imaged", "-e", "affinity:image==special:1") == "node3"
    assert create(manager, "imaged2", "-e", "affinity:image==special") == "node3"
    # As a label.
    assert create(manager, "lab", "--label", 'com.docker.swarm.affinities=["container==front"]') == "node2"
    assert nodes[2].docker("rmi", "special:1").returncode == 0


def test_port_conflicts(manager: Manager, clean: None) -> None:
    assert {create(manager, f"p{n}", "-p", "8080:80") for n in range(3)} == ALL
    message = refused(manager, "create", "-p", "8080:80", dk.IMAGE, "true")
    assert "unable to find a node with port 8080/tcp available" in message
    assert create(manager, "other", "-p", "8081:80") in ALL
    assert create(manager, "udp", "-p", "8080:80/udp") in ALL  # another protocol, another port
    assert create(manager, "lo", "-p", "127.0.0.1:8082:80", "-e", "constraint:node==node2") == "node2"
    assert create(manager, "lo2", "-p", "127.0.0.2:8082:80", "-e", "constraint:node==node2") == "node2"
    clash = refused(manager, "create", "-p", "8082:80", "-e", "constraint:node==node2", dk.IMAGE, "true")
    assert "unable to find a node that satisfies the constraint node==node2 (node2 meets it but has the port" in clash
    # Host networking takes the exposed port itself.
    assert create(manager, "hostnet", "--net", "host", "--expose", "9000", "-e", "constraint:node==node3") == "node3"
    assert create(manager, "beside", "-p", "9000:80", "-e", "affinity:container!=hostnet") != "node3"


def test_dependencies(manager: Manager, clean: None) -> None:
    assert create(manager, "store", "-v", "/data", "-e", "constraint:node==node3", command=("sleep", "300")) == "node3"
    manager.ok("start", "store")
    assert create(manager, "uses", "--volumes-from", "store:ro") == "node3"
    assert create(manager, "linked", "--link", "store:s") == "node3"
    assert create(manager, "netns", "--net", "container:store") == "node3"
    assert create(manager, "pidns", "--pid", "container:store") == "node3"
    message = refused(manager, "create", "--volumes-from", "nosuch", "--link", "store:s", dk.IMAGE, "true")
    assert "unable to find a node fulfilling all dependencies: --volumes-from=nosuch --link=store:s" in message


def test_containerslots(manager: Manager, clean: None) -> None:
    for n in range(3):
        assert create(manager, f"slot{n}", "-e", "constraint:node==node1") == "node1"
    message = refused(manager, "create", "-e", "constraint:node==node1", dk.IMAGE, "true")
    assert "node1 meets it but has no free container slot" in message
    assert create(manager, "elsewhere", "-e", "constraint:disk==ssd") == "node3"


def test_runtimes_and_refusals(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    # Spread would try node1 first (all empty); only node3's engine knows the runtime, as its /info says.
    assert create(manager, "rt", "--runtime", "custom") == "node3"
    assert "Unknown runtime specified custom" not in manager.process.log_path.read_text()
    # A runtime no engine knows: the engine's own refusal, given at once (every node would say it).
    nowhere = refused(manager, "create", "--runtime", "nosuch", dk.IMAGE, "true")
    assert "Unknown runtime specified nosuch" in nowhere
    bad_driver = refused(manager, "create", "--log-driver", "nosuchdriver", dk.IMAGE, "true")
    assert "nosuchdriver" in bad_driver
    log = manager.process.log_path.read_text()
    assert log.count("Unknown runtime specified nosuch") == 1, "a bad request was tried on another node"
    assert sum("nosuchdriver" in line and "create on" in line for line in log.splitlines()) == 1
    # An image only node2 has: the create goes where the image is.
    assert nodes[1].docker("tag", dk.IMAGE, "only2:1").returncode == 0
    wait_image(manager, "only2:1")
    manager.ok("create", "--name", "img", "only2:1", "true")
    assert placed(manager)["img"] == "node2"
    # Pinned where the image is not: it is copied there from the node that has it, as if pulled.
    manager.ok("create", "--name", "img1", "-e", "constraint:node==node1", "only2:1", "true")
    assert placed(manager)["img1"] == "node1"
    assert nodes[0].docker("image", "inspect", "only2:1").returncode == 0
    assert nodes[0].docker("rm", "img1").returncode == 0 and nodes[0].docker("rmi", "only2:1").returncode == 0
    # An image no node has: Docker's 404, which the CLI reports (and would pull for, had it been allowed).
    missing = manager.docker("run", "--pull", "never", "--rm", "nosuch:1", "true")
    assert missing.returncode == 125 and "No such image: nosuch:1" in missing.stderr
    assert nodes[1].docker("rmi", "only2:1").returncode == 0


def test_unreachable_candidate_is_skipped(nodes: list[dk.DockerNode]) -> None:
    """The placer on its own: a node that answered once and died since is passed over for the next."""
    from swarmctl.cluster.cluster import Cluster
    from swarmctl.cluster.engine import HEALTHY, Engine, EngineOptions
    from swarmctl.scheduler import ContainerRequest, Scheduler
    from swarmctl.scheduler.placement import Placer as placer_for

    async def scenario() -> tuple[int, str, str]:
        cluster = Cluster(EngineOptions())
        try:
            live = Engine(nodes[1].addr, cluster.bus, cluster.options, cluster.session)
            await live.refresh()
            # Its cache says Healthy with the same image; its port is closed (nothing listens).
            dead = Engine(f"127.0.0.1:{free_port()}", cluster.bus, cluster.options, cluster.session)
            dead.info = {**live.info, "Name": "ghost", "ID": "ghost"}
            dead.images = live.images
            live.state = dead.state = HEALTHY
            cluster.engines = {dead.addr: dead, live.addr: live}
            request = ContainerRequest.from_body({"Image": dk.IMAGE, "Cmd": ["true"]})
            placer = placer_for(cluster)
            assert [e.name for e in placer.candidates(Scheduler(), request)] == ["ghost", "node2"]
            outcome = await placer.create(Scheduler(), request, "via-placer")
            return outcome.status, outcome.engine.name if outcome.engine else "", dead.last_error
        finally:
            await cluster.close()

    try:
        status, where, dead_error = asyncio.run(scenario())
        assert (status, where) == (201, "node2")
        assert dead_error  # the dead node was tried, and told so
    finally:
        nodes[1].docker("rm", "-f", "via-placer")


def test_filter_and_strategy_options(nodes: list[dk.DockerNode], cluster_file: Path, tmp_path: Path) -> None:
    assert run_swarmctl("manage", "--filter", "whitelist", f"file://{cluster_file}").returncode == 2
    assert run_swarmctl("manage", "--strategy", "fill", f"file://{cluster_file}").returncode == 2
    chosen = _start(tmp_path, cluster_file, "--strategy", "random", "--filter", "health", "-f", "constraint")
    try:
        info = chosen.info()
        assert (info["Strategy"], info["Filters"]) == ("random", "health, constraint")
        # No port filter: one host port twice on one node is the engine's business.
        for n in range(2):
            assert create(chosen, f"twice{n}", "-p", "7070:80", "-e", "constraint:node==node2") == "node2"
        assert {create(chosen, f"r{n}", "-e", "constraint:zone!=z2") for n in range(4)} <= {"node1", "node3"}
    finally:
        ids = chosen.ok("ps", "-aq").split()
        if ids:
            chosen.docker("rm", "-f", *ids)
        chosen.stop()


def test_rescheduling_after_a_node_is_killed(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    moving = ("-e", "reschedule:on-node-failure", "-e", "constraint:node==~node2")
    manager.ok("run", "-d", "--name", "keeper", *moving, dk.IMAGE, "sleep", "300")
    manager.ok("create", "--name", "idle", *moving, dk.IMAGE, "true")
    manager.ok("run", "-d", "--name", "plain", "-e", "constraint:node==node2", dk.IMAGE, "sleep", "300")
    assert placed(manager) == {"keeper": "node2", "idle": "node2", "plain": "node2"}
    swarm_id = json.loads(manager.ok("inspect", "keeper"))[0]["Config"]["Labels"]["com.docker.swarm.id"]
    since = str(int(time.time()) - 1)
    victim = nodes[1]
    victim.kill()
    try:
        wait_for(
            lambda: placed(manager).get("keeper") in ("node1", "node3") and "idle" in placed(manager),
            60,
            "keeper and idle recreated on healthy nodes",
            interval=0.3,
        )
        # Recreated first, then started: the move is done once it runs again.
        wait_for(
            lambda: manager.ok("inspect", "-f", "{{.State.Status}}", "keeper").strip() == "running",
            30,
            "the rescheduled keeper running",
            interval=0.3,
        )
        assert manager.ok("inspect", "-f", "{{.State.Status}}", "idle").strip() == "created"
        moved = json.loads(manager.ok("inspect", "keeper"))[0]
        assert moved["Config"]["Labels"]["com.docker.swarm.id"] == swarm_id
        assert moved["Config"]["Cmd"] == ["sleep", "300"]
        assert "plain" not in placed(manager)  # it did not ask to be rescheduled
        # docker events shows each move: the container, the node it left, the node it went to.
        shown = '{{.Actor.Attributes.name}} {{index .Actor.Attributes "from"}} {{index .Actor.Attributes "node.name"}}'
        until = str(int(time.time()) + 1)
        moves = manager.ok(
            "events", "--since", since, "--until", until, "--filter", "event=reschedule", "--format", shown
        )
        assert sorted(moves.split("\n")[:-1]) == sorted(
            [f"keeper node2 {placed(manager)['keeper']}", f"idle node2 {placed(manager)['idle']}"]
        ), moves
        # The old copies stay listed while their node is down.
        down = manager.ok("ps", "-a", "--filter", "node=node2", "--format", "{{.Names}} {{.Status}}").splitlines()
        assert sorted(down) == ["node2/idle Host Down", "node2/keeper Host Down", "node2/plain Host Down"]
        now = placed(manager)
    finally:
        victim.start()
    manager.wait_nodes(dict.fromkeys(sorted(ALL), "Healthy"))
    # The node is back with the old copies: they go, the rescheduled ones stay.
    expected = sorted([f"{now['keeper']}/keeper", f"{now['idle']}/idle", "node2/plain"])
    wait_for(
        lambda: sorted(manager.ok("ps", "-a", "--format", "{{.Names}}").split()) == expected,
        60,
        f"only {expected} listed",
        interval=0.3,
    )
    assert manager.ok("inspect", "-f", "{{.State.Status}}", "keeper").strip() == "running"
    assert manager.ok("inspect", "-f", "{{.State.Status}}", "node2/plain").strip() == "exited"


def test_rescheduling_brings_the_network_and_volume(manager: Manager, nodes: list[dk.DockerNode], clean: None) -> None:
    """A container on a network and a named volume that only its node has runs on another node, with both there."""
    manager.ok("network", "create", "--label", "purpose=test", "node2/backnet")
    manager.ok("volume", "create", "--label", "purpose=test", "node2/kept")
    moving = ("-e", "reschedule:on-node-failure", "-e", "constraint:node==~node2")
    manager.ok(
        "run", "-d", "--name", "mover", "--network", "backnet", "-v", "kept:/data", *moving, dk.IMAGE, "sleep", "300"
    )
    assert placed(manager) == {"mover": "node2"}
    victim = nodes[1]
    victim.kill()
    target = ""
    try:
        wait_for(lambda: placed(manager).get("mover") in ("node1", "node3"), 60, "mover recreated", interval=0.3)
        wait_for(
            lambda: manager.ok("inspect", "-f", "{{.State.Status}}", "mover").strip() == "running",
            30,
            "the rescheduled mover running",
            interval=0.3,
        )
        target = placed(manager)["mover"]
        moved = json.loads(manager.ok("inspect", "mover"))[0]
        assert list(moved["NetworkSettings"]["Networks"]) == ["backnet"]
        assert [(m["Type"], m["Name"], m["Destination"]) for m in moved["Mounts"]] == [("volume", "kept", "/data")]
        network = json.loads(manager.ok("network", "inspect", f"{target}/backnet"))[0]
        assert network["Labels"] == {"purpose": "test"}
        volume = json.loads(manager.ok("volume", "inspect", f"{target}/kept"))[0]
        assert volume["Labels"] == {"purpose": "test"}
        shown = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.from}} {{.Actor.ID}}"
        events = manager.ok(
            "events", "--since", "10m", "--until", "0s", "--filter", "event=reschedule", "--format", shown
        )
        # Earlier tests of this module moved other containers: this one's move is shown once.
        assert [line for line in events.splitlines() if " mover " in line] == [
            f"container reschedule mover node2 {moved['Id']}"
        ]
    finally:
        victim.start()
        manager.wait_nodes(dict.fromkeys(sorted(ALL), "Healthy"))
        if target:  # the node is back with the old copy: it goes
            wait_for(
                lambda: sorted(manager.ok("ps", "-a", "--format", "{{.Names}}").split()) == [f"{target}/mover"],
                60,
                "the old copy removed",
                interval=0.3,
            )
        manager.remove_containers()
        for where in ("node2", target):
            if where:
                manager.docker("network", "rm", f"{where}/backnet")
                manager.docker("volume", "rm", f"{where}/kept")
