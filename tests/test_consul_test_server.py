"""The Consul test server against Consul's HTTP API documentation.

The Consul backend is only ever tested against this server, so a divergence
from Consul here would hide a bug there. Each test checks one documented
behaviour (``/v1/kv``, ``/v1/txn``, ``/v1/session``, blocking queries,
``/v1/status``, ACL tokens, TLS) with raw HTTP requests, comparing with the
documentation's own examples where it gives one; the server runs as its own
process, as in every other test.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.consul_test_server.durations import format_duration, parse_duration
from tests.support.consul import ConsulServer, running_consul
from tests.support.process import wait_for

#: Generous bound for "it happens soon" on a loaded 2-core machine.
SLACK = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    with running_consul(tmp_path_factory.mktemp("consul-doc"), tombstone_ttl="500ms") as server:
        yield server


class Api:
    """Raw requests to one server, each under a fresh key prefix."""

    def __init__(self, server: ConsulServer, **request_options: Any) -> None:
        self.base = server.base_url
        self.http = requests.Session()
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        self.options = request_options
        self.root = f"doc-{uuid.uuid4().hex[:8]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url(path), params=params, timeout=30, **self.options)

    def put(self, path: str, data: Any = b"", **params: Any) -> requests.Response:
        return self.http.put(self.url(path), data=data, params=params, timeout=30)

    def delete(self, path: str, **params: Any) -> requests.Response:
        return self.http.delete(self.url(path), params=params, timeout=30)

    def kv(self, key: str) -> str:
        return f"kv/{self.root}/{key}"

    def entry(self, key: str) -> dict[str, Any]:
        response = self.get(self.kv(key))
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()[0]
        return item

    def session(self, **body: Any) -> str:
        response = self.http.put(self.url("session/create"), json=body, timeout=30)
        assert response.status_code == 200, response.text
        session_id: str = response.json()["ID"]
        return session_id


@pytest.fixture
def api(server: ConsulServer) -> Api:
    return Api(server)


def index_of(response: requests.Response) -> int:
    return int(response.headers["X-Consul-Index"])


# -- Go durations -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("24h", 86400.0),
    ],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10.0, "10s"), (86400.0, "24h0m0s"), (90.0, "1m30s"), (0.5, "500ms"), (1.5, "1.5s"), (0.0, "0s")],
)
def test_go_durations_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_duration("10 seconds")


# -- /v1/kv -----------------------------------------------------------------------------------
def test_read_key_metadata_response(api: Api) -> None:
    """The documented metadata response: fields, base64 value, flags, 404 for a missing key."""
    assert api.put(api.kv("zip"), b"test", flags=42).json() is True
    response = api.get(api.kv("zip"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    [item] = response.json()
    assert set(item) == {"CreateIndex", "ModifyIndex", "LockIndex", "Key", "Flags", "Value"}
    assert item["Key"] == f"{api.root}/zip"
    assert item["Value"] == "dGVzdA=="  # the documentation's "test"
    assert item["Flags"] == 42
    assert item["LockIndex"] == 0
    assert item["CreateIndex"] == item["ModifyIndex"] == index_of(response)
    missing = api.get(api.kv("nope"))
    assert missing.status_code == 404
    assert index_of(missing) >= 1


def test_raw_and_binary_values(api: Api) -> None:
    every_byte = bytes(range(256))
    api.put(api.kv("bin"), every_byte)
    raw = api.get(api.kv("bin"), raw="")
    assert raw.content == every_byte
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert base64.b64decode(api.entry("bin")["Value"]) == every_byte
    api.put(api.kv("empty"), b"")
    assert api.entry("empty")["Value"] is None


def test_modify_index_is_global_and_never_reused(api: Api) -> None:
    api.put(api.kv("a"), b"1")
    first = api.entry("a")["ModifyIndex"]
    api.put(api.kv("b"), b"1")
    other = api.entry("b")["ModifyIndex"]
    api.put(api.kv("a"), b"2")
    second = api.entry("a")
    assert first < other < second["ModifyIndex"]
    assert second["CreateIndex"] == first
    api.delete(api.kv("a"))
    api.put(api.kv("a"), b"3")
    third = api.entry("a")
    assert third["ModifyIndex"] > second["ModifyIndex"]
    assert third["CreateIndex"] == third["ModifyIndex"]


def test_recurse_and_keys_with_separator(api: Api) -> None:
    """The documented keys listing: ``["web/bar", "web/foo", "web/subdir/"]`` with a ``/`` separator."""
    for key in ("web/foo", "web/bar", "web/subdir/x", "web/subdir/y", "webber"):
        api.put(api.kv(key), key.encode())
    keys = api.get(api.kv("web/"), keys="", separator="/").json()
    assert keys == [f"{api.root}/web/bar", f"{api.root}/web/foo", f"{api.root}/web/subdir/"]
    assert api.get(api.kv("web/"), keys="").json() == [
        f"{api.root}/web/{k}" for k in ("bar", "foo", "subdir/x", "subdir/y")
    ]
    listed = api.get(api.kv("web"), recurse="").json()  # a plain prefix: "webber" too
    assert [e["Key"] for e in listed] == [
        f"{api.root}/{k}" for k in ("web/bar", "web/foo", "web/subdir/x", "web/subdir/y", "webber")
    ]
    assert api.get(api.kv("nothing/"), recurse="").status_code == 404
    assert api.get(api.kv("nothing/"), keys="").status_code == 404


def test_recursive_index_is_the_latest_modify_index_below_the_prefix(api: Api) -> None:
    api.put(api.kv("d/a"), b"1")
    api.put(api.kv("d/b"), b"1")
    api.put(api.kv("elsewhere"), b"1")
    response = api.get(api.kv("d/"), recurse="")
    assert index_of(response) == max(e["ModifyIndex"] for e in response.json())
    api.delete(api.kv("d/b"))  # a delete moves the prefix's index too (its tombstone)
    after = api.get(api.kv("d/"), recurse="")
    assert index_of(after) > index_of(response)


def test_cas(api: Api) -> None:
    """``cas=0`` creates only; a non-zero cas must match ``ModifyIndex``."""
    assert api.put(api.kv("c"), b"1", cas=0).json() is True
    assert api.put(api.kv("c"), b"2", cas=0).json() is False
    index = api.entry("c")["ModifyIndex"]
    assert api.put(api.kv("c"), b"2", cas=index + 1000).json() is False
    assert api.put(api.kv("c"), b"2", cas=index).json() is True
    assert base64.b64decode(api.entry("c")["Value"]) == b"2"
    assert api.put(api.kv("c"), b"3", cas=index).json() is False
    assert api.put(api.kv("never"), b"x", cas=5).json() is False


def test_delete_recurse_and_cas(api: Api) -> None:
    """DELETE: ``recurse`` takes the prefix; a ``cas`` of 0 never deletes; otherwise it must match."""
    for key in ("t/a", "t/b/c", "tx"):
        api.put(api.kv(key), b"v")
    assert api.delete(api.kv("t/"), recurse="").json() is True
    assert api.get(api.kv("t/"), recurse="").status_code == 404
    assert api.get(api.kv("tx")).status_code == 200
    index = api.entry("tx")["ModifyIndex"]
    assert api.delete(api.kv("tx"), cas=0).json() is False
    assert api.delete(api.kv("tx"), cas=index + 1).json() is False
    assert api.get(api.kv("tx")).status_code == 200
    assert api.delete(api.kv("tx"), cas=index).json() is True
    assert api.get(api.kv("tx")).status_code == 404
    assert api.delete(api.kv("tx")).json() is True  # absent: still true


def test_value_size_limit(api: Api) -> None:
    assert api.put(api.kv("big"), b"x" * (512 * 1024 + 1)).status_code == 413
    assert api.put(api.kv("big"), b"x" * (512 * 1024)).json() is True


# -- acquire / release --------------------------------------------------------------------------
def test_acquire_and_release(api: Api) -> None:
    """LockIndex counts acquisitions; the holder may update; others' PUTs proceed; release clears Session."""
    one, two = api.session(), api.session()
    assert api.put(api.kv("l"), b"a", acquire=one).json() is True
    held = api.entry("l")
    assert (held["Session"], held["LockIndex"]) == (one, 1)
    assert api.put(api.kv("l"), b"b", acquire=one).json() is True  # the holder again: contents only
    again = api.entry("l")
    assert (again["LockIndex"], base64.b64decode(again["Value"])) == (1, b"b")
    assert api.put(api.kv("l"), b"c", acquire=two).json() is False
    assert api.put(api.kv("l"), b"plain").json() is True  # "an update without acquire proceeds"
    assert api.entry("l")["Session"] == one
    assert api.put(api.kv("l"), b"d", release=two).json() is False  # not the holder
    assert api.put(api.kv("l"), b"e", release=one).json() is True
    released = api.entry("l")
    assert "Session" not in released
    assert released["LockIndex"] == 1
    assert base64.b64decode(released["Value"]) == b"e"
    assert api.put(api.kv("l"), b"f", acquire=two).json() is True
    assert api.entry("l")["LockIndex"] == 2
    gone = api.put(api.kv("x"), b"g", acquire=str(uuid.uuid4()))
    assert gone.status_code == 500 and "invalid session" in gone.text


