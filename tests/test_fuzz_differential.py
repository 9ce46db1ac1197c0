"""Differential fuzzing: generated malformed and odd-but-valid requests, to a real dockerd and through the manager.

Each generated request goes to one real dockerd directly and to a ``swarmctl
manage`` whose only node is that dockerd (:mod:`tests.support.differential`).
The manager must answer in the status class dockerd did (2xx/4xx/5xx), its
errors as Docker-style JSON ``{"message": ...}``, never in Python's words, and
without a traceback in its log.

The differences allowed are the refusals only a manager makes, for a create
body that dockerd could read into its types (one it could not, "json: cannot
unmarshal ...", must be refused as dockerd refuses it, before any rule is read):

- a container it cannot place for a reason of the cluster
  (``-e constraint:node==elsewhere``, a ``--volumes-from`` or network that no
  node has, more memory than any node has free): Swarm refused those with a
  500 naming the requirement, where a lone engine, which knows of no
  placement, creates the container or answers 404 about the missing piece;
- a Swarm rule it cannot read (``-e constraint:node=x``, a bad ``/regexp/``),
  a 400 naming the rule, where an engine sees a plain environment variable;
- a container ref written ``node/name``, the manager's own name for it.

dockerd 20.10 answers a create body it cannot decode into its types
(``"Cmd": 5``) with a 500 ("json: cannot unmarshal number into Go struct field
..."), and malformed ``filters`` the same way: the same class is what is asked.

No difference is known: every generated request is compared (the last ones
found, a body nested thousands of levels deep, a half-closed body and
``HTTP/9.9``, are answered as dockerd answers them now). Malformed HTTP (no
Host, a cut body...) is sent raw; Go's own refusals of those are text/plain,
so there the manager may answer in text too.

Every run generates the same requests (``tests.support.fuzzing``): about 2,500
per run in CI, in about a minute; ``SWARMCTL_FUZZ_SCALE=N`` runs N times as
many, ``SWARMCTL_FUZZ_SEED=S`` others, and ``SWARMCTL_FUZZ_REPORT=FILE`` lists
every difference in FILE instead of stopping at the first.
"""

from __future__ import annotations

import functools
import json
import re
import string
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.support import docker as dk
from tests.support.differential import (
    PYTHON_TEXT,
    LogWatch,
    Pair,
    Reply,
    Request,
    decoded,
    placement_refusal,
    send,
    send_raw,
    status_class,
)
from tests.support.fuzzing import examples
from tests.support.manager import managing
from tests.support.process import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

NODE = "fuzz1"
API = "/v1.41"
JSON_TYPE = (("Content-Type", "application/json"),)
#: Containers that exist throughout, for refs to find (created on dockerd before the fuzzing).
TARGETS = ("fuzz-target-alpha", "fuzz-target-beta")
#: A create body both accept.
VALID_BODY = json.dumps({"Image": dk.IMAGE, "Cmd": ["true"]}).encode()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with (
        dk.running_nodes([dk.DockerNode(NODE)], tmp_path_factory.mktemp("image")) as nodes,
        managing(tmp_path_factory.mktemp("manager"), nodes) as manager,
    ):
        made = Pair(nodes[0].addr, manager.addr, LogWatch(manager.process.log_path))
        for name in TARGETS:
            body = json.dumps({"Image": dk.IMAGE, "Cmd": ["true"]}).encode()
            created = send(made.engine, Request("POST", f"{API}/containers/create?name={name}", body, JSON_TYPE))
            assert created.status == 201, created.describe()
        for name in TARGETS:
            wait_for(
                lambda name=name: send(made.manager, Request("GET", f"{API}/containers/{name}/json")).status == 200,
                30,
                f"the manager to see {name}",
            )
        yield made


@pytest.fixture
def settled(pair: Pair) -> None:
    """The pair once the manager lists what dockerd lists (for requests that name containers by prefix)."""
    pair.settle()


@pytest.fixture(scope="module")
def target_ids(pair: Pair) -> list[str]:
    found = []
    for name in TARGETS:
        document = send(pair.engine, Request("GET", f"{API}/containers/{name}/json")).document
        found.append(str(document["Id"]))
    return found


