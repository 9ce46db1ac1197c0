"""The request path around the handlers (swarmctl/api/app.py), on a manager with no engines: no dockerd needed.

What every answer carries (our ``Server`` and ``Api-Version``, the engine's
``Docker-Experimental`` and ``Ostype`` when it sent them), errors as Docker
writes them, a replica relaying to the primary (a stand-in aiohttp app
here; tests/test_replication.py runs real replicas in front of real nodes),
and the event loop the server runs on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from swarmctl import __version__
from swarmctl.api import app as app_module
from swarmctl.api.app import ROUTES, make_app
from swarmctl.api.context import Manager
from swarmctl.cluster.cluster import Cluster
from swarmctl.cluster.engine import EngineOptions
from swarmctl.manage import event_loop_factory
from swarmctl.replication import Role

Answer = tuple[int, dict[str, str], bytes]


def ask(manager: Manager, requests: list[tuple[str, str]]) -> list[Answer]:
    """Each ``(method, path)`` sent to a server running ``make_app(manager)``: status, headers, body."""

    async def scenario() -> list[Answer]:
        server = TestServer(make_app(manager), host="127.0.0.1")
        await server.start_server()
        answers = []
        try:
            async with aiohttp.ClientSession() as session:
                for method, path in requests:
                    async with session.request(method, server.make_url(path), allow_redirects=False) as response:
                        answers.append((response.status, dict(response.headers), await response.read()))
        finally:
            await server.close()
            await manager.cluster.close()
        return answers

    return asyncio.run(scenario())


def with_primary(
    primary: web.Application, requests: list[tuple[str, str]], *, replica_of: Callable[[str], Manager]
) -> list[Answer]:
    """``requests`` sent to a replica (``replica_of(primary's address)``) while ``primary`` serves."""

    async def scenario() -> list[Answer]:
        server = TestServer(primary, host="127.0.0.1")
        await server.start_server()
        try:
            return await asyncio.to_thread(ask, replica_of(f"127.0.0.1:{server.port}"), requests)
        finally:
            await server.close()

    return asyncio.run(scenario())


def manager() -> Manager:
    return Manager(Cluster(EngineOptions()))


def replica(leader: str | None) -> Manager:
    made = manager()
    made.replicated, made.advertise, made.role = True, "127.0.0.1:1", Role(False, leader)
    return made


def assert_ours(headers: dict[str, str], experimental: str = "false", ostype: str = "linux") -> None:
    assert headers["Server"] == f"swarmctl/{__version__}"
    assert headers["Api-Version"] == "1.41"  # no healthy node: the default
    assert headers["Docker-Experimental"] == experimental
    assert headers["Ostype"] == ostype


def message(answer: Answer) -> Any:
    _, headers, body = answer
    assert headers["Content-Type"] == "application/json"  # exactly: the docker CLI decodes errors only then
    return json.loads(body)["message"]


def test_every_answer_says_who_serves_it() -> None:
    requests = [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/v1.41/version"),
        ("GET", "/info"),
        ("GET", "/v1.24/containers/json?all=1"),
        ("GET", "/nope"),
        ("GET", "/containers/json?limit=x"),
    ]
    answers = ask(manager(), requests)
    for _, headers, _ in answers:
        assert_ours(headers)
    assert [status for status, _, _ in answers] == [200, 200, 200, 200, 200, 404, 500]
    assert answers[0][2] == b"OK" and answers[0][1]["Cache-Control"] == "no-cache"
    assert json.loads(answers[2][2])["ApiVersion"] == "1.41"
    assert json.loads(answers[3][2])["SystemStatus"][0] == ["Role", "primary"]
    assert json.loads(answers[4][2]) == []


def test_errors_are_written_as_the_engine_writes_them() -> None:
    answers = ask(
        manager(),
        [
            ("GET", "/nope"),
            ("GET", "/v1.41/containers/x/nope/more"),
            ("POST", "/info"),  # a known path, another method: dockerd's router says the same
            ("DELETE", "/"),
            ("GET", "/containers/json?limit=x"),  # dockerd: strconv.Atoi's error, 500
            ("GET", "/containers/json?filters=bad"),  # the handler's own HTTP error goes as it is
            ("GET", "/containers/nope/json"),
        ],
    )
    assert [status for status, _, _ in answers] == [404, 404, 404, 404, 500, 500, 404]
    assert [message(a) for a in answers[:4]] == ["page not found"] * 4
    assert message(answers[4]) == 'strconv.Atoi: parsing "x": invalid syntax'
    assert json.loads(answers[5][2]) == {"message": "invalid character 'b' looking for beginning of value"}
    assert message(answers[6]) == "No such container: nope"
    for _, headers, _ in answers:
        assert_ours(headers)  # raised HTTP errors too


def test_a_bug_is_logged_once_and_answered_without_python_words(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise KeyError("an-internal-detail")

    monkeypatch.setattr(app_module, "ROUTES", [("GET", "/broken", broken), *ROUTES])
    with caplog.at_level(logging.ERROR, logger="swarmctl.api"):
        ((status, headers, body),) = ask(manager(), [("GET", "/v1.41/broken")])
    assert (status, headers["Content-Type"]) == (500, "application/json")
    assert message((status, headers, body)) == "the manager failed to answer GET /v1.41/broken; its log says why"
    logged = [record for record in caplog.records if record.name == "swarmctl.api"]
    assert len(logged) == 1 and logged[0].exc_info is not None and logged[0].exc_info[0] is KeyError
    (status, headers, body), *_ = ask(manager(), [("HEAD", "/v1.41/info")])
    assert (status, headers["Content-Type"], body) == (404, "application/json", b"")


def test_a_replica_without_a_primary_says_so_but_answers_ping() -> None:
    answers = ask(replica(None), [("GET", "/containers/json"), ("GET", "/v1.41/_ping"), ("POST", "/nope")])
    assert [status for status, _, _ in answers] == [503, 200, 503]
    assert message(answers[0]) == "no primary manager is elected yet; try again in a moment"
    assert answers[1][2] == b"OK"
    for _, headers, _ in answers:
        assert_ours(headers)


def test_a_replica_relays_everything_to_the_primary() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def recorded(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def record(request: web.Request) -> web.StreamResponse:
            seen.append((request.method, request.raw_path, await request.read()))
            return await handler(request)

        return record

    async def listing(request: web.Request) -> web.Response:
        # An engine's headers: its Server and API version are replaced, what it says of itself is kept.
        headers = {"Server": "Docker/20.10", "Api-Version": "1.40", "Docker-Experimental": "true", "Ostype": "windows"}
        return web.json_response([{"Id": "abc"}], headers=headers)

    async def info(request: web.Request) -> web.Response:
        return web.json_response({"Name": "primary", "SystemStatus": [["Role", "primary"], ["Strategy", "spread"]]})

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"status": "start"}\n')
        await response.write(b'{"status": "die"}\n')
        await response.write_eof()
        return response

    async def anything(request: web.Request) -> web.Response:
        return web.Response(status=404, body=b'{"message": "from the primary"}', content_type="application/json")

    primary = web.Application()
    primary.router.add_get("/v1.41/containers/json", recorded(listing))
    primary.router.add_get("/info", recorded(info))
    primary.router.add_get("/events", recorded(streamed))
    primary.router.add_route("*", "/{path:.*}", recorded(anything))

    answers = with_primary(
        primary,
        [
            ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D"),
            ("GET", "/info"),
            ("GET", "/events"),
            ("POST", "/nope"),
            ("GET", "/_ping"),  # answered by the replica itself
        ],
        replica_of=replica,
    )
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", "/v1.41/containers/json?all=1&filters=%7B%7D"),
        ("GET", "/info"),
        ("GET", "/events"),
        ("POST", "/nope"),
    ]
    assert [status for status, _, _ in answers] == [200, 200, 200, 404, 200]
    assert json.loads(answers[0][2]) == [{"Id": "abc"}]
    assert_ours(answers[0][1], experimental="true", ostype="windows")
    status_rows = json.loads(answers[1][2])["SystemStatus"]
    assert status_rows[0] == ["Role", "replica"]
    assert status_rows[1][0] == "Primary" and status_rows[1][1].startswith("127.0.0.1:")
    assert status_rows[2:] == [["Strategy", "spread"]]  # the primary's own Role row left out
    assert answers[2][2] == b'{"status": "start"}\n{"status": "die"}\n'
    assert message(answers[3]) == "from the primary"
    assert answers[4][2] == b"OK"
    for _, headers, _ in answers:
        assert headers["Server"] == f"swarmctl/{__version__}" and headers["Api-Version"] == "1.41"


def test_the_server_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")  # the swarm extra has it wherever uvloop runs (not on Windows or PyPy)
    factory = event_loop_factory(serves_tls=False)
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_the_server_runs_on_asyncio_under_tls_or_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_loop_factory(serves_tls=True) is None  # hijacked TLS connections need asyncio's own TLS
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert event_loop_factory(serves_tls=False) is None


def test_every_route_is_the_same_under_a_version() -> None:
    """The versioned routes are tried in another order (the reads first): each path still reaches its handler."""
    app = make_app(manager())

    async def handler_for(method: str, path: str) -> Any:
        return (await app.router.resolve(make_mocked_request(method, path, app=app))).handler

    async def scenario() -> list[tuple[str, str]]:
        differ = []
        for method, path, _ in ROUTES:
            sample = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "start" if m[1] == "action" else "x1", path)
            for asked in ["GET", "POST", "DELETE", "HEAD", "PUT"] if method == "*" else [method]:
                if await handler_for(asked, "/v1.41" + sample) is not await handler_for(asked, sample):
                    differ.append((asked, sample))
        return differ

    assert asyncio.run(scenario()) == []


def test_the_most_read_paths_are_found_by_lookup_at_every_version() -> None:
    """``/vX.Y/info`` and the listings resolve to routes of their own (no scan), the same handlers as unversioned."""
    app = make_app(manager())

    async def resolved(method: str, path: str) -> Any:
        return (await app.router.resolve(make_mocked_request(method, path, app=app))).route

    async def scenario() -> list[str]:
        wrong = []
        for version in (app_module.EXACT_VERSIONS[0], "1.41", app_module.EXACT_VERSIONS[-1]):
            for path in ("/info", "/containers/json", "/_ping", "/networks", "/volumes", "/images/json", "/version"):
                route = await resolved("GET", f"/v{version}{path}")
                if (
                    not isinstance(route.resource, web.PlainResource)
                    or route.handler is not (await resolved("GET", path)).handler
                ):
                    wrong.append(f"/v{version}{path}")
        return wrong

    assert asyncio.run(scenario()) == []
    assert app_module.EXACT_VERSIONS[0] == "1.24" and "1.41" in app_module.EXACT_VERSIONS


Exchange = tuple[list[tuple[bytes, dict[str, str], bytes]], bool]


def exchanges(raws: list[bytes], answers: int = 1) -> list[Exchange]:
    """Each of ``raws`` written on its own connection to one served ``make_app``: its first ``answers`` answers.

    Each answer is (status line, headers, body), parsed by hand; the flag says
    whether the server closed the connection after them.
    """

    async def one(port: int, raw: bytes) -> Exchange:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        parsed = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, *lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = dict(line.split(": ", 1) for line in lines)
            length = int(headers.get("Content-Length", "0"))
            body = b"" if raw.startswith(b"HEAD") else await reader.readexactly(length)
            parsed.append((status.encode(), headers, body))
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.5) == b""
        except TimeoutError:
            closed = False
        writer.close()
        return parsed, closed

    async def scenario() -> list[Exchange]:
        made = manager()
        server = TestServer(make_app(made), host="127.0.0.1")
        await server.start_server()
        port = server.port
        assert port is not None
        try:
            return [await one(port, raw) for raw in raws]
        finally:
            await server.close()
            await made.cluster.close()

    return asyncio.run(scenario())


