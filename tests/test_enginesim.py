"""The engine simulator (``bench/enginesim.py``) against a real dockerd 20.10, and its own life cycle.

The simulator is only worth its benchmarks if the manager reads from it what
it reads from real engines, so the shapes of its answers (the key sets of
``/info``, ``/version``, container summaries and inspects with their
HostConfig, Config, State, NetworkSettings and Mounts, events, images,
networks, volumes) are compared, recursively, with a real dockerd's answers to
the same requests. Values may differ; keys and kinds of value may not. Its
statuses and error messages for the common mistakes (a duplicate name, a
second start, an absent container) are compared word for word.

The simulator's own tests (no dockerd needed) check that create, start,
stop, kill, restart and rm change the state and emit dockerd's events in
dockerd's order, and that the ``/_sim`` controls change things without any.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bench import enginesim
from tests.support import docker as dk
from tests.support.process import ManagedProcess, wait_for

NO_DOCKER = dk.available()

#: Objects whose keys are data (names, ports, labels...), not fields: their values are compared, not their keys.
MAPS = {
    "Labels",
    "Runtimes",
    "IndexConfigs",
    "Networks",
    "Ports",
    "ExposedPorts",
    "PortBindings",
    "Options",
    "Attributes",
    "Volumes",
    "Containers",
    "Data",
    "LogConfig.Config",
}
#: ``omitempty`` fields: present or not depending on the container, so either side may lack them.
#: (``NetworkDisabled`` is true, and so shown, only because the test engine runs with ``--bridge=none``.)
OPTIONAL = {"Config.ExposedPorts", "Config.NetworkDisabled"}


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def shape_diff(real: Any, sim: Any, path: str = "") -> list[str]:
    """Where ``sim`` is not shaped like ``real``: missing and extra keys, and values of another kind.

    A null on either side says nothing about the shape (dockerd writes null
    for an empty slice: ``DriverStatus`` under vfs, ``Binds`` without binds),
    nor does an empty list or object.
    """
    if real is None or sim is None:
        return []
    if kind(real) != kind(sim):
        return [f"{path or '.'}: {kind(real)} on dockerd, {kind(sim)} in the simulator"]
    if isinstance(real, list):
        if not (real and sim):
            return []
        if all(isinstance(item, dict) and "Type" in item for item in real + sim):
            # Mounts: a bind and a volume differ in shape; compare like with like, whatever the order.
            by_type = {item["Type"]: item for item in real}
            return [
                found
                for n, item in enumerate(sim)
                if item["Type"] in by_type
                for found in shape_diff(by_type[item["Type"]], item, f"{path}[{n}]")
            ]
        return shape_diff(real[0], sim[0], f"{path}[0]")
    if not isinstance(real, dict):
        return []
    last_two = ".".join(path.split(".")[-2:])
    if path.split(".")[-1] in MAPS or last_two in MAPS:
        if real and sim:
            return shape_diff(next(iter(real.values())), next(iter(sim.values())), f"{path}.*")
        return []
    found = []
    for key in real.keys() - sim.keys():
        if f"{path}.{key}".lstrip(".") not in OPTIONAL:
            found.append(f"{path}.{key}: only on dockerd")
    for key in sim.keys() - real.keys():
        if f"{path}.{key}".lstrip(".") not in OPTIONAL:
            found.append(f"{path}.{key}: only in the simulator")
    for key in real.keys() & sim.keys():
        found += shape_diff(real[key], sim[key], f"{path}.{key}".lstrip("."))
    return found


def call(addr: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a connection of its own: the status and the decoded JSON body (None for none)."""
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode() or None
    finally:
        connection.close()


class Events:
    """A follower of ``GET /events``: each ``next()`` is the next event (``socket.timeout`` if none comes)."""

    def __init__(self, addr: str, timeout: float = 10) -> None:
        host, port = addr.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.connection.request("GET", "/events")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Transfer-Encoding") == "chunked"

    def next(self) -> dict[str, Any]:
        while True:
            line = self.response.readline()
            assert line, "the event stream ended"
            if line.strip():
                event: dict[str, Any] = json.loads(line)
                return event

    def of(self, cid: str, last: str) -> list[dict[str, Any]]:
        """This container's events, up to and including its action ``last``."""
        found: list[dict[str, Any]] = []
        while not found or found[-1]["Action"] != last:
            event = self.next()
            if event.get("Type") == "container" and event.get("id") == cid:
                found.append(event)
        return found

    def close(self) -> None:
        self.connection.close()