# -- values: of the right type, and of every other ---------------------------------------------

#: Strings that mean something to an engine, plus generated ones (unicode, control characters).
ODD_STRINGS = st.one_of(
    st.sampled_from(
        ["", " ", "x", "-", "..", "/", "/tmp", "/data", "none", "host", "bridge", "default", "container:nope",
         "always", "no", "on-failure", "80/tcp", "8080", "0", "-1", "SIGKILL", "BOGUS", "json-file", "nope:latest",
         dk.IMAGE, "\u00e9t\u00e9", "\x00", "a" * 300]
    ),
    st.text(max_size=12),
)  # fmt: skip
IN_INT64 = st.integers(-(2**63), 2**63 - 1)
INT64 = st.one_of(IN_INT64, st.sampled_from([0, -1, 1, 2**63, 2**64, -(2**63) - 1, 10**30]))
SCALARS = st.one_of(st.none(), st.booleans(), INT64, st.floats(allow_nan=False, allow_infinity=False), ODD_STRINGS)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
STRING_LISTS = st.lists(ODD_STRINGS, max_size=3)


@functools.cache
def kinds() -> dict[str, st.SearchStrategy[Any]]:
    """A value of the Engine API's type for each kind of field (built once)."""
    strings_map = st.dictionaries(ODD_STRINGS, ODD_STRINGS, max_size=3)
    return {
        "str": ODD_STRINGS,
        "bool": st.booleans(),
        "int": INT64,
        "strs": STRING_LISTS,
        "strslice": STRING_LISTS | ODD_STRINGS,  # Cmd, Entrypoint, Shell, CapAdd: a string is a list of one
        "set": st.dictionaries(st.sampled_from(["80/tcp", "/data", "53/udp", "x", ""]), st.just({}), max_size=2),
        "map": strings_map,
        "ports": st.dictionaries(
            st.sampled_from(["80/tcp", "8080", "x/tcp", ""]),
            st.lists(st.fixed_dictionaries({}, optional={"HostIp": ODD_STRINGS, "HostPort": ODD_STRINGS}), max_size=2),
            max_size=2,
        ),
        "restart": st.fixed_dictionaries({}, optional={"Name": ODD_STRINGS, "MaximumRetryCount": IN_INT64}),
        # Not any driver name: dockerd looks an unknown one up as a plugin for 15 s before refusing it.
        "log": st.fixed_dictionaries(
            {}, optional={"Type": st.sampled_from(["json-file", "none", "local", ""]), "Config": strings_map}
        ),
        "ulimits": st.lists(
            st.fixed_dictionaries({}, optional={"Name": ODD_STRINGS, "Soft": IN_INT64, "Hard": IN_INT64}), max_size=2
        ),
        "mounts": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "Type": st.sampled_from(["bind", "tmpfs", "bogus", ""]),
                    "Source": st.sampled_from(["/tmp", "/nonexistent", "", "x"]),
                    "Target": ODD_STRINGS,
                    "ReadOnly": st.booleans(),
                },
            ),
            max_size=2,
        ),
        "health": st.fixed_dictionaries({}, optional={"Test": STRING_LISTS, "Interval": IN_INT64, "Retries": IN_INT64}),
        "endpoints": st.dictionaries(
            st.sampled_from(["bridge", "none", "nope", ""]),
            st.fixed_dictionaries({}, optional={"Aliases": STRING_LISTS}),
            max_size=2,
        ),
    }


