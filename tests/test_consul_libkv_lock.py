"""kvstore's Consul lock and a Go Swarm manager's (libkv's, i.e. Consul's Go ``api.Lock``) on one key, both ways.

No Go binary runs here; the Go side is written by hand on Consul's HTTP API
as libkv's Consul lock does it: a session with ``Behavior: release``, half
the lock's TTL and a 1 ms ``LockDelay``; the key acquired with that session,
the lock's value as contents and ``api.LockFlagValue`` as flags (``api.Lock``
refuses a key carrying other flags); while waiting, blocking reads until the
key has no ``Session``. When the Go manager dies its session ends and the
key is released, its value left behind.
"""

from __future__ import annotations

import base64
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

import kvstore
from kvstore import CannotLockError
from kvstore.backends.consul_transport import LOCK_FLAG_VALUE
from kvstore.testing import SLACK, wait_until
from tests.support.consul import ConsulServer, consul_server

__all__ = ["consul_server"]  # the fixture, imported for pytest


class GoConsulContender:
    """libkv's Consul lock, by hand, on its own session."""

    def __init__(self, server: ConsulServer, key: str, value: bytes) -> None:
        self.base = server.base_url
        self.key = key
        self.value = value
        body = {"Name": "swarm go manager", "Behavior": "release", "TTL": "10s", "LockDelay": "1ms"}
        answer = requests.put(f"{self.base}/session/create", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        self.session: str = answer.json()["ID"]

    def try_acquire(self) -> bool:
        params: dict[str, Any] = {"acquire": self.session, "flags": LOCK_FLAG_VALUE}
        answer = requests.put(f"{self.base}/kv/{self.key}", params=params, data=self.value, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json() is True

    def die(self) -> None:
        """The process ends; its session with it (Consul invalidates it; destroying it is the same, sooner)."""
        requests.put(f"{self.base}/session/destroy/{self.session}", timeout=10)


def entry(server: ConsulServer, key: str) -> dict[str, Any] | None:
    answer = requests.get(f"{server.base_url}/kv/{key}", timeout=10)
    if answer.status_code == 404:
        return None
    found: dict[str, Any] = answer.json()[0]
    return found


@pytest.fixture
def key() -> str:
    return f"libkv-{uuid.uuid4().hex[:8]}/docker/swarm/leader"


def test_kvstore_waits_behind_a_go_holder_and_takes_over_when_its_session_ends(
    consul_server: ConsulServer, key: str
) -> None:
    go = GoConsulContender(consul_server, key, b"127.0.0.1:7001")
    assert go.try_acquire()
    with kvstore.new_store("consul", [consul_server.address], consul_server.config()) as store:
        lock = store.new_lock(key, value=b"127.0.0.1:7002", ttl=10)
        with pytest.raises(CannotLockError):
            lock.acquire(timeout=0.5)
        assert store.get(key).value == b"127.0.0.1:7001"
        got = threading.Event()

        def take() -> None:
            lock.acquire(timeout=SLACK * 3)
            got.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        go.die()
        assert got.wait(SLACK * 2), "the kvstore contender did not take over"
        assert store.get(key).value == b"127.0.0.1:7002"
        found = entry(consul_server, key)
        assert found is not None and found["Flags"] == LOCK_FLAG_VALUE and found["Session"]
        lock.release()
        thread.join(timeout=SLACK)


def test_a_go_waiter_takes_the_lock_once_the_kvstore_holders_session_ends(
    consul_server: ConsulServer, key: str
) -> None:
    with (
        kvstore.new_store("consul", [consul_server.address], consul_server.config()) as holder_store,
        kvstore.new_store("consul", [consul_server.address], consul_server.config()) as reader,
    ):
        lost = holder_store.new_lock(key, value=b"127.0.0.1:7101", ttl=10).acquire(timeout=SLACK)
        held = entry(consul_server, key)
        assert held is not None and held["Flags"] == LOCK_FLAG_VALUE, "a Go waiter refuses other flags"
        go = GoConsulContender(consul_server, key, b"127.0.0.1:7102")
        try:
            assert not go.try_acquire(), "the Go waiter must wait while kvstore holds the key"
            # The kvstore holder's session ends (an operator, or its expiry after the process died).
            requests.put(f"{consul_server.base_url}/session/destroy/{held['Session']}", timeout=10)
            assert lost.wait(SLACK), "the kvstore holder was not told it lost the lock"
            wait_until(go.try_acquire, SLACK, "the Go waiter to acquire the key")
            wait_until(lambda: reader.get(key).value == b"127.0.0.1:7102", SLACK, "the Go holder's value")
        finally:
            go.die()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")
def test_swarmctl_replica_follows_a_go_primary_and_takes_over(consul_server: ConsulServer, tmp_path: Path) -> None:
    from tests.support.manager import Manager
    from tests.support.roles import has_role

    prefix = f"libkv-{uuid.uuid4().hex[:8]}"
    url = f"consul://{consul_server.address}/{prefix}"
    go_api = Manager(tmp_path, url)  # the Go primary's API: a plain manager answers what the Go one would
    go = GoConsulContender(consul_server, f"{prefix}/docker/swarm/leader", go_api.addr.encode())
    replica: Manager | None = None
    try:
        assert go.try_acquire()
        replica = Manager(tmp_path, url, replication_ttl="3s")
        wait_until(lambda: has_role(replica, ("replica", go_api.addr)), 60, "the replica to name the Go primary")
        go.die()
        wait_until(lambda: has_role(replica, ("primary", "")), 60, "the replica to take over")
        found = entry(consul_server, f"{prefix}/docker/swarm/leader")
        assert found is not None and found["Session"] and found["Flags"] == LOCK_FLAG_VALUE
        assert base64.b64decode(found["Value"]) == replica.addr.encode()
    finally:
        go.die()
        if replica is not None:
            replica.process.kill()
        go_api.process.kill()
