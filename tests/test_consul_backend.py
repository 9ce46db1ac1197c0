"""The Consul backend beyond the conformance suite: a server that is down, restarted or
failed over, TLS and credentials, and what Consul does differently from other stores.

Everything runs against the Consul test server as a real process (no Consul
binary exists here); ``tests/test_consul_test_server.py`` holds that server
to Consul's documentation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import kvstore
from kvstore import ClientTLS, Config, InvalidArgumentError, KVStoreError, NotReachableError
from kvstore.backends.consul_transport import LOCK_FLAG_VALUE
from kvstore.backends.consul_watch import IndexCursor
from kvstore.testing import SLACK, let_time_pass, next_matching, wait_until
from tests.support.certs import CertAuthority
from tests.support.consul import ConsulServer, consul_server, consul_tls_server, running_consul
from tests.support.process import free_port

__all__ = ["consul_server", "consul_tls_server"]  # the fixtures, imported for pytest


def open_store(server: ConsulServer, **changes: Any) -> kvstore.Store:
    return kvstore.new_store("consul", [server.address], server.config(**changes))


def raw_entry(server: ConsulServer, key: str) -> dict[str, Any]:
    """The key as Consul's API shows it (Flags, Session...), read without kvstore."""
    response = requests.get(f"{server.base_url}/kv/{key}", timeout=10)
    assert response.status_code == 200, response.text
    entry: dict[str, Any] = response.json()[0]
    return entry


@pytest.fixture
def store(consul_server: ConsulServer) -> Iterator[kvstore.Store]:
    with open_store(consul_server) as store:
        yield store


def elapsed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


# -- a server that is not there -----------------------------------------------------------------
def test_server_down_at_start_is_not_reachable_within_the_timeout() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(NotReachableError, match=address):
        kvstore.new_store("consul", [address], Config(connection_timeout=1.0))
    assert time.monotonic() - started < 1.0 + 1.0


