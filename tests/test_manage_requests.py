"""Malformed requests through ``swarmctl manage`` get the answer one engine gives: its status and its words.

Each request goes to a real dockerd directly and through a manager in front
of it, and the two answers are compared: the status, and the ``message``
word for word. None may carry Python's words (an exception's name or text),
and the manager's log must hold no traceback.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from tests.support import docker as dk
from tests.support.differential import Reply, send_raw
from tests.support.manager import Manager, managing
from tests.support.process import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

CREATE = "/v1.41/containers/create"


def body(**fields: object) -> str:
    return json.dumps({"Image": dk.IMAGE, **fields})


#: (method, path, body): each one the engine refuses; the manager must refuse it in the same words.
REFUSED: list[tuple[str, str, str | None]] = [
    ("POST", CREATE, body(Env={"a": "b"})),
    ("POST", CREATE, body(HostConfig=[1, 2])),
    ("POST", CREATE, body(HostConfig="x")),
    ("POST", CREATE, body(HostConfig={"PortBindings": {"80/tcp": "x"}})),
    ("POST", CREATE, body(HostConfig={"PortBindings": 5})),
    ("POST", CREATE, body(HostConfig={"VolumesFrom": "notalist"})),
    ("POST", CREATE, body(hostconfig={"volumesfrom": "x"})),  # Go matches field names ignoring case
    ("POST", CREATE, body(HostConfig={"Memory": 99999999999999999999})),
    ("POST", CREATE, body(HostConfig={"Memory": 1.5})),
    ("POST", CREATE, body(HostConfig={"BlkioWeight": -1})),
    ("POST", CREATE, body(HostConfig={"Mounts": [{"TmpfsOptions": {"Mode": -1}}]})),
    ("POST", CREATE, body(HostConfig={"Ulimits": ["x"]})),
    ("POST", CREATE, body(NetworkingConfig={"EndpointsConfig": {"n": {"Aliases": "x"}}})),
    ("POST", CREATE, body(Env=[1], Labels=5)),  # the first type error is the answer
    ("POST", CREATE, body(Env="x", Cmd=5)),  # but a decoder of its own (Cmd's) stops at once
    ("POST", CREATE, body(Labels={"a": 1})),
    ("POST", CREATE, body(Cmd=[1])),
    ("POST", CREATE, '{"Image": "x", "StopTimeout": 1e3}'),
    ("POST", CREATE, '{"Image": "x", "HostConfig": {"Memory": 1e400}}'),
    ("POST", CREATE, "[1]"),
    ("POST", CREATE, "null"),
    ("POST", CREATE, "{}"),
    ("POST", CREATE, '{"HostConfig": {}}'),
    ("POST", CREATE, ""),
    ("POST", CREATE, '{"Image": "x"'),
    ("POST", CREATE, '{"Image": "x",}'),
    ("POST", CREATE, '{"X": ' + "[" * 10_001 + "]" * 10_001 + "}"),
    ("POST", CREATE, '{"X": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    *(
        ("GET", f"/v1.41/{listing}?filters={quote(filters)}", None)
        for listing in ("containers/json", "networks", "volumes")
        for filters in ("[1]", "x", '{"label":["a"]} x', '{"bogus":["x"]}', '{"status":{"running":1}}')
    ),
    *(
        ("GET", f"/v1.41/containers/json?filters={quote(filters)}", None)
        for filters in (
            '{"status":["bogus"]}',
            '{"status":{"bogus":true}}',
            '{"health":["bogus"]}',
            '{"exited":["abc"]}',
            '{"is-task":["abc"]}',
            '{"before":["nonexistent"]}',
            '{"publish":["1:2"]}',
        )
    ),
    *(
        ("POST", f"/v1.41/{path}", data)
        for path, bodies in (
            ("networks/create", ["[1]", '{"Name":5}', '{"Name":"n1","IPAM":{"Config":"x"}}', '{"Name":"n1"', "", "{}"]),
            ("networks/none/connect", ["[1]", '{"Container":5}', '{"Container":"x","EndpointConfig":{"Aliases":"a"}}']),
            ("networks/none/disconnect", ['{"Container":"x","Force":"yes"}', ""]),
            ("volumes/create", ["[1]", '{"Name":5}', '{"Name":"v","Labels":{"a":1}}', '{"Name":"v"', "x"]),
        )
        for data in bodies
    ),
    ("GET", "/v1.41/events?since=abc&until=1", None),
    ("GET", "/v1.41/events?since=1&until=2.x", None),
    ("GET", "/v1.41/events?until=99999999999999999999", None),
    ("GET", "/v1.41/events?filters=[1]&until=1", None),
    ("GET", "/v1.41/volumes?filters=" + quote('{"dangling":["maybe"]}'), None),
    ("GET", "/v1.41/networks?filters=" + quote('{"type":["bogus"]}'), None),
    ("GET", "/v1.41/containers/json?limit=99999999999999999999999", None),
    ("GET", "/v1.41/containers/json?limit=abc", None),
    ("GET", "/v1.41/containers/json?limit=1.5", None),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dk.DockerNode]:
    with dk.running_nodes([dk.DockerNode("vnode1")], tmp_path_factory.mktemp("image")) as made:
        yield made[0]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, node: dk.DockerNode) -> Iterator[Manager]:
    with managing(tmp_path_factory.mktemp("manager"), [node]) as made:
        yield made


def send(addr: str, method: str, path: str, data: str | None = None) -> tuple[int, str]:
    """Status and ``message`` (the whole body if it has none) of one request, sent as the docker CLI sends it."""
    host, port = addr.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, path, body=data.encode() if data is not None else None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")
    return response.status, answer["message"] if isinstance(answer, dict) and "message" in answer else raw.decode()


def python_words(text: str) -> bool:
    return any(word in text for word in ("Error:", "object has no attribute", "Traceback", "swarmctl:"))


@pytest.mark.parametrize(
    ("method", "path", "data"), REFUSED, ids=[f"{m} {p[:80]} {(d or '')[:50]}" for m, p, d in REFUSED]
)
def test_refused_as_the_engine_refuses(
    node: dk.DockerNode, manager: Manager, method: str, path: str, data: str | None
) -> None:
    engine = send(node.addr, method, path, data)
    assert engine[0] >= 400, engine  # the case is one the engine refuses
    answered = send(manager.addr, method, path, data)
    assert answered == engine
    assert not python_words(answered[1])


def test_a_good_body_still_creates(node: dk.DockerNode, manager: Manager) -> None:
    """Field names in any case and fields the types do not know reach the engine as they were meant."""
    data = json.dumps({"image": dk.IMAGE, "cmd": ["true"], "labels": {"x": "1"}, "SomethingNewer": {"a": [1.5]}})
    status, raw = send(manager.addr, "POST", CREATE + "?name=good-body", data)
    assert status == 201, raw
    try:
        inspected = json.loads(node.docker("inspect", "good-body").stdout)[0]
        assert inspected["Config"]["Cmd"] == ["true"] and inspected["Config"]["Labels"]["x"] == "1"
    finally:
        node.docker("rm", "-f", "good-body")


@pytest.mark.parametrize("depth", [300, 9_999])  # 10,000 with the body itself: as deep as Go reads
def test_deep_in_a_field_the_types_do_not_name_is_created_as_by_the_engine(
    node: dk.DockerNode, manager: Manager, depth: int
) -> None:
    """Go reads 10,000 levels and passes on what it does not know: the manager too (kept as text, see jsontext)."""
    data = body(Cmd=["true"])[:-1] + ', "X": ' + "[" * depth + "]" * depth + "}"
    try:
        assert send(node.addr, "POST", CREATE + f"?name=deep-{depth}-engine", data)[0] == 201
        status, raw = send(manager.addr, "POST", CREATE + f"?name=deep-{depth}", data)
        assert status == 201, raw
        assert json.loads(node.docker("inspect", f"deep-{depth}").stdout)[0]["Config"]["Cmd"] == ["true"]
    finally:
        node.docker("rm", "-f", f"deep-{depth}", f"deep-{depth}-engine")


def test_no_traceback_in_the_log(manager: Manager) -> None:
    for method, path, data in REFUSED:
        send(manager.addr, method, path, data)
    assert "Traceback" not in manager.process.log_path.read_text(errors="replace")


def listed_ids(addr: str, filters: dict[str, list[str]]) -> list[str]:
    status, raw = send(addr, "GET", "/v1.41/containers/json?all=1&filters=" + quote(json.dumps(filters)))
    assert status == 200, raw
    return sorted(c["Id"] for c in json.loads(raw))


def test_every_filter_keeps_what_the_engine_keeps(node: dk.DockerNode, manager: Manager) -> None:
    """Each of dockerd's container filters, through the manager and on the engine: the same containers."""
    made = {
        "f-exit3": ["-e", "X=1", dk.IMAGE, "sh", "-c", "exit 3"],
        "f-port": ["-p", "18080:80", "--network", "bridge", dk.IMAGE, "sleep", "300"],
        "f-vol": ["-v", "fvol:/data", "-l", "tier=db", dk.IMAGE, "sleep", "300"],
    }
    try:
        for name, args in made.items():
            node.docker("run", "-d", "--name", name, *args)
        manager.wait_nodes({"vnode1": "Healthy"})
        oldest = node.docker("inspect", "-f", "{{.Id}}", "f-exit3").stdout.decode().strip()
        cases: list[dict[str, list[str]]] = [
            {"exited": ["3"]},
            {"exited": ["0"]},
            {"status": ["exited"]},
            {"status": ["running", "created"]},
            {"health": ["none"]},
            {"is-task": ["false"]},
            {"is-task": ["true"]},
            {"volume": ["fvol"]},
            {"volume": ["/data"]},
            {"label": ["tier=db"]},
            {"since": [oldest]},
            {"before": ["f-vol"]},
            {"name": ["f-"]},
            {"ancestor": [dk.IMAGE]},
            {"isolation": ["default"]},
        ]
        for filters in cases:
            wanted = listed_ids(node.addr, filters)
            assert wait_until_equal(lambda f=filters: listed_ids(manager.addr, f), wanted), filters
    finally:
        node.docker("rm", "-f", *made)
        node.docker("volume", "rm", "fvol")