CONFIG_FIELDS = {
    "Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool", "AttachStdout": "bool",
    "Tty": "bool", "OpenStdin": "bool", "StdinOnce": "bool", "ExposedPorts": "set", "Env": "strs",
    "Cmd": "strslice", "Entrypoint": "strslice", "Image": "str", "Volumes": "set", "WorkingDir": "str",
    "NetworkDisabled": "bool", "MacAddress": "str", "OnBuild": "strs", "Labels": "map", "StopSignal": "str",
    "StopTimeout": "int", "Shell": "strslice", "Healthcheck": "health",
}  # fmt: skip
HOST_FIELDS = {
    "Binds": "strs", "NetworkMode": "str", "PortBindings": "ports", "RestartPolicy": "restart",
    "AutoRemove": "bool", "VolumesFrom": "strs", "CapAdd": "strslice", "CapDrop": "strslice", "Dns": "strs",
    "DnsSearch": "strs", "ExtraHosts": "strs", "Links": "strs", "Privileged": "bool", "PublishAllPorts": "bool",
    "ReadonlyRootfs": "bool", "SecurityOpt": "strs", "Memory": "int", "MemorySwap": "int", "CpuShares": "int",
    "NanoCpus": "int", "CpusetCpus": "str", "PidMode": "str", "IpcMode": "str", "UTSMode": "str",
    "OomScoreAdj": "int", "ShmSize": "int", "Sysctls": "map", "Tmpfs": "map", "LogConfig": "log",
    "Ulimits": "ulimits", "Init": "bool", "Runtime": "str", "Mounts": "mounts",
}  # fmt: skip
#: Swarm's rules as a user writes them, placeable or not on the one node.
RULES = st.sampled_from(
    [
        f"constraint:node=={NODE}", "constraint:node==elsewhere", "constraint:node!=elsewhere",
        "affinity:image==" + dk.IMAGE, "affinity:container==nope", "affinity:container!=~nope",
        "constraint:node=bad", "constraint:node==/(/", "reschedule:on-node-failure", "reschedule:bogus",
    ]
)  # fmt: skip