def container_body(image: str) -> dict[str, Any]:
    """A create request that fills most of what inspect shows: env, labels, ports, limits, a volume and a bind."""
    return {
        "Image": image,
        "Cmd": ["sleep", "300"],
        "Env": ["A=1"],
        "Labels": {"shape": "yes"},
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {
            "Memory": 32 * 1024 * 1024,
            "NanoCpus": 500_000_000,
            "PortBindings": {"80/tcp": [{"HostPort": "18080"}]},
            "Binds": ["enginesim-shape:/data", "/tmp:/host:ro"],
            "RestartPolicy": {"Name": "unless-stopped"},
        },
    }


def life(addr: str, image: str) -> dict[str, Any]:
    """The same requests on a real engine and on a simulated one: every answer the shapes are compared on."""
    events = Events(addr)
    try:
        seen: dict[str, Any] = {}
        for path in ("/info", "/version", "/images/json", "/networks", "/volumes"):
            status, seen[path] = call(addr, "GET", path)
            assert status == 200, (path, seen[path])
        status, created = call(addr, "POST", "/containers/create?name=enginesim-shape", container_body(image))
        assert status == 201, created
        cid = seen["id"] = created["Id"]
        assert sorted(created) == ["Id", "Warnings"]
        seen["duplicate"] = call(addr, "POST", "/containers/create?name=enginesim-shape", container_body(image))
        seen["no image"] = call(addr, "POST", "/containers/create", {"Image": "enginesim-no-such-image"})
        seen["created"] = call(addr, "GET", f"/containers/{cid}/json")[1]
        assert call(addr, "POST", f"/containers/{cid}/start")[0] == 204
        seen["start again"] = call(addr, "POST", f"/containers/{cid}/start")[0]
        filters = quote(json.dumps({"id": [cid[:10]]}))
        seen["summary"] = call(addr, "GET", f"/v1.41/containers/json?all=1&filters={filters}")[1]
        seen["running"] = call(addr, "GET", "/containers/enginesim-shape/json")[1]
        seen["volumes after"] = call(addr, "GET", "/volumes")[1]
        seen["remove running"] = call(addr, "DELETE", f"/containers/{cid}")
        assert call(addr, "POST", f"/containers/{cid}/stop?t=0")[0] == 204
        seen["stop again"] = call(addr, "POST", f"/containers/{cid}/stop")[0]
        seen["kill stopped"] = call(addr, "POST", f"/containers/{cid}/kill")
        seen["exited"] = call(addr, "GET", f"/containers/{cid[:12]}/json")[1]
        seen["exited summary"] = call(addr, "GET", "/containers/json?all=1")[1]
        assert call(addr, "DELETE", f"/containers/{cid}?force=1")[0] == 204
        seen["events"] = {event["Action"]: event for event in events.of(cid, "destroy")}
        seen["absent"] = call(addr, "GET", f"/containers/{cid}/json")
        seen["no page"] = call(addr, "GET", "/v1.41/no/such/page")
        call(addr, "DELETE", "/volumes/enginesim-shape")  # the real engine's; the simulator 404s, which is fine
        return seen
    finally:
        events.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[enginesim.Simulator]:
    with enginesim.running(engines=2, containers=12) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, sim: enginesim.Simulator) -> Iterator[tuple[Any, Any]]:
    with dk.running_nodes([dk.DockerNode("simshape")], tmp_path_factory.mktemp("image")) as (node,):
        yield life(node.addr, dk.IMAGE), life(sim.addresses[0], "busybox:latest")