def test_fails_over_to_the_next_address(consul_server: ConsulServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with kvstore.from_url(f"consul://{dead},{consul_server.address}/failover") as store:
        store.put("k", b"v")
        assert store.get("k").value == b"v"
        assert store.list("")[0].key == "k"


def test_every_call_on_a_dead_server_raises_not_reachable(tmp_path: Path) -> None:
    """No client exception (requests, urllib3, python-consul2) leaks out: only kvstore errors."""
    with running_consul(tmp_path) as server:
        store = open_store(server, connection_timeout=0.5)
        store.put("k", b"v")
        pair = store.get("k")
        server.kill()
        calls: list[Callable[[], object]] = [
            lambda: store.get("k"),
            lambda: store.put("k", b"w"),
            lambda: store.put("t", b"w", ttl=5),
            lambda: store.delete("k"),
            lambda: store.list(""),
            lambda: store.delete_tree("d"),
            lambda: store.watch("k"),
            lambda: store.watch_tree(""),
            lambda: store.atomic_put("k", b"x", pair),
            lambda: store.atomic_delete("k", pair),
            lambda: store.new_lock("lock").acquire(timeout=1),
        ]
        for call in calls:
            with pytest.raises(NotReachableError):
                call()
        store.close()


# -- restarts under a watch -----------------------------------------------------------------------
def test_watch_resumes_after_a_server_restart_and_loses_no_change(tmp_path: Path) -> None:
    with running_consul(tmp_path, persist=True) as server:
        config = server.config(connection_timeout=20.0)
        with (
            kvstore.new_store("consul", [server.address], config) as watcher,
            kvstore.new_store("consul", [server.address], config) as writer,
        ):
            writer.put("r/k", b"0")
            with watcher.watch("r/k") as watch, watcher.watch_tree("r") as tree:
                assert watch.next(timeout=SLACK).value == b"0"
                assert [p.value for p in tree.next(timeout=SLACK)] == [b"0"]
                writer.put("r/k", b"1")
                assert watch.next(timeout=SLACK).value == b"1"
                next_matching(tree, lambda ps: [p.value for p in ps] == [b"1"])

                server.kill()  # mid-watch: both watches are blocked in a query
                server.start()
                writer.put("r/k", b"2")  # likely before the watcher has reconnected
                assert watch.next(timeout=SLACK).value == b"2"
                next_matching(tree, lambda ps: [p.value for p in ps] == [b"2"])
                for n in range(3, 6):  # and every change after
                    writer.put("r/k", str(n).encode())
                    assert watch.next(timeout=SLACK).value == str(n).encode()
                writer.put("r/new", b"x")
                items = next_matching(tree, lambda ps: len(ps) == 2)
                assert [(p.key, p.value) for p in items] == [("r/k", b"5"), ("r/new", b"x")]


def test_watch_follows_a_server_that_lost_its_data(tmp_path: Path) -> None:
    """Restarted empty, the server's index starts again near 0: the watch must reset its own.

    With a 30 s ``wait``, a client that kept blocking on its old (now far
    too high) index would sit out the whole wait and miss what follows.
    """
    with running_consul(tmp_path) as server:
        config = server.config(connection_timeout=20.0, options={"watch_wait": "30"})
        with kvstore.new_store("consul", [server.address], config) as store:
            for n in range(30):  # push the index well above where a fresh server starts
                store.put(f"noise/{n}", b"x")
            store.put("z/a", b"1")
            with store.watch_tree("z") as tree, store.watch("z/a") as watch:
                assert [p.key for p in tree.next(timeout=SLACK)] == ["z/a"]
                assert watch.next(timeout=SLACK).value == b"1"
                server.kill()
                server.start()
                assert next_matching(tree, lambda ps: ps == []) == []
                with pytest.raises(StopIteration):  # the key is gone: its watch ends
                    next_matching(watch, lambda _: False)
                store.put("z/b", b"2")
                items = next_matching(tree, bool)
                assert [(p.key, p.value) for p in items] == [("z/b", b"2")]


def test_watch_fails_when_the_server_stays_away(tmp_path: Path) -> None:
    with running_consul(tmp_path) as server, open_store(server, connection_timeout=1.0) as store:
        store.put("k", b"v")
        with store.watch("k") as watch:
            assert watch.next(timeout=SLACK).value == b"v"
            server.kill()
            with pytest.raises(NotReachableError):
                watch.next(timeout=1.0 + SLACK)


def test_index_cursor_follows_the_documented_rules() -> None:
    cursor = IndexCursor()
    assert cursor.index == 0  # first read: no blocking
    cursor.update(100)
    assert cursor.index == 100
    cursor.update(100)  # timed out, nothing changed
    assert cursor.index == 100
    cursor.update(40)  # went backwards: restart with a non-blocking read
    assert cursor.index == 0
    cursor.update(0)  # an index of 0 would never block: at least 1
    assert cursor.index == 1
    cursor.update(None)
    assert cursor.index == 1


# -- TLS and credentials --------------------------------------------------------------------------
def test_tls_client_without_a_certificate_gets_a_clear_error(consul_tls_server: ConsulServer) -> None:
    assert consul_tls_server.tls is not None
    ca = str(consul_tls_server.tls.client.ca)
    config = Config(connection_timeout=3.0, tls=ClientTLS(ca_cert_file=ca))
    started = time.monotonic()
    with pytest.raises(NotReachableError, match=r"(?i)tls|certificate|ssl"):
        kvstore.new_store("consul", [consul_tls_server.address], config)
    assert time.monotonic() - started < 3.0 + SLACK


def test_tls_server_not_signed_by_the_given_ca(consul_tls_server: ConsulServer, tmp_path: Path) -> None:
    assert consul_tls_server.tls is not None
    other = CertAuthority(tmp_path, name="other-ca")
    client = consul_tls_server.tls.client
    config = Config(
        connection_timeout=3.0,
        tls=ClientTLS(ca_cert_file=str(other.ca_path), cert_file=str(client.cert), key_file=str(client.key)),
    )
    with pytest.raises(NotReachableError, match=r"(?i)certificate verify failed"):
        kvstore.new_store("consul", [consul_tls_server.address], config)


def test_tls_files_are_checked_up_front(consul_tls_server: ConsulServer, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(InvalidArgumentError, match="not found"):
        kvstore.new_store("consul", [consul_tls_server.address], Config(tls=ClientTLS(ca_cert_file=missing)))
    assert consul_tls_server.tls is not None
    cert = str(consul_tls_server.tls.client.cert)
    with pytest.raises(InvalidArgumentError, match="both"):
        kvstore.new_store("consul", [consul_tls_server.address], Config(tls=ClientTLS(cert_file=cert)))


def test_plain_http_against_a_tls_server(consul_tls_server: ConsulServer) -> None:
    with pytest.raises(NotReachableError, match="https"):
        kvstore.new_store("consul", [consul_tls_server.address], Config(connection_timeout=1.0))


def test_acl_token(tmp_path: Path) -> None:
    with running_consul(tmp_path, acl_token="t0ken") as server:
        with open_store(server, options={}) as anonymous:  # /v1/status needs no token
            with pytest.raises(KVStoreError, match="permission denied") as caught:
                anonymous.put("k", b"v")
            assert not isinstance(caught.value, NotReachableError)
        with open_store(server) as store:  # server.config() carries options["token"]
            store.put("k", b"v", ttl=30)
            assert store.get("k").value == b"v"
            with store.watch("k") as watch:
                assert watch.next(timeout=SLACK).value == b"v"
            lost = store.new_lock("lock", value=b"me", ttl=2).acquire(timeout=SLACK)
            assert store.get("lock").value == b"me" and not lost.is_set()
            first = store.atomic_put("a", b"1", None)
            store.atomic_delete("a", first)


def test_basic_auth_from_username_and_password(tmp_path: Path) -> None:
    with running_consul(tmp_path, basic_auth="swarm:pa55") as server:
        with open_store(server) as store:
            store.put("k", b"v")
            assert store.get("k").value == b"v"
        with pytest.raises(KVStoreError, match="unauthorized"):
            open_store(server, password="wrong")
        with pytest.raises(InvalidArgumentError, match="token"):
            open_store(server, username=None)


def test_the_environment_does_not_redirect_the_store(
    consul_server: ConsulServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-consul2 lets CONSUL_HTTP_ADDR/TOKEN override its arguments; the store's own win."""
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "not-ours")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    with open_store(consul_server, connection_timeout=2.0) as store:
        store.put("env/k", b"v")
        assert store.get("env/k").value == b"v"


# -- Consul specifics -----------------------------------------------------------------------------
def test_writes_carry_the_flags_docker_libkv_writes(store: kvstore.Store, consul_server: ConsulServer) -> None:
    """Swarm's own managers (Consul's Go lock) refuse a lock key with other flags."""
    store.put("flags/plain", b"v")
    store.put("flags/ttl", b"v", ttl=30)
    store.atomic_put("flags/cas", b"v", None)
    lock = store.new_lock("flags/lock", value=b"me")
    lock.acquire(timeout=SLACK)
    try:
        for key in ("plain", "ttl", "cas", "lock"):
            assert raw_entry(consul_server, f"flags/{key}")["Flags"] == LOCK_FLAG_VALUE, key
    finally:
        lock.release()


def test_last_index_is_the_modify_index(store: kvstore.Store, consul_server: ConsulServer) -> None:
    store.put("idx/k", b"v")
    assert store.get("idx/k").last_index == raw_entry(consul_server, "idx/k")["ModifyIndex"]
    created = store.atomic_put("idx/c", b"v", None)
    assert created.last_index == raw_entry(consul_server, "idx/c")["ModifyIndex"]


def test_ttl_keys_with_a_stock_session_ttl_floor(tmp_path: Path) -> None:
    """A stock Consul refuses session TTLs under 10 s: the store learns that and still honours short TTLs."""
    with running_consul(tmp_path, session_ttl_min="10s") as server, open_store(server) as store:
        store.put("short", b"v", ttl=1)
        session = raw_entry(server, "short")["Session"]
        info = requests.get(f"{server.base_url}/session/info/{session}", timeout=10).json()
        assert info[0]["TTL"] == "10s"
        assert store.exists("short")
        wait_until(lambda: not store.exists("short"), 1 + SLACK, "the 1 s key to vanish")
        lost = store.new_lock("lock", ttl=2).acquire(timeout=SLACK)
        assert not lost.is_set()


def test_a_ttl_key_taken_over_by_another_writer_is_theirs(consul_server: ConsulServer) -> None:
    """Writer B's put replaces writer A's session on the key: A's session ending no longer deletes it."""
    with open_store(consul_server) as b:
        with open_store(consul_server) as a:
            a.put("takeover/k", b"a", ttl=1)
            b.put("takeover/k", b"b", ttl=30)
        let_time_pass(2.5)  # A is gone and its session (1 s TTL, reaped at up to 2x) with it
        assert b.get("takeover/k").value == b"b"


def test_lock_lost_when_an_operator_destroys_its_session(store: kvstore.Store, consul_server: ConsulServer) -> None:
    lost = store.new_lock("op/lock", value=b"me", ttl=10).acquire(timeout=SLACK)
    session = raw_entry(consul_server, "op/lock")["Session"]
    requests.put(f"{consul_server.base_url}/session/destroy/{session}", timeout=10)
    assert lost.wait(SLACK), "the lost-event was not set"


def test_lock_lost_when_someone_else_releases_it(store: kvstore.Store, consul_server: ConsulServer) -> None:
    """Consul lets anyone release a lock with the holder's session id (an operator stepping in)."""
    lock = store.new_lock("rel/lock", value=b"me", ttl=10)
    lost = lock.acquire(timeout=SLACK)
    session = raw_entry(consul_server, "rel/lock")["Session"]
    requests.put(f"{consul_server.base_url}/kv/rel/lock", params={"release": session}, data=b"", timeout=10)
    assert lost.wait(SLACK), "the lost-event was not set"
    lock.release()  # no longer held: nothing happens
    assert store.new_lock("rel/lock").acquire(timeout=SLACK)


def test_lock_taken_from_a_key_released_the_go_client_way(store: kvstore.Store, consul_server: ConsulServer) -> None:
    """Consul's Go lock (Swarm's) leaves the key behind with no Session when released: that is free."""
    requests.put(
        f"{consul_server.base_url}/kv/go/lock",
        params={"flags": LOCK_FLAG_VALUE},
        data=b"old-leader",
        timeout=10,
    )
    lock = store.new_lock("go/lock", value=b"new-leader")
    lock.acquire(timeout=SLACK)
    assert store.get("go/lock").value == b"new-leader"
    lock.release()


def test_close_ends_watches_and_gives_up_locks(consul_server: ConsulServer) -> None:
    with open_store(consul_server) as other:
        store = open_store(consul_server)
        store.put("close/k", b"v")
        watch = store.watch("close/k")
        assert watch.next(timeout=SLACK).value == b"v"
        store.new_lock("close/lock").acquire(timeout=SLACK)
        ended = threading.Event()

        def read() -> None:
            for _ in watch:
                pass
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        store.close()
        assert ended.wait(1.0), "the watch did not end with the store"
        assert elapsed(lambda: other.new_lock("close/lock").acquire(timeout=SLACK)) < SLACK