@st.composite
def create_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A create body from a valid one with a few fields changed, each to a value of its type or any JSON."""
    body: dict[str, Any] = {"Image": dk.IMAGE, "Cmd": ["true"]}
    host: dict[str, Any] = {}
    typed = kinds()
    for fields, target in ((CONFIG_FIELDS, body), (HOST_FIELDS, host)):
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
            target[name] = draw(ANY_JSON if draw(st.integers(0, 2)) == 0 else typed[fields[name]])
    env = body.get("Env", [])
    if draw(st.booleans()) and isinstance(env, list):
        body["Env"] = [*draw(st.lists(RULES, min_size=1, max_size=2)), *env]
    if host:
        body["HostConfig"] = host
    if draw(st.integers(0, 9)) == 0:
        body["NetworkingConfig"] = {"EndpointsConfig": draw(typed["endpoints"])}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(string.ascii_letters, min_size=1, max_size=8))] = draw(ANY_JSON)  # an unknown field
    return body


#: Container names: none, a fresh valid one (each side its own, both removed), or an invalid one.
NAMES = st.one_of(
    st.none(),
    st.just("valid"),
    st.sampled_from(["", "/", "-x", "a b", "x" * 300, "\u00e9", "a/b", ".x", "_x", "a:b"]),
    st.text(max_size=10),
)
_VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_counter = iter(range(10**9))


def _create_path(name: str | None) -> str:
    if name is None:
        return f"{API}/containers/create"
    if name == "valid" or _VALID_NAME.fullmatch(name):
        name = f"fuzz-{next(_counter)}"  # a valid name is made unique: two creates must not meet on one engine
    return f"{API}/containers/create?name={urllib.parse.quote(name, safe='')}"


def _send_create(pair: Pair, path_for: Any, body: bytes, headers: tuple[tuple[str, str], ...]) -> tuple[Reply, Reply]:
    """Each side its own name (a valid one is unique per side), then both answers compared by the caller."""
    engine_request = Request("POST", path_for(), body, headers)
    engine = send(pair.engine, engine_request)
    pair.remove_created(pair.engine, engine)
    manager = send(pair.manager, Request("POST", path_for(), body, headers))
    pair.remove_created(pair.manager, manager, fallback=pair.engine)
    pair.sent += 1
    return engine, manager


@examples(900, slow_setup=True)
@given(body=create_bodies(), name=NAMES)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "HostConfig": [1, 2]}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "HostConfig": {"PortBindings": {"80/tcp": "x"}}}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "Env": {"a": "b"}}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "HostConfig": {"VolumesFrom": "notalist"}}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "Labels": {"a": 1}}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": 5}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": "true"}, name="valid")
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "Env": [f"constraint:node=={NODE}"]}, name=None)
@example(body={"Image": dk.IMAGE, "Cmd": ["true"], "Env": ["constraint:node==elsewhere"]}, name=None)
def test_container_create_bodies(pair: Pair, body: dict[str, Any], name: str | None) -> None:
    data = json.dumps(body).encode()
    engine, manager = _send_create(pair, lambda: _create_path(name), data, JSON_TYPE)
    # A manager's own refusals are allowed only for a body dockerd could decode (see the module's docstring).
    allowed = placement_refusal if decoded(engine) else None
    pair.check(
        Request("POST", _create_path(name), data, JSON_TYPE), engine, manager, allowed=allowed, echoed=data.decode()
    )


def _nested(depth: int) -> bytes:
    return b'{"Image": "' + dk.IMAGE.encode() + b'", "Labels": ' + b"[" * depth + b"]" * depth + b"}"


RAW_BODIES = st.one_of(
    st.sampled_from(
        [b"", b"{", b"[]", b"null", b"1", b'"x"', b"{}", b'{"Image": }', b"\xff\xfe", b'{"Image": "a"} trailing',
         b'{"Image": "' + dk.IMAGE.encode() + b'", "Cmd": ["true"]}', b" " * 10, b"\x00"]
    ),
    st.binary(max_size=40),
    ANY_JSON.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(_nested),
    st.integers(1, 200_000).map(lambda n: json.dumps({"Image": dk.IMAGE, "Cmd": ["x" * n]}).encode()),
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    [
        JSON_TYPE,
        JSON_TYPE,
        (("Content-Type", "application/json; charset=utf-8"),),
        (("Content-Type", "text/plain"),),
        (),
    ]
)


@examples(250, slow_setup=True)
@given(data=RAW_BODIES, headers=CONTENT_TYPES)
@example(data=_nested(100_000), headers=JSON_TYPE)  # once a RecursionError
@example(data=b"{", headers=JSON_TYPE)
@example(data=b"", headers=JSON_TYPE)
@example(data=b"[]", headers=JSON_TYPE)
@example(data=json.dumps({"Image": dk.IMAGE, "Cmd": ["true"], "Env": ["x" * 1_000_000]}).encode(), headers=JSON_TYPE)
def test_container_create_raw_bodies(pair: Pair, data: bytes, headers: tuple[tuple[str, str], ...]) -> None:
    engine, manager = _send_create(pair, lambda: _create_path(None), data, headers)
    pair.check(
        Request("POST", _create_path(None), data, headers), engine, manager, echoed=data.decode("utf-8", "replace")
    )


# -- list filters and limits -------------------------------------------------------------------

#: Filter names each list knows (dockerd 20.10), and a few it does not.
FILTER_NAMES = {
    "/containers/json": ["status", "label", "name", "id", "ancestor", "before", "since", "exited", "health",
                         "network", "volume", "is-task", "publish", "expose"],
    "/images/json": ["dangling", "label", "before", "since", "reference"],
    "/networks": ["driver", "id", "label", "name", "scope", "type", "dangling"],
    "/volumes": ["dangling", "driver", "label", "name"],
}  # fmt: skip
FILTER_VALUES = st.sampled_from(
    ["bogus", "running", "exited", "created", "true", "false", "1", "0", "maybe", "a=b", "a", "", "local", "bridge",
     "custom", "builtin", "swarm", "healthy", "none", TARGETS[0], dk.IMAGE, "-1", "999999999999999999999"]
)  # fmt: skip


@st.composite
def filters(draw: st.DrawFn, names: list[str]) -> str:
    """A ``filters`` parameter: the JSON map the CLI sends, its legacy form, or something else entirely."""
    name = st.sampled_from([*names, "bogus", "Status", ""])
    shape = draw(st.integers(0, 5))
    if shape <= 1:  # {"name": ["value", ...]}
        value: Any = draw(st.dictionaries(name, st.lists(FILTER_VALUES, max_size=2), max_size=2))
    elif shape == 2:  # legacy {"name": {"value": true}}
        value = draw(st.dictionaries(name, st.dictionaries(FILTER_VALUES, st.booleans() | SCALARS, max_size=2)))
    elif shape == 3:  # values of the wrong type
        value = draw(st.dictionaries(name, ANY_JSON, min_size=1, max_size=2))
    elif shape == 4:
        value = draw(ANY_JSON)
    else:
        return draw(st.sampled_from(["notjson", "{", "[1]", "", "null", "{}", "%", "{'a': 1}"]) | st.text(max_size=10))
    return json.dumps(value)


LISTS = st.sampled_from(sorted(FILTER_NAMES))


@st.composite
def list_queries(draw: st.DrawFn) -> str:
    endpoint = draw(LISTS)
    query = [("filters", draw(filters(FILTER_NAMES[endpoint])))]
    if endpoint == "/containers/json" and draw(st.booleans()):
        query.append(("all", draw(st.sampled_from(["1", "0", "true", "x", ""]))))
    return f"{API}{endpoint}?{urllib.parse.urlencode(query)}"


@examples(550, slow_setup=True)
@given(path=list_queries())
@example(path=f"{API}/containers/json?filters=%5B1%5D")  # once an AttributeError
@example(path=f"{API}/containers/json?" + urllib.parse.urlencode({"filters": '{"status":["bogus"]}'}))
@example(path=f"{API}/containers/json?" + urllib.parse.urlencode({"filters": '{"bogus":["x"]}'}))
@example(path=f"{API}/containers/json?filters=notjson")
@example(path=f"{API}/images/json?filters=%5B1%5D")
@example(path=f"{API}/volumes?" + urllib.parse.urlencode({"filters": '{"bogus":["x"]}'}))
@example(path=f"{API}/networks?" + urllib.parse.urlencode({"filters": '{"type":["bogus"]}'}))
def test_list_filters(pair: Pair, settled: None, path: str) -> None:
    request = Request("GET", path)
    engine, manager = pair.both(request)
    pair.check(request, engine, manager, echoed=urllib.parse.unquote_plus(path))


LIMITS = st.one_of(
    st.sampled_from(["-1", "0", "1", "99999999999999999999999", "abc", "", "1.5", " 1", "+1", "0x10", "-0", "1e3"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=6),
)


@examples(200, slow_setup=True)
@given(limit=LIMITS, extra=st.sampled_from(["", "&all=1", "&size=1", "&before=nope", "&since=" + TARGETS[0]]))
@example(limit="99999999999999999999999", extra="")
@example(limit="abc", extra="")
def test_container_list_limit(pair: Pair, settled: None, limit: str, extra: str) -> None:
    request = Request("GET", f"{API}/containers/json?limit={urllib.parse.quote(limit, safe='')}{extra}")
    engine, manager = pair.both(request)
    pair.check(request, engine, manager, echoed=limit)


# -- container refs ----------------------------------------------------------------------------


def _clean_path(ref: str) -> bool:
    """Whether dockerd routes ``/containers/<ref>/json`` as is.

    Go's ServeMux answers a path with empty, ``.`` or ``..`` segments (after
    decoding) with a 301 to its cleaned form: that is routing, not a ref, and
    such refs are not compared.
    """
    return all(part not in ("", ".", "..") for part in ref.split("/"))


@st.composite
def refs(draw: st.DrawFn, ids: list[str]) -> str:
    shape = draw(st.integers(0, 5))
    if shape == 0:
        full = draw(st.sampled_from(ids))
        return full[: draw(st.integers(1, 64))]  # a prefix of a real id, down to one character
    if shape == 1:
        return draw(st.sampled_from([*TARGETS, f"/{TARGETS[0]}", f"{NODE}/{TARGETS[0]}", TARGETS[0][:6], "fuzz"]))
    if shape == 2:
        return draw(st.sampled_from(string.hexdigits)) * draw(st.integers(1, 70))
    if shape == 3:
        return "x" * draw(st.integers(100, 12_000))  # long: dockerd answers 404 whatever the length
    return draw(st.text(min_size=1, max_size=30))


def _named_by_the_manager(ref: str) -> bool:
    """``node/name``: the manager's own name for a container (contract section 5), unknown to an engine."""
    return ref.startswith(f"{NODE}/")


