"""The scheduler without a network: expressions, create bodies, filters and strategies on real Engine objects.

The engines here are the manager's own ``Engine`` objects with their caches
filled in as a refresh would fill them (``/info``, ``/containers/json``,
inspect), so the scheduler reads exactly what it reads in production; the
end-to-end behaviour with real dockerd nodes is in test_scheduler_e2e.py.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import pytest

from swarmctl.cluster.engine import HEALTHY, UNHEALTHY, Engine, EngineOptions
from swarmctl.cluster.events import EventBus
from swarmctl.scheduler import (
    ContainerRequest,
    ExpressionError,
    NoNodeError,
    NoResourcesError,
    Scheduler,
    nodes_of,
)
from swarmctl.scheduler.expressions import parse
from swarmctl.scheduler.request import AFFINITIES_LABEL, CONSTRAINTS_LABEL, ID_LABEL, RESCHEDULE_LABEL
from swarmctl.scheduler.reschedule import create_body, wants_rescheduling

GiB = 1 << 30
_ids = itertools.count(1)


def container(
    name: str,
    *,
    memory: int = 0,
    cpus: float = 0,
    labels: dict[str, str] | None = None,
    ports: dict[str, list[dict[str, str]]] | None = None,
    host_ports: list[str] = (),  # type: ignore[assignment]
    state: str = "running",
    cpuset: str = "",
    image: str = "busybox:local",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A container's ``/containers/json`` summary and inspect data, as an engine reports them."""
    cid = secrets.token_hex(32)
    host: dict[str, Any] = {"Memory": memory, "NanoCpus": int(cpus * 1e9), "PortBindings": ports or {}}
    host["CpusetCpus"] = cpuset
    config: dict[str, Any] = {"Image": image, "Labels": labels or {}, "Hostname": cid[:12]}
    if host_ports:
        host["NetworkMode"] = "host"
        config["ExposedPorts"] = {p: {} for p in host_ports}
    summary = {"Id": cid, "Names": [f"/{name}"], "Image": image, "Labels": labels or {}, "State": state}
    inspect = {"Id": cid, "Name": f"/{name}", "Config": config, "HostConfig": host, "State": {"Running": True}}
    return summary, inspect


def engine(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    containers: list[tuple[dict[str, Any], dict[str, Any]]] = (),  # type: ignore[assignment]
    images: list[str] = ("busybox:local",),  # type: ignore[assignment]
    state: str = HEALTHY,
    ncpu: int = 2,
    memory: int = 24 * GiB,
) -> Engine:
    """An engine whose cache holds what a refresh of such a node would have read."""
    made = Engine(f"127.0.0.1:{20000 + next(_ids)}", EventBus(), EngineOptions())
    made.info = {
        "Name": name,
        "ID": f"ID-{name}",
        "NCPU": ncpu,
        "MemTotal": memory,
        "Labels": [f"{k}={v}" for k, v in (labels or {}).items()],
        "Driver": "vfs",
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "KernelVersion": "6.1.0-18-amd64",
        "OSType": "linux",
    }
    made.state = state
    for summary, inspect in containers:
        made.containers[summary["Id"]] = summary
        made.inspects[summary["Id"]] = inspect
    made.images = [{"Id": f"sha256:{secrets.token_hex(32)}", "RepoTags": [tag]} for tag in images]
    return made


def request(body: dict[str, Any] | None = None, **fields: Any) -> ContainerRequest:
    return ContainerRequest.from_body({"Image": "busybox:local", **(body or {}), **fields})


def place(engines: list[Engine], wanted: ContainerRequest, strategy: str = "spread", **kw: Any) -> list[str]:
    """Names of the candidates, best first."""
    return [n.name for n in Scheduler(strategy, **kw).select(wanted, nodes_of(engines))]


def env(*entries: str) -> ContainerRequest:
    return request(Env=list(entries))