def wait_until_equal(get: Callable[[], list[str]], wanted: list[str], timeout: float = 20) -> bool:
    """Whether ``get()`` comes to equal ``wanted`` (the manager's cache follows the engine's events)."""
    try:
        wait_for(lambda: get() == wanted, timeout, f"the manager to list {wanted}")
    except TimeoutError:
        return False
    return True


def listed_volumes(addr: str, filters: str) -> list[str]:
    status, raw = send(addr, "GET", "/v1.41/volumes?filters=" + quote(filters))
    assert status == 200, raw
    return sorted(v["Name"] for v in json.loads(raw)["Volumes"] or [])


def test_dangling_volumes_as_the_engine_reads_the_filter(node: dk.DockerNode, manager: Manager) -> None:
    """dockerd 20.10 reads a volume's ``dangling`` as true when ``true``/``1`` is among the values, or none is."""
    node.docker("volume", "create", "d-free")
    node.docker("volume", "create", "d-used")
    node.docker("create", "--name", "d-user", "-v", "d-used:/x", dk.IMAGE, "true")
    try:
        manager.wait_nodes({"vnode1": "Healthy"})
        for filters in (
            '{"dangling":["true","false"]}',
            '{"dangling":[]}',
            '{"dangling":null}',
            '{"dangling":["false","x"]}',
            '{"dangling":["x","1"]}',
            '{"dangling":["0"]}',
            '{"dangling":{"true":true,"false":true}}',
        ):
            wanted = listed_volumes(node.addr, filters)
            assert "d-free" in wanted or "d-used" in wanted, filters  # the case means something on the engine
            assert wait_until_equal(lambda f=filters: listed_volumes(manager.addr, f), wanted), filters
    finally:
        node.docker("rm", "-f", "d-user")
        node.docker("volume", "rm", "d-free", "d-used")