# -- blocking queries ---------------------------------------------------------------------------
def test_blocking_query_waits_then_returns_the_same_index(api: Api) -> None:
    """Nothing changes: the query hangs for ``wait`` (plus at most wait/16) and returns the same index.

    A single key's index is the whole KV store's, so a write elsewhere (a
    tombstone reaped meanwhile) may end a query early: "no guarantee of a
    change". Asking again with the new index must then block.
    """
    api.put(api.kv("w"), b"0")
    index = index_of(api.get(api.kv("w")))
    for _ in range(3):
        started = time.monotonic()
        response = api.get(api.kv("w"), index=index, wait="1s")
        elapsed = time.monotonic() - started
        if index_of(response) == index:
            assert 1.0 <= elapsed < 1.0 + 1 / 16 + SLACK
            return
        assert index_of(response) > index
        index = index_of(response)
    pytest.fail("the blocking query never waited")


def test_blocking_query_returns_on_change(api: Api, server: ConsulServer) -> None:
    api.put(api.kv("w"), b"0")
    index = index_of(api.get(api.kv("w")))
    other = Api(server)
    other.root = api.root
    started = time.monotonic()
    writer = threading.Timer(0.3, lambda: other.put(other.kv("w"), b"1"))
    writer.start()
    response = api.get(api.kv("w"), index=index, wait="30s")
    writer.join()
    assert time.monotonic() - started < 30
    assert index_of(response) > index
    assert base64.b64decode(response.json()[0]["Value"]) == b"1"