# -- expressions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "subject", "holds"),
    [
        ("node==node1", "node1", True),
        ("node==node1", "node10", False),  # a plain value is the whole string
        ("node!=node1", "node1", False),
        ("node!=node1", "node2", True),
        ("node==node*", "node42", True),
        ("node==*2", "node2", True),
        ("node==node?", "node12", False),
        ("zone==z[12]", "z2", True),
        ("zone==z[12]", "z3", False),
        ("node==/node[0-9]+/", "my-node17", True),  # a regexp is searched, as Go's MatchString did
        ("node==/^node[12]$/", "node3", False),
        ("node!=/^node[12]$/", "node3", True),
        ("node==NODE1", "node1", False),  # case-sensitive, as in Swarm
        ("operatingsystem==Debian GNU/Linux*", "Debian GNU/Linux 12 (bookworm)", True),
        ("kernelversion==6.1.0-18-amd64", "6.1.0-18-amd64", True),
        ("com.example.role==db", "db", True),
        ("node==a.b", "axb", False),  # a dot in a glob is a dot
    ],
)
def test_expression_matching(text: str, subject: str, holds: bool) -> None:
    assert parse(text).matches(subject) is holds


def test_soft_expressions_and_their_form() -> None:
    soft = parse("node==~node1")
    assert (soft.key, soft.operator, soft.value, soft.soft) == ("node", "==", "node1", True)
    assert str(soft) == "node==~node1"
    assert parse("zone!=~/z[12]/").soft and parse("zone!=~/z[12]/").regexp
    hard = parse("  node == node2 ")
    assert (hard.key, hard.value, hard.soft) == ("node", "node2", False)


def test_not_equal_means_none_match() -> None:
    """``container!=web``: no container of the node is called web."""
    assert parse("container!=web").matches("db", "cache") is True
    assert parse("container!=web").matches("db", "web") is False
    assert parse("container!=web").matches() is True
    assert parse("container==web").matches() is False


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("node=node1", "expected KEY==VALUE or KEY!=VALUE"),
        ("node", "expected KEY==VALUE or KEY!=VALUE"),
        ("", "expected KEY==VALUE or KEY!=VALUE"),
        ("==node1", "the key before == is missing"),
        ("node==", "the value after == is missing"),
        ("node!=~", "the value after !=~ is missing"),
        ("no de==x", "may only hold letters, digits"),
        ("1node==x", "may only hold letters, digits"),
        ("node==/node[/", "bad regular expression /node[/"),
        ("node==/node1", "is not closed with '/'"),
        ("node==//", "the regular expression // is empty"),
        ("node==a==b", "only one == or != per expression"),
        ("node==a!=b", "only one == or != per expression"),
    ],
)
def test_malformed_expressions_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text, "constraint")
    assert says in str(caught.value)
    assert f'constraint "{text}"' in str(caught.value)


# -- reading the create body -----------------------------------------------------------------------


def test_env_rules_move_into_labels() -> None:
    wanted = env("A=1", "constraint:node==node1", "affinity:container==web", "reschedule:on-node-failure", "B=x:y")
    assert wanted.body["Env"] == ["A=1", "B=x:y"]
    labels = wanted.body["Labels"]
    assert json.loads(labels[CONSTRAINTS_LABEL]) == ["node==node1"]
    assert labels[CONSTRAINTS_LABEL] == '["node==node1"]'  # Swarm's compact JSON
    assert json.loads(labels[AFFINITIES_LABEL]) == ["container==web"]
    assert json.loads(labels[RESCHEDULE_LABEL]) == ["on-node-failure"]
    assert len(labels[ID_LABEL]) == 64
    assert [str(c) for c in wanted.constraints] == ["node==node1"]
    assert wanted.reschedule == "on-node-failure"