def test_an_ambiguous_id_prefix_is_answered_as_the_engine_answers_it(node: dk.DockerNode, manager: Manager) -> None:
    """Two containers whose IDs start alike: the shared prefix is dockerd's 500, in its words."""
    made: list[str] = []
    try:
        while not (shared := {i[0] for i in made if sum(j[0] == i[0] for j in made) > 1}):
            made.append(node.docker("create", dk.IMAGE, "true").stdout.decode().strip())
        prefix = shared.pop()
        manager.wait_nodes({"vnode1": "Healthy"})
        engine = send(node.addr, "GET", f"/v1.41/containers/{prefix}/json")
        assert engine == (500, f"Multiple IDs found with provided prefix: {prefix}")
        assert wait_until_equal(
            lambda: [str(send(manager.addr, "GET", f"/v1.41/containers/{prefix}/json"))], [str(engine)]
        )
    finally:
        node.docker("rm", "-f", *made)


def raw_exchange(addr: str, request: bytes) -> bytes:
    """``request`` written as it is on a new connection; what comes back until the server closes or pauses."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_large_headers_and_long_references_are_read(node: dk.DockerNode, manager: Manager) -> None:
    """A 10,000-byte registry token and a 10,000-character reference, as dockerd reads them (1 MiB of headers)."""
    token = "a" * 10_000
    for addr in (node.addr, manager.addr):
        assert raw_exchange(
            addr, f"GET /info HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: {token}\r\n\r\n".encode()
        ).startswith(b"HTTP/1.1 200"), addr
    ref = "x" * 10_000
    assert send(manager.addr, "GET", f"/v1.41/containers/{ref}/json") == send(
        node.addr, "GET", f"/v1.41/containers/{ref}/json"
    )


def test_malformed_http_is_refused_and_logged_in_one_line(manager: Manager) -> None:
    log = manager.process.log_path
    before = len(log.read_text(errors="replace"))
    for request in (b"GET /info HTTP/1.1\r\nBroken header line\r\n\r\n", b"GET /info HTTP/1.1\r\n\r\n"):
        assert raw_exchange(manager.addr, request).split(b"\r\n")[0].endswith(b" 400 Bad Request"), request
    wait_for(
        lambda: log.read_text(errors="replace")[before:].count("malformed request refused") == 2, 10, "two log lines"
    )
    written = log.read_text(errors="replace")[before:]
    assert "Traceback" not in written


_CREATE_HEAD = f"POST {CREATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
#: (request, half-closed after it): each answered by dockerd with a status and words the manager must give too.
CUT_OR_UNSPOKEN = {
    "body cut by half-close": (_CREATE_HEAD + b"Content-Length: 100\r\n\r\n" + body().encode()[:20], True),
    "chunked body cut by half-close": (
        _CREATE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n30\r\n" + body().encode()[:20],
        True,
    ),
    "HTTP/9.9": (b"GET /v1.41/_ping HTTP/9.9\r\nHost: x\r\n\r\n", False),
}


def words(reply: Reply) -> str:
    """A JSON answer's ``message``, or a text answer's text (Go's server writes its own refusals as text)."""
    return reply.message if reply.message is not None else reply.body.decode(errors="replace").strip()


@pytest.mark.parametrize("case", CUT_OR_UNSPOKEN)
def test_cut_bodies_and_unknown_versions_answered_as_the_engine_does(
    node: dk.DockerNode, manager: Manager, case: str
) -> None:
    """dockerd answers a body its client stopped sending 500 ``unexpected EOF``, an HTTP/9.9 request 505."""
    data, half_close = CUT_OR_UNSPOKEN[case]
    engine = send_raw(node.addr, data, half_close=half_close)
    assert engine.status >= 500, engine.describe()
    answered = send_raw(manager.addr, data, half_close=half_close)
    assert (answered.status, words(answered)) == (engine.status, words(engine)), answered.describe()
    assert send(manager.addr, "GET", "/v1.41/_ping") == (200, "OK")  # and the manager serves on
    assert "Traceback" not in manager.process.log_path.read_text(errors="replace")