def test_cached_answers_are_whole_http_messages_on_a_kept_connection() -> None:
    """``/info`` and ``docker ps`` are written as ready-made messages: pipelined, kept alive, complete."""
    asked = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for path in ("/v1.41/info", "/v1.41/containers/json?all=1", "/v1.41/info")
    )
    [(answers, closed)] = exchanges([asked], 3)
    assert not closed
    for status, headers, body in answers:
        assert status == b"HTTP/1.1 200 OK"
        assert headers["Content-Type"] == "application/json" and "Date" in headers
        assert_ours(headers)
        assert json.loads(body) is not None
    assert json.loads(answers[1][2]) == []
    assert json.loads(answers[0][2])["ID"] == json.loads(answers[2][2])["ID"]


@pytest.mark.parametrize(
    ("raw", "closes"),
    [
        (b"GET /v1.41/info HTTP/1.0\r\n\r\n", True),
        (b"GET /v1.41/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True),
        (b"GET /v1.41/info HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
        (b"HEAD /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ],
)
def test_other_requests_for_cached_answers_get_the_same_headers_by_aiohttp(raw: bytes, closes: bool) -> None:
    """HTTP/1.0, ``Connection: close`` and ``HEAD`` take aiohttp's own path: the same headers, its keep-alive rules."""
    plain = b"GET " + raw.split(b" ")[1] + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    ([(status, headers, body)], closed), ([(_, plain_headers, plain_body)], _) = exchanges([raw, plain])
    assert closed == closes
    if raw.startswith(b"HEAD"):
        assert status.endswith(b"404 Not Found")  # dockerd's router: a GET path's other methods are not found
        return
    assert status.endswith(b"200 OK")
    answered, plain_answered = json.loads(body), json.loads(plain_body)
    assert answered["ID"] == plain_answered["ID"] and answered.keys() == plain_answered.keys()
    assert_ours(headers)
    assert headers["Content-Type"] == "application/json"
    assert set(plain_headers) <= set(headers)  # aiohttp may add Connection