def test_label_rules_merge_with_env_rules() -> None:
    wanted = request(
        Env=["constraint:zone==z1"],
        Labels={CONSTRAINTS_LABEL: '["disk==ssd"]', AFFINITIES_LABEL: "image==busybox", "mine": "kept"},
    )
    assert [str(c) for c in wanted.constraints] == ["disk==ssd", "zone==z1"]
    assert [str(a) for a in wanted.affinities] == ["image==busybox"]
    assert wanted.body["Labels"]["mine"] == "kept"
    again = ContainerRequest.from_body(wanted.body)  # what rescheduling reads back: the same rules, the same ID
    assert [str(c) for c in again.constraints] == ["disk==ssd", "zone==z1"]
    assert again.swarm_id == wanted.swarm_id


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"Env": ["constraint:node=node1"]}, 'invalid constraint "node=node1"'),
        ({"Env": ["affinity:container"]}, 'invalid affinity "container"'),
        ({"Labels": {CONSTRAINTS_LABEL: '["node==node1"'}}, "expected a JSON list of strings"),
        ({"Labels": {AFFINITIES_LABEL: "[1, 2]"}}, "expected a JSON list of strings"),
        ({"Env": ["reschedule:always"]}, "invalid reschedule policy 'always'"),
        ({"Env": ["reschedule:off", "reschedule:on-node-failure"]}, "too many reschedule policies"),
    ],
)
def test_malformed_rules_in_the_body(body: dict[str, Any], says: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        request(body)
    assert says in str(caught.value)


def test_resources_and_dependencies_read_from_the_body() -> None:
    wanted = request(
        HostConfig={
            "Memory": 10 * GiB,
            "CpuShares": 512,
            "VolumesFrom": ["data:ro"],
            "Links": ["/db:/me/db", "cache:c"],
            "NetworkMode": "container:web",
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "81/tcp": [{"HostPort": ""}]},
        }
    )
    assert (wanted.cpus, wanted.memory) == (0.5, 10 * GiB)
    assert [name for _, name in wanted.dependencies] == ["data", "db", "cache", "web"]
    assert wanted.ports == [("80/tcp", "", "8080")]
    assert request(HostConfig={"NanoCpus": 1_500_000_000}).cpus == 1.5


# -- strategies ----------------------------------------------------------------------------------


def test_spread_takes_the_emptiest_node() -> None:
    engines = [
        engine("node1", containers=[container("a"), container("b")]),
        engine("node2", containers=[container("c")]),
        engine("node3", containers=[container("d"), container("e")]),
    ]
    assert place(engines, request()) == ["node2", "node1", "node3"]


def test_spread_weighs_reservations_before_counts() -> None:
    engines = [
        engine("node1", containers=[container("big", memory=12 * GiB)]),
        engine("node2", containers=[container("a"), container("b")]),
    ]
    assert place(engines, request(HostConfig={"Memory": GiB}))[0] == "node2"


def test_binpack_fills_the_most_used_node_that_fits() -> None:
    engines = [
        engine("node1", containers=[container("a", memory=10 * GiB)]),
        engine("node2", containers=[container("b", memory=20 * GiB)]),
        engine("node3"),
    ]
    assert place(engines, request(HostConfig={"Memory": 2 * GiB}), "binpack") == ["node2", "node1", "node3"]
    # 10 GiB more does not fit on node2 (30 > 24): node1 is the most used that fits.
    assert place(engines, request(HostConfig={"Memory": 10 * GiB}), "binpack") == ["node1", "node3"]
    # Without reservations, the node with most containers.
    assert place([engine("x"), engine("y", containers=[container("c")])], request(), "binpack")[0] == "y"


def test_random_returns_every_fitting_node() -> None:
    engines = [engine(f"node{n}") for n in range(5)] + [engine("full", memory=GiB)]
    seen = set()
    for _ in range(50):
        ranked = place(engines, request(HostConfig={"Memory": 2 * GiB}), "random")
        assert sorted(ranked) == [f"node{n}" for n in range(5)]
        seen.add(ranked[0])
    assert len(seen) > 1