def _check_ref(pair: Pair, ref: str) -> None:
    quoted = urllib.parse.quote(ref, safe="")
    request = Request("GET", f"{API}/containers/{quoted}/json")
    engine, manager = pair.both(request)
    allowed = (lambda e, m: m.status == 200) if _named_by_the_manager(ref) else None
    pair.check(request, engine, manager, allowed=allowed, echoed=ref)
    if status_class(engine.status) == 4 and status_class(manager.status) == 4:  # nothing to delete: DELETE it too
        deleting = Request("DELETE", f"{API}/containers/{quoted}")
        engine, manager = pair.both(deleting)
        pair.check(deleting, engine, manager, echoed=ref)


@examples(300, slow_setup=True)
@given(data=st.data())
def test_container_refs(pair: Pair, settled: None, target_ids: list[str], data: st.DataObject) -> None:
    ref = data.draw(refs(target_ids))
    assume(_clean_path(ref))
    _check_ref(pair, ref)


def test_a_very_long_container_ref(pair: Pair) -> None:
    _check_ref(pair, "x" * 10_000)  # once a text/plain 400 where dockerd answers a JSON 404


@examples(60, slow_setup=True)
@given(size=st.integers(0, 40_000), header=st.sampled_from(["X-Registry-Auth", "X-Custom", "Cookie"]))
@example(size=10_000, header="X-Registry-Auth")  # a real registry token can be that large
def test_large_headers(pair: Pair, size: int, header: str) -> None:
    request = Request("GET", f"{API}/info", headers=((header, "a" * size),))
    engine, manager = pair.both(request)
    pair.check(request, engine, manager)