def test_recursive_blocking_query_ignores_other_prefixes(api: Api) -> None:
    api.put(api.kv("p/a"), b"0")
    index = index_of(api.get(api.kv("p/"), recurse=""))
    writer = threading.Timer(0.2, lambda: api.put(api.kv("q/elsewhere"), b"x"))
    writer.start()
    started = time.monotonic()
    response = api.get(api.kv("p/"), recurse="", index=index, wait="1s")
    writer.join()
    assert time.monotonic() - started >= 1.0, "woken by a change outside the prefix"
    assert index_of(response) == index


def test_index_of_a_prefix_goes_backwards_when_tombstones_are_reaped(api: Api) -> None:
    """One of the documented cases where a client must reset its index: KV list after a reap."""
    api.put(api.kv("g/keep"), b"1")
    api.put(api.kv("g/drop"), b"1")
    keep = api.entry("g/keep")["ModifyIndex"]
    api.delete(api.kv("g/drop"))
    with_tombstone = index_of(api.get(api.kv("g/"), recurse=""))
    assert with_tombstone > keep
    wait_for(
        lambda: index_of(api.get(api.kv("g/"), recurse="")) == keep,
        SLACK,
        "the tombstone to be reaped (server started with --tombstone-ttl 500ms)",
    )


def test_wait_is_parsed_as_a_go_duration(api: Api) -> None:
    api.put(api.kv("w"), b"0")
    index = index_of(api.get(api.kv("w")))
    assert api.get(api.kv("w"), index=index, wait="ten").status_code == 400
    assert api.get(api.kv("w"), index="x").status_code == 400
    started = time.monotonic()
    api.get(api.kv("w"), index=index, wait="200ms")
    assert 0.2 <= time.monotonic() - started < 0.2 + SLACK