def test_refusal_names_the_resource() -> None:
    engines = [
        engine("node1", containers=[container("a", memory=20 * GiB)]),
        engine("node2", containers=[container("b", memory=16 * GiB, cpus=1)]),
    ]
    with pytest.raises(NoResourcesError) as memory:
        place(engines, request(HostConfig={"Memory": 10 * GiB}))
    assert "it reserves 10 GiB of memory" in str(memory.value)
    assert "the most is 8 GiB free on node2" in str(memory.value)
    with pytest.raises(NoResourcesError) as cpus:
        place(engines, request(HostConfig={"NanoCpus": 3_000_000_000}))
    assert "it reserves 3 CPUs" in str(cpus.value) and "the most is 2 CPUs free on node1" in str(cpus.value)
    with pytest.raises(NoResourcesError) as both:
        place(engines, request(HostConfig={"NanoCpus": 1_500_000_000, "Memory": 6 * GiB}))
    assert "1.5 CPUs and 6 GiB of memory, and no node has both free" in str(both.value)


def test_image_holders_come_first() -> None:
    engines = [engine("node1", images=[]), engine("node2", images=["special:1"]), engine("node3", images=[])]
    assert place(engines, request(Image="special:1")) == ["node2", "node1", "node3"]


# -- filters -------------------------------------------------------------------------------------


def test_health_filter_and_its_message() -> None:
    engines = [engine("node1", state=UNHEALTHY), engine("node2")]
    assert place(engines, request()) == ["node2"]
    with pytest.raises(NoNodeError, match="No healthy node available in the cluster"):
        place([engine("node1", state=UNHEALTHY)], request())
    # Without the health filter an unhealthy node may be tried (and fails over at create time).
    assert place([engine("node1", state=UNHEALTHY)], request(), filters=["constraint"]) == ["node1"]


def test_constraints_on_names_and_labels() -> None:
    engines = [
        engine("node1", labels={"zone": "z1", "disk": "ssd"}),
        engine("node2", labels={"zone": "z2", "disk": "hdd"}),
        engine("node3", labels={"zone": "z3", "disk": "ssd"}),
    ]
    assert place(engines, env("constraint:node==node2")) == ["node2"]
    assert place(engines, env("constraint:node==ID-node3")) == ["node3"]  # the node's ID names it too
    assert sorted(place(engines, env("constraint:disk==ssd"))) == ["node1", "node3"]
    assert sorted(place(engines, env("constraint:zone!=z1"))) == ["node2", "node3"]
    assert place(engines, env("constraint:disk==ssd", "constraint:zone!=z1")) == ["node3"]
    assert sorted(place(engines, env("constraint:node==/node[12]/"))) == ["node1", "node2"]
    assert len(place(engines, env("constraint:storagedriver==vfs", "constraint:ostype==linux"))) == 3
    assert len(place(engines, env("constraint:operatingsystem==Debian*", "constraint:kernelversion==6.1.*"))) == 3
    assert place(engines, env("constraint:nosuchlabel!=x")) != []
    with pytest.raises(NoNodeError, match="unable to find a node that satisfies the constraint zone==z9"):
        place(engines, env("constraint:zone==z9"))
    with pytest.raises(NoNodeError, match="constraint nosuchlabel==x"):
        place(engines, env("constraint:nosuchlabel==x"))


def test_soft_rules_are_preferences() -> None:
    engines = [engine("node1"), engine("node2", containers=[container("a")])]
    assert place(engines, env("constraint:node==~node2")) == ["node2"]
    assert place(engines, env("constraint:node==~node9")) == ["node1", "node2"]
    # A hard rule still holds when the soft one is dropped.
    assert place(engines, env("constraint:node==node2", "affinity:container==~nosuch")) == ["node2"]
    with pytest.raises(NoNodeError, match="constraint node==node9"):
        place(engines, env("constraint:node==node9", "constraint:zone==~z1"))