# -- malformed HTTP ------------------------------------------------------------------------------

_CREATE_HEAD = b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
MALFORMED = {
    "no-host": (b"GET /v1.41/info HTTP/1.1\r\n\r\n", False),
    "http-1.0-without-host": (b"GET /v1.41/_ping HTTP/1.0\r\n\r\n", False),
    "header-without-colon": (b"GET /v1.41/_ping HTTP/1.1\r\nHost: x\r\nBadHeaderLine\r\n\r\n", False),
    "content-length-not-a-number": (_CREATE_HEAD + b"Content-Length: abc\r\n\r\n", False),
    "content-length-negative": (_CREATE_HEAD + b"Content-Length: -1\r\n\r\n", False),
    "space-in-path": (b"GET /v1.41/containers/a b/json HTTP/1.1\r\nHost: x\r\n\r\n", False),
    "tls-on-the-plain-port": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", False),
    "unknown-http-version": (b"GET /v1.41/_ping HTTP/9.9\r\nHost: x\r\n\r\n", False),
    "body-cut-by-half-close": (_CREATE_HEAD + b"Content-Length: 100\r\n\r\n" + VALID_BODY[:20], True),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_http(pair: Pair, case: str) -> None:
    """The same status class as dockerd, no Python words, no traceback (Go's own 400s are text too, so is ours)."""
    data, half_close = MALFORMED[case]
    engine = send_raw(pair.engine, data, half_close=half_close)
    manager = send_raw(pair.manager, data, half_close=half_close)
    pair.remove_created(pair.engine, engine)
    pair.remove_created(pair.manager, manager, fallback=pair.engine)
    logged = pair.log.new_text()
    assert status_class(engine.status) == status_class(manager.status), (engine.describe(), manager.describe())
    assert not PYTHON_TEXT.search(manager.body.decode("utf-8", "replace")), manager.describe()
    assert "Traceback (most recent call last)" not in logged, logged[-2000:]


def test_the_fuzz_sent_enough_requests_and_the_log_has_no_traceback(pair: Pair, request: pytest.FixtureRequest) -> None:
    """The suite's promise: at least 2,000 requests per run (when all of it runs), the manager's log clean."""
    print(f"differential fuzz: {pair.sent} requests to both, {pair.created} containers created and removed")
    log = Path(pair.log.path).read_text(errors="replace")
    assert "Traceback (most recent call last)" not in log, log[log.index("Traceback") :][:3000]
    here = {getattr(item, "originalname", item.name) for item in request.session.items if item.path == request.path}
    if here == {name for name in globals() if name.startswith("test_")}:
        assert pair.sent >= 2000, f"only {pair.sent} requests were sent"