def one_summary(listing: list[dict[str, Any]], cid: str) -> dict[str, Any]:
    return next(summary for summary in listing if summary["Id"] == cid)


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
@pytest.mark.parametrize(
    "what",
    ["/info", "/version", "/images/json", "/networks", "/volumes", "volumes after", "created", "running", "exited"],
)
def test_answers_have_dockerds_shape(compared: tuple[Any, Any], what: str) -> None:
    real, sim = compared
    assert shape_diff(real[what], sim[what]) == []


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_the_objects_that_matter_are_all_there(compared: tuple[Any, Any]) -> None:
    """Not only no difference, but something to compare: the nested objects exist on both sides."""
    real, sim = compared
    for seen in (real, sim):
        running = seen["running"]
        for key in ("HostConfig", "Config", "State", "NetworkSettings", "Mounts", "GraphDriver"):
            assert running[key], key
        assert running["NetworkSettings"]["Networks"]
        assert {mount["Type"] for mount in running["Mounts"]} == {"volume", "bind"}
        assert seen["volumes after"]["Volumes"]
        assert set(seen["events"]) >= {"create", "start", "kill", "die", "stop", "destroy"}
    for kind_of_mount in ("volume", "bind"):
        mounts = [next(m for m in seen["running"]["Mounts"] if m["Type"] == kind_of_mount) for seen in (real, sim)]
        assert shape_diff(*mounts) == [], kind_of_mount


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_summaries_have_dockerds_shape(compared: tuple[Any, Any]) -> None:
    real, sim = compared
    assert len(real["summary"]) == len(sim["summary"]) == 1  # the id filter, by a prefix
    assert shape_diff(real["summary"][0], sim["summary"][0]) == []
    exited = one_summary(real["exited summary"], real["id"]), one_summary(sim["exited summary"], sim["id"])
    assert shape_diff(*exited) == []
    assert [s["State"] for s in exited] == ["exited", "exited"]


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_events_have_dockerds_shape(compared: tuple[Any, Any]) -> None:
    real, sim = compared
    for action in ("create", "start", "kill", "die", "stop", "destroy"):
        ours, theirs = sim["events"][action], real["events"][action]
        assert list(ours) == list(theirs), action  # the same keys in the same order
        assert shape_diff(theirs, ours) == [], action
        assert list(ours["Actor"]) == ["ID", "Attributes"]
        assert {"image", "name", "shape"} <= set(ours["Actor"]["Attributes"]), action
    assert set(sim["events"]["die"]["Actor"]["Attributes"]) - set(real["events"]["die"]["Actor"]["Attributes"]) == set()
    assert "signal" in sim["events"]["kill"]["Actor"]["Attributes"]


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_statuses_and_messages_are_dockerds(compared: tuple[Any, Any]) -> None:
    real, sim = compared

    def worded(seen: dict[str, Any], what: str) -> Any:
        status, body = seen[what]
        return status, json.dumps(body).replace(seen["id"], "ID").replace(dk.IMAGE, "busybox:latest")

    for what in ("duplicate", "remove running", "kill stopped", "absent", "no page"):
        assert worded(sim, what) == worded(real, what), what
    assert real["no image"][0] == sim["no image"][0] == 404
    assert real["no image"][1] == sim["no image"][1] == {"message": "No such image: enginesim-no-such-image:latest"}
    assert real["start again"] == sim["start again"] == 304
    assert real["stop again"] == sim["stop again"] == 304


@pytest.mark.slow
@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_the_simulators_own_containers_have_dockerds_shape(compared: tuple[Any, Any], sim: enginesim.Simulator) -> None:
    """The containers an engine starts with (services with ports, volumes, binds, exited ones) are shaped alike."""
    real, _ = compared
    addr = sim.addresses[1]
    listing = call(addr, "GET", "/containers/json?all=1")[1]
    assert len(listing) == 12
    assert {s["State"] for s in listing} >= {"running", "exited"}
    for summary in listing:
        assert shape_diff(real["summary"][0], summary) == [], summary["Names"]
        inspect = call(addr, "GET", f"/containers/{summary['Id']}/json")[1]
        model = real["running"] if inspect["State"]["Running"] else real["exited"]
        assert shape_diff(model, inspect) == [], summary["Names"]


# -- the simulator alone -------------------------------------------------------------


def test_life_cycle_changes_state_and_emits_dockerds_events(sim: enginesim.Simulator) -> None:
    addr = sim.addresses[0]
    events = Events(addr)
    try:
        status, created = call(addr, "POST", "/containers/create?name=life", {"Image": "busybox", "Cmd": ["sh"]})
        assert status == 201
        cid = created["Id"]

        def state() -> dict[str, Any]:
            found: dict[str, Any] = call(addr, "GET", f"/containers/{cid}/json")[1]["State"]
            return found

        assert state()["Status"] == "created"
        assert call(addr, "POST", "/containers/create?name=life", {"Image": "busybox"})[0] == 409
        running_ids = {s["Id"] for s in call(addr, "GET", "/containers/json")[1]}
        assert cid not in running_ids  # created is not running
        assert call(addr, "POST", f"/v1.41/containers/{cid[:8]}/start")[0] == 204
        assert state()["Running"] and state()["Pid"] > 0
        assert call(addr, "POST", f"/containers/{cid}/start")[0] == 304
        assert cid in {s["Id"] for s in call(addr, "GET", "/containers/json")[1]}
        assert call(addr, "POST", "/containers/life/stop")[0] == 204
        assert state()["Status"] == "exited" and state()["Pid"] == 0
        assert call(addr, "POST", f"/containers/{cid}/kill")[0] == 409
        assert call(addr, "POST", f"/containers/{cid}/restart")[0] == 204
        assert state()["Running"]
        assert call(addr, "POST", f"/containers/{cid}/kill?signal=SIGKILL")[0] == 204
        assert state()["ExitCode"] == 137
        assert call(addr, "POST", f"/containers/{cid}/start")[0] == 204
        assert call(addr, "DELETE", f"/containers/{cid}")[0] == 409
        assert call(addr, "DELETE", f"/containers/{cid}?force=1")[0] == 204
        assert call(addr, "GET", f"/containers/{cid}/json") == (404, {"message": f"No such container: {cid}"})
        actions = [(e["Action"], e["Actor"]["Attributes"].get("signal")) for e in events.of(cid, "destroy")]
    finally:
        events.close()
    assert actions == [
        ("create", None),
        ("start", None),
        ("kill", "15"),
        ("die", None),
        ("stop", None),
        ("start", None),
        ("restart", None),
        ("kill", "9"),
        ("die", None),
        ("start", None),
        ("kill", "9"),
        ("die", None),
        ("destroy", None),
    ]