def test_affinities() -> None:
    engines = [
        engine("node1", containers=[container("web", labels={"role": "frontend"})]),
        engine("node2", containers=[container("db", labels={"role": "db"})], images=["busybox:local", "pg:16"]),
        engine("node3"),
    ]
    web_id = next(iter(engines[0].containers))
    assert place(engines, env("affinity:container==web")) == ["node1"]
    assert place(engines, env(f"affinity:container=={web_id}")) == ["node1"]
    assert place(engines, env(f"affinity:container=={web_id[:12]}")) == ["node1"]
    assert place(engines, env("affinity:container==node1/web")) == ["node1"]
    assert place(engines, env("affinity:container==w*")) == ["node1"]
    assert sorted(place(engines, env("affinity:container!=web"))) == ["node2", "node3"]
    assert place(engines, env("affinity:image==pg:16")) == ["node2"]
    assert place(engines, env("affinity:image==pg")) == ["node2"]  # the repository without the tag
    image_id = engines[1].images[1]["Id"]
    assert place(engines, env(f"affinity:image=={image_id}")) == ["node2"]
    assert place(engines, env("affinity:role==db")) == ["node2"]
    assert sorted(place(engines, env("affinity:role!=frontend"))) == ["node2", "node3"]
    with pytest.raises(NoNodeError, match="unable to find a node that satisfies the affinity container==nosuch"):
        place(engines, env("affinity:container==nosuch"))


def test_port_filter() -> None:
    engines = [
        engine("node1", containers=[container("a", ports={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})]),
        engine(
            "node2",
            containers=[
                container("b", ports={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}, state="exited")
            ],
        ),
        engine("node3", containers=[container("c", host_ports=["9000/tcp"])]),
    ]

    def on(port: str, ip: str = "", proto: str = "tcp", host: bool = False) -> list[str]:
        if host:
            body = {"ExposedPorts": {f"{port}/{proto}": {}}, "HostConfig": {"NetworkMode": "host"}}
        else:
            body = {"HostConfig": {"PortBindings": {f"80/{proto}": [{"HostIp": ip, "HostPort": port}]}}}
        return sorted(place(engines, request(body)))

    assert on("8080") == ["node3"]  # node2's stopped container keeps its port too
    assert on("8080", ip="127.0.0.2") == ["node2", "node3"]  # another address of node2 is free
    assert on("8080", proto="udp") == ["node1", "node2", "node3"]
    assert on("9000") == ["node1", "node2"]  # taken by node3's host-network container
    assert on("8080", host=True) == ["node3"]
    with pytest.raises(NoNodeError, match="unable to find a node with port 8080/tcp available"):
        place(engines[:1], request({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}))


def test_dependency_filter() -> None:
    engines = [engine("node1", containers=[container("data")]), engine("node2", containers=[container("web")])]
    assert place(engines, request(HostConfig={"VolumesFrom": ["data:ro"]})) == ["node1"]
    assert place(engines, request(HostConfig={"Links": ["web:w"]})) == ["node2"]
    assert place(engines, request(HostConfig={"NetworkMode": "container:web"})) == ["node2"]
    assert place(engines, request(HostConfig={"PidMode": "container:node1/data"})) == ["node1"]
    with pytest.raises(NoNodeError) as caught:
        place(engines, request(HostConfig={"VolumesFrom": ["data"], "Links": ["web:w"]}))
    assert str(caught.value) == "unable to find a node fulfilling all dependencies: --volumes-from=data --link=web:w"


def test_containerslots_filter() -> None:
    engines = [
        engine("node1", labels={"containerslots": "2"}, containers=[container("a"), container("b")]),
        engine("node2", labels={"containerslots": "3"}, containers=[container("c", state="exited")]),
        engine("node3", labels={"containerslots": "many"}, containers=[container("d"), container("e")]),
    ]
    assert place(engines, request()) == ["node2", "node3"]
    with pytest.raises(NoNodeError, match="no node has a free container slot"):
        place(engines[:1], request())