# -- /v1/txn -----------------------------------------------------------------------------------------
def kv_op(verb: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"KV": {"Verb": verb, "Key": key, **fields}}


def test_txn_results_and_values(api: Api) -> None:
    key = f"{api.root}/t"
    response = api.http.put(
        api.url("txn"),
        json=[kv_op("set", key, Value=base64.b64encode(b"hello").decode(), Flags=7), kv_op("get", key)],
        timeout=30,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["Errors"] is None
    written, read = (r["KV"] for r in body["Results"])
    assert written["Value"] is None  # "null for any Verb other than get or get-tree"
    assert read["Value"] == base64.b64encode(b"hello").decode()
    assert written["ModifyIndex"] == read["ModifyIndex"] == api.entry("t")["ModifyIndex"]
    assert written["Flags"] == 7
    deleted = api.http.put(api.url("txn"), json=[kv_op("delete", key)], timeout=30).json()
    assert deleted["Results"] is None  # no result entries for deletes


def test_txn_rolls_back_on_any_failure(api: Api) -> None:
    key = f"{api.root}/r"
    api.put(api.kv("r"), b"before")
    index = api.entry("r")["ModifyIndex"]
    response = api.http.put(
        api.url("txn"),
        json=[
            kv_op("set", f"{api.root}/side", Value=base64.b64encode(b"x").decode()),
            kv_op("check-index", key, Index=index + 1),
            kv_op("cas", key, Value=base64.b64encode(b"y").decode(), Index=index),
        ],
        timeout=30,
    )
    assert response.status_code == 409
    body = response.json()
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1]
    assert api.get(api.kv("side")).status_code == 404  # rolled back
    ok = api.http.put(
        api.url("txn"),
        json=[kv_op("check-index", key, Index=index), kv_op("cas", key, Value="eQ==", Index=index)],
        timeout=30,
    )
    assert ok.status_code == 200
    assert base64.b64decode(api.entry("r")["Value"]) == b"y"


def test_txn_verbs(api: Api) -> None:
    key = f"{api.root}/v"
    session = api.session()

    def txn(*ops: dict[str, Any]) -> requests.Response:
        return api.http.put(api.url("txn"), json=list(ops), timeout=30)

    assert txn(kv_op("check-not-exists", key)).status_code == 200
    assert txn(kv_op("get", key)).status_code == 409
    assert txn(kv_op("get-or-empty", key)).json()["Results"] is None
    assert txn(kv_op("lock", key, Value="YQ==", Session=session)).status_code == 200
    assert api.entry("v")["Session"] == session
    assert txn(kv_op("check-session", key, Session=session)).status_code == 200
    assert txn(kv_op("check-not-exists", key)).status_code == 409
    assert txn(kv_op("unlock", key, Value="Yg==", Session=str(uuid.uuid4()))).status_code == 409
    assert txn(kv_op("unlock", key, Value="Yg==", Session=session)).status_code == 200
    assert "Session" not in api.entry("v")
    index = api.entry("v")["ModifyIndex"]
    assert txn(kv_op("delete-cas", key, Index=index + 1)).status_code == 409
    assert txn(kv_op("delete-cas", key, Index=index)).status_code == 200
    txn(kv_op("set", f"{key}/a", Value=""), kv_op("set", f"{key}/b", Value=""))
    tree = txn(kv_op("get-tree", f"{key}/")).json()["Results"]
    assert [r["KV"]["Key"] for r in tree] == [f"{key}/a", f"{key}/b"]
    assert txn(kv_op("delete-tree", f"{key}/")).status_code == 200
    assert api.get(api.kv("v/"), recurse="").status_code == 404


def test_txn_limits(api: Api) -> None:
    too_many = [kv_op("get-or-empty", f"{api.root}/{n}") for n in range(129)]
    assert api.http.put(api.url("txn"), json=too_many, timeout=30).status_code == 413
    assert api.http.put(api.url("txn"), json=[kv_op("frob", "k")], timeout=30).status_code == 400