def test_changes_behind_the_managers_back_send_no_event(sim: enginesim.Simulator) -> None:
    addr = sim.addresses[1]
    events = Events(addr)
    try:
        victim = next(s for s in call(addr, "GET", "/containers/json")[1])
        assert call(addr, "POST", f"/_sim/containers/{victim['Id']}/state?to=exited")[0] == 204
        assert call(addr, "GET", f"/containers/{victim['Id']}/json")[1]["State"]["Status"] == "exited"
        assert victim["Id"] not in {s["Id"] for s in call(addr, "GET", "/containers/json")[1]}
        assert call(addr, "POST", f"/_sim/containers/{victim['Id']}/state?to=running")[0] == 204
        assert call(addr, "POST", "/_sim/quiet")[0] == 204
        status, created = call(addr, "POST", "/containers/create?name=hush", {"Image": "busybox:latest"})
        assert status == 201
        assert call(addr, "POST", "/_sim/loud")[0] == 204
        assert call(addr, "POST", "/containers/hush/start")[0] == 204
        first = events.next()  # had the state changes or the quiet create sent anything, it would be first
        assert (first["Action"], first["id"]) == ("start", created["Id"])
        assert call(addr, "DELETE", "/containers/hush?force=1")[0] == 204
    finally:
        events.close()


def test_http_keep_alive_versions_and_unknown_pages(sim: enginesim.Simulator) -> None:
    host, port = sim.addresses[0].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for path in ("/_ping", "/v1.24/_ping", "/v1.41/info", "/version", "/containers/json?all=1", "/networks"):
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, path
            assert response.getheader("Api-Version") == "1.41"
            assert int(response.getheader("Content-Length") or -1) == len(body)
        assert [n["Name"] for n in json.loads(body)] == ["bridge", "host", "none"]
        connection.request("HEAD", "/_ping")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        connection.request("POST", "/info", body=b"{}")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (404, {"message": "page not found"})
        assert response.getheader("Api-Version") is None  # dockerd's router 404 has none of the API headers
        connection.request("GET", "/v1.42/info")
        response = connection.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["message"].startswith("client version 1.42 is too new")
        connection.request("GET", "/_ping", headers={"Connection": "close"})
        response = connection.getresponse()
        assert response.getheader("Connection") == "close" and response.read() == b"OK"
    finally:
        connection.close()
    # curl's way with a large body: the head alone, "100 Continue", then the body.
    body = json.dumps({"Image": "busybox", "Env": ["X=" + "x" * 2000]}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /containers/create HTTP/1.1\r\nHost: sim\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert raw.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(body)
        assert raw.recv(4096).startswith(b"HTTP/1.1 201 Created\r\n")
    info = call(sim.addresses[1], "GET", "/info")[1]
    assert info["Name"] == "sim-0002" and info["Containers"] == 12
    assert call(sim.addresses[0], "GET", "/info")[1]["ID"] != info["ID"]


def test_command_line_writes_discovery_and_stops_on_sigterm(tmp_path: Path) -> None:
    listing = tmp_path / "engines"
    process = ManagedProcess(
        "enginesim",
        [
            sys.executable,
            "-m",
            "bench.enginesim",
            "--engines",
            "4",
            "--containers",
            "3",
            "--discovery-file",
            str(listing),
        ],
        tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    ).start()
    try:
        wait_for(listing.exists, 30, "the discovery file")
        addresses = listing.read_text().split()
        assert len(addresses) == 4 and all(a.startswith("127.0.0.1:") for a in addresses)
        for addr in addresses:
            assert call(addr, "GET", "/_ping") == (200, "OK")
        wait_for(lambda: "enginesim ready: 4 engines x 3 containers" in process.log_tail(), 10, "the ready line")
        process.signal(signal.SIGTERM)
        assert process.proc is not None
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()