def test_pending_creates_count() -> None:
    """A create in flight holds its node's resources, slot and ports like a created container."""
    engines = [engine("node1", labels={"containerslots": "1"}), engine("node2")]
    first = request(HostConfig={"Memory": 20 * GiB, "PortBindings": {"80/tcp": [{"HostPort": "80"}]}})
    pending = {engines[1].addr: [first]}
    nodes = nodes_of(engines, pending)
    assert [n.name for n in Scheduler("spread", filters=[]).select(request(), nodes)] == ["node1", "node2"]
    with pytest.raises(NoResourcesError):
        Scheduler().select(request(HostConfig={"Memory": 20 * GiB}), nodes_of(engines[1:], pending))
    with pytest.raises(NoNodeError, match="port 80/tcp"):
        Scheduler().select(first, nodes_of(engines[1:], pending))
    pending[engines[0].addr] = [request()]
    with pytest.raises(NoNodeError, match="container slot"):
        Scheduler().select(request(), nodes_of(engines[:1], pending))


def test_filters_run_in_the_given_order() -> None:
    engines = [engine("node1", state=UNHEALTHY, labels={"zone": "z1"})]
    with pytest.raises(NoNodeError, match="healthy"):
        place(engines, env("constraint:zone==z2"))
    with pytest.raises(NoNodeError, match="constraint zone==z2"):
        place(engines, env("constraint:zone==z2"), filters=["constraint", "health"])


def test_unknown_strategy_or_filter() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'fill'"):
        Scheduler("fill")
    with pytest.raises(ValueError, match="unknown filter 'whitelist'"):
        Scheduler("spread", ["health", "whitelist"])


def test_pending_engines_are_not_candidates() -> None:
    pending = Engine("127.0.0.1:1", EventBus(), EngineOptions())
    assert nodes_of([pending]) == []
    with pytest.raises(NoNodeError, match="No healthy node"):
        Scheduler().select(request(), nodes_of([pending]))


def test_the_node_cache_follows_the_engine() -> None:
    made = engine("node1")
    first = nodes_of([made])[0]
    assert nodes_of([made])[0] is first  # unchanged engine: the same snapshot
    made.containers["x"], made.inspects["x"] = container("late", memory=GiB)
    made.generation += 1
    again = nodes_of([made])[0]
    assert again is not first and again.container_count == 1 and again.used_memory == GiB


# -- what rescheduling recreates -------------------------------------------------------------------


def test_create_body_from_inspect() -> None:
    _, inspect = container("web", labels={RESCHEDULE_LABEL: '["on-node-failure"]'})
    inspect["HostConfig"]["Links"] = ["/db:/web/database"]
    body = create_body(inspect)
    assert "Hostname" not in body  # the old ID: the new engine names its container itself
    assert body["Image"] == "busybox:local"
    assert body["HostConfig"]["Links"] == ["db:database"]
    assert wants_rescheduling(inspect)
    assert not wants_rescheduling(container("plain")[1])
    named = container("named")[1]
    named["Config"]["Hostname"] = "myhost"
    assert create_body(named)["Hostname"] == "myhost"


def test_refusal_names_nodes_ruled_out_earlier() -> None:
    engines = [
        engine("node1", labels={"containerslots": "1"}, containers=[container("a")]),
        engine("node2", state=UNHEALTHY),
        engine("node3"),
    ]
    with pytest.raises(NoNodeError) as caught:
        place(engines, env("constraint:node==/node[12]/"))
    assert str(caught.value) == (
        "unable to find a node that satisfies the constraint node==/node[12]/ "
        "(node2 meets it but is not healthy; node1 meets it but has no free container slot)"
    )


def test_snapshots_do_not_keep_engines_alive() -> None:
    import gc
    import weakref

    made = engine("gone")
    nodes_of([made])
    alive = weakref.ref(made)
    del made
    gc.collect()
    assert alive() is None