# -- /v1/session ----------------------------------------------------------------------------------------
def test_session_documented_shapes(api: Api, server: ConsulServer) -> None:
    """Create returns ``{"ID"}``; info/renew return the documented object; LockDelay in nanoseconds."""
    response = api.http.put(
        api.url("session/create"),
        json={"Name": "my-service-lock", "Behavior": "release", "TTL": "30s"},
        timeout=30,
    )
    assert set(response.json()) == {"ID"}
    session_id = response.json()["ID"]
    info = api.get(f"session/info/{session_id}")
    assert index_of(info) >= 1
    [session] = info.json()
    assert set(session) == {
        "ID", "Name", "Node", "LockDelay", "Behavior", "TTL",
        "NodeChecks", "ServiceChecks", "CreateIndex", "ModifyIndex",
    }  # fmt: skip
    assert session["LockDelay"] == 15_000_000_000  # the default 15s
    assert (session["Name"], session["Behavior"], session["TTL"]) == ("my-service-lock", "release", "30s")
    assert session["NodeChecks"] == ["serfHealth"]
    assert session["ServiceChecks"] is None
    renewed = api.put(f"session/renew/{session_id}").json()
    assert renewed[0]["ID"] == session_id
    assert [s["ID"] for s in api.get("session/list").json()].count(session_id) == 1
    assert api.put(f"session/destroy/{session_id}").json() is True
    assert api.get(f"session/info/{session_id}").json() == []  # "an empty JSON list"
    assert api.put(f"session/renew/{session_id}").status_code == 404
    assert api.put(f"session/destroy/{session_id}").json() is True  # idempotent
    assert api.put("session/destroy/not-a-uuid").status_code == 400


def test_renew_of_an_unknown_session_is_404(api: Api) -> None:
    """Consul looks the id up as given: unknown, well-formed or not, is 404 naming it (never 400)."""
    unknown = str(uuid.uuid4())
    for session_id in (unknown, "not-a-uuid"):
        response = api.put(f"session/renew/{session_id}")
        assert (response.status_code, response.text) == (404, f"Session id '{session_id}' not found")


def test_a_datacenter_it_cannot_reach_is_refused(api: Api) -> None:
    """``?dc=`` naming another datacenter: Consul answers 500 "No path to datacenter" and does nothing."""
    before = {s["ID"] for s in api.get("session/list").json()}
    refused = api.http.put(api.url("session/create"), params={"dc": "dc2"}, json={"Name": "elsewhere"}, timeout=30)
    assert (refused.status_code, refused.text) == (500, "No path to datacenter")
    assert {s["ID"] for s in api.get("session/list").json()} == before, "a session was created all the same"
    assert (api.put(api.kv("far"), b"v", dc="dc2").status_code, api.get(api.kv("far")).status_code) == (500, 404)
    assert api.get(api.kv("far"), dc="dc2").text == "No path to datacenter"
    # Its own datacenter, named or not, is served.
    assert api.http.put(api.url("session/create"), params={"dc": "dc1"}, timeout=30).status_code == 200
    assert api.put(api.kv("near"), b"v", dc="dc1").json() is True
    assert api.get(api.kv("near"), dc="").status_code == 200


def test_session_fields_are_case_insensitive(api: Api) -> None:
    """python-consul2 writes ``behavior``/``ttl``/``lockdelay`` in lower case; Consul decodes any case."""
    session_id = api.session(behavior="delete", ttl="20s", lockdelay="2s")
    [session] = api.get(f"session/info/{session_id}").json()
    assert (session["Behavior"], session["TTL"], session["LockDelay"]) == ("delete", "20s", 2_000_000_000)


def test_session_ttl_bounds(tmp_path: Path) -> None:
    """Out of [session_ttl_min, 24h] Consul answers 500 naming the range as Go durations."""
    with running_consul(tmp_path, session_ttl_min="10s") as server:
        api = Api(server)
        low = api.http.put(api.url("session/create"), json={"TTL": "5s"}, timeout=30)
        assert low.status_code == 500
        assert low.text == "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
        assert api.http.put(api.url("session/create"), json={"TTL": "25h"}, timeout=30).status_code == 500
        assert api.http.put(api.url("session/create"), json={"TTL": "10s"}, timeout=30).status_code == 200
        bad = api.http.put(api.url("session/create"), json={"Behavior": "explode"}, timeout=30)
        assert bad.status_code == 500 and "Invalid Behavior" in bad.text


def test_ttl_expiry_deletes_or_releases(api: Api) -> None:
    """TTL is a lower bound (still there before it), and expiry applies the session's Behavior."""
    deleting = api.session(TTL="500ms", Behavior="delete", LockDelay="0s")
    releasing = api.session(TTL="500ms", Behavior="release", LockDelay="0s")
    api.put(api.kv("eph"), b"v", acquire=deleting)
    api.put(api.kv("kept"), b"v", acquire=releasing)
    before = api.entry("kept")["ModifyIndex"]
    time.sleep(0.3)  # not yet: the TTL is a lower bound
    assert api.get(api.kv("eph")).status_code == 200
    wait_for(lambda: api.get(api.kv("eph")).status_code == 404, 1.0 + SLACK, "the TTL'd key to be deleted")
    wait_for(lambda: "Session" not in api.entry("kept"), 1.0 + SLACK, "the TTL'd lock to be released")
    assert api.entry("kept")["ModifyIndex"] > before  # "the ModifyIndex of the key is incremented"
    assert api.get(f"session/info/{deleting}").json() == []


def test_renewal_keeps_a_session_alive(api: Api) -> None:
    session = api.session(TTL="300ms", Behavior="delete")
    api.put(api.kv("r"), b"v", acquire=session)
    until = time.monotonic() + 1.5  # well past twice the TTL
    while time.monotonic() < until:
        assert api.put(f"session/renew/{session}").status_code == 200
        time.sleep(0.1)
    assert api.get(api.kv("r")).status_code == 200


def test_lock_delay_after_invalidation(api: Api) -> None:
    holder = api.session(LockDelay="1s")
    other = api.session(LockDelay="0s")
    api.put(api.kv("ld"), b"v", acquire=holder)
    api.put(f"session/destroy/{holder}")
    assert api.put(api.kv("ld"), b"w", acquire=other).json() is False  # within the lock-delay
    wait_for(lambda: api.put(api.kv("ld"), b"w", acquire=other).json() is True, 1 + SLACK, "the lock-delay to end")


# -- /v1/status ----------------------------------------------------------------------------------------------
def test_status_leader_and_peers(api: Api) -> None:
    leader = api.get("status/leader").json()
    assert isinstance(leader, str) and leader.endswith(":8300")
    assert api.get("status/peers").json() == [leader]


# -- ACL, TLS, persistence ------------------------------------------------------------------------
def test_acl_token(tmp_path: Path) -> None:
    with running_consul(tmp_path, acl_token="s3cret") as server:
        api = Api(server)
        assert api.get("status/leader").status_code == 200  # no ACL required
        assert api.put(api.kv("k"), b"v").status_code == 403
        assert api.http.put(api.url(api.kv("k")), data=b"v", headers={"X-Consul-Token": "wrong"}).status_code == 403
        assert api.http.put(api.url(api.kv("k")), data=b"v", headers={"X-Consul-Token": "s3cret"}).json() is True
        bearer = api.http.get(api.url(api.kv("k")), headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert bearer.status_code == 200
        assert api.get(api.kv("k"), token="s3cret").status_code == 200
        assert api.http.put(api.url("session/create"), timeout=30).status_code == 403


def test_tls_demands_a_client_certificate(tmp_path: Path) -> None:
    with running_consul(tmp_path, tls=True) as server:
        assert server.tls is not None
        client = server.tls.client
        good = Api(server, verify=str(client.ca), cert=(str(client.cert), str(client.key)))
        assert good.get("status/leader").status_code == 200
        anonymous = Api(server, verify=str(client.ca))
        with pytest.raises(requests.exceptions.RequestException):
            anonymous.get("status/leader")
        with pytest.raises(requests.exceptions.SSLError):
            Api(server).get("status/leader")  # our CA is not a system CA


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with running_consul(tmp_path, persist=True) as server:
        api = Api(server)
        api.put(api.kv("k"), b"v", flags=3)
        before = api.entry("k")
        session = api.session(TTL="30s")
        server.kill()
        server.start()
        after = api.entry("k")
        assert after == before
        assert api.get(f"session/info/{session}").json()[0]["ID"] == session
        api.put(api.kv("k2"), b"v")
        assert api.entry("k2")["ModifyIndex"] > before["ModifyIndex"]  # indexes continue, never reused
