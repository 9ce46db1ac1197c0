"""kvstore's ZooKeeper lock in the layout of Docker's libkv, proved against a second client of that recipe.

No Go Swarm binary can run here, so the Go side is written by hand with
kazoo, as go-zookeeper's lock recipe (``zk/lock.go``) and libkv's
ZooKeeper lock (``store/zookeeper/zookeeper.go``) write it on the wire:

* ``Lock()`` creates ``<key>/_c_<32 hex>-lock-<seq>`` (``CreateProtectedEphemeralSequential``,
  empty data), creating missing parents with empty data first;
* the lowest sequence number (the digits after the last ``-``) holds; a
  waiter watches the child just before its own (``GetW``) and looks again
  when it fires;
* once ``Lock()`` returns, libkv ``Set``\\ s the key's data to the lock's
  value (the primary's address); ``Unlock()`` deletes the child only.

The tests read the raw znodes with kazoo and check that kvstore's lock
writes that layout, honours a hand-written Go holder, and hands over to a
hand-written Go waiter, both ways round; then that a swarmctl replica
follows a Go-layout primary and takes over when its session closes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient  # type: ignore[import-untyped]

import kvstore
from kvstore import CannotLockError
from kvstore.backends.zookeeper import ZooKeeperStore
from kvstore.testing import SLACK, wait_until
from tests.support.zookeeper import ZooKeeperServer, four_letter_word, standalone, zookeeper_installed

pytestmark = pytest.mark.skipif(not zookeeper_installed(), reason="ZooKeeper (and Java) not installed")

#: A contender's name as go-zookeeper makes it: its protected prefix, 16 random bytes in hex, "-lock-", the sequence.
CONTENDER = re.compile(r"^_c_[0-9a-f]{32}-lock-[0-9]{10}$")
LEADER = "docker/swarm/leader"


def sequence(name: str) -> int:
    """The sequence number as go-zookeeper's ``parseSeq`` reads it: the last ``-``-separated part."""
    return int(name.rsplit("-", 1)[-1])


class GoContender:
    """A Go Swarm manager's side of the leader lock, on its own ZooKeeper session."""

    def __init__(self, address: str, key_path: str, value: bytes) -> None:
        self.key_path = key_path
        self.value = value
        self.client = KazooClient(hosts=address)
        self.client.start(timeout=10)
        self.name = ""
        self._dead = False

    def enqueue(self) -> str:
        """``zk.Lock.Lock``'s first step: the parents (empty data) if missing, then the protected child."""
        prefix = f"{self.key_path}/_c_{uuid.uuid4().hex}-lock-"
        path = ""
        for part in self.key_path.strip("/").split("/"):
            path += "/" + part
            if self.client.exists(path) is None:
                self.client.create(path, b"")
        self.name = self.client.create(prefix, b"", ephemeral=True, sequence=True).rsplit("/", 1)[1]
        return self.name

    def ahead(self) -> str | None:
        """The contender just before ours (the one go-zookeeper watches), or None when ours is lowest."""
        before = [n for n in self.client.get_children(self.key_path) if sequence(n) < sequence(self.name)]
        return max(before, key=sequence) if before else None

    def take(self) -> None:
        """What libkv does once ``Lock()`` returns: the key's data becomes the holder's value."""
        assert self.ahead() is None
        self.client.set(self.key_path, self.value)

    def die(self) -> None:
        """The Go manager's process ends: its session closes, its child goes, the key's data stays."""
        if self._dead:
            return
        self._dead = True
        self.client.stop()
        self.client.close()


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with standalone(tmp_path_factory.mktemp("zookeeper")) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"libkv-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def raw(zk_server: ZooKeeperServer) -> Iterator[Any]:
    client = KazooClient(hosts=zk_server.address)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@contextlib.contextmanager
def open_store(zk_server: ZooKeeperServer, prefix: str) -> Iterator[ZooKeeperStore]:
    with kvstore.from_url(f"zk://{zk_server.address}/{prefix}") as store:
        assert isinstance(store, ZooKeeperStore)
        yield store


def acquire_in_thread(lock: kvstore.Lock, timeout: float) -> tuple[threading.Thread, threading.Event]:
    """Acquire ``lock`` in a thread; the event is set once it is held."""
    got = threading.Event()

    def run() -> None:
        lock.acquire(timeout=timeout)
        got.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, got


def contenders(raw: Any, key_path: str) -> list[str]:
    return sorted(raw.get_children(key_path), key=sequence)


def test_the_znodes_of_a_kvstore_holder_and_waiter(zk_server: ZooKeeperServer, prefix: str, raw: Any) -> None:
    key_path = f"/{prefix}/{LEADER}"
    with open_store(zk_server, prefix) as first, open_store(zk_server, prefix) as second:
        holder = first.new_lock(LEADER, value=b"127.0.0.1:4001")
        holder.acquire(timeout=SLACK)
        data, stat = raw.get(key_path)
        assert (data, stat.ephemeralOwner) == (b"127.0.0.1:4001", 0), "the key: persistent, the value as its data"
        (held,) = contenders(raw, key_path)
        assert CONTENDER.match(held), held
        child_data, child_stat = raw.get(f"{key_path}/{held}")
        assert child_stat.ephemeralOwner == first.sessions[0].current_session_id()
        assert child_data is None  # no data: never a key to kvstore

        waiter = second.new_lock(LEADER, value=b"127.0.0.1:4002")
        thread, got = acquire_in_thread(waiter, SLACK * 2)
        wait_until(lambda: len(contenders(raw, key_path)) == 2, SLACK, "the waiter's contender")
        queued = contenders(raw, key_path)[1]
        assert CONTENDER.match(queued) and sequence(queued) > sequence(held)
        assert raw.get(f"{key_path}/{queued}")[1].ephemeralOwner == second.sessions[0].current_session_id()
        assert not got.is_set()
        assert first.get(LEADER).value == b"127.0.0.1:4001"

        holder.release()
        assert got.wait(SLACK)
        assert contenders(raw, key_path) == [queued]
        assert raw.get(key_path)[0] == b"127.0.0.1:4002"
        assert second.get(LEADER).value == b"127.0.0.1:4002"
        waiter.release()
        thread.join(timeout=SLACK)
        assert contenders(raw, key_path) == []
        assert raw.get(key_path)[0] is None  # released: a bare parent, which kvstore does not see as a key
        assert not second.exists(LEADER)


def watchers_by_path(zk_server: ZooKeeperServer) -> dict[str, set[int]]:
    """ZooKeeper's own account of its watches (``wchp``): path -> the sessions watching it."""
    found: dict[str, set[int]] = {}
    path = ""
    for line in four_letter_word(zk_server.host, zk_server.port, "wchp").splitlines():
        if line.startswith("/"):
            path = line.strip()
            found[path] = set()
        elif line.strip().startswith("0x") and path:
            found[path].add(int(line.strip(), 16))
    return found


def test_each_waiter_watches_only_the_contender_before_it(zk_server: ZooKeeperServer, prefix: str, raw: Any) -> None:
    """No herd: the second waiter watches the first waiter's node, not the holder's."""
    key_path = f"/{prefix}/{LEADER}"
    with (
        open_store(zk_server, prefix) as a,
        open_store(zk_server, prefix) as b,
        open_store(zk_server, prefix) as c,
    ):
        holder = a.new_lock(LEADER, value=b"a")
        holder.acquire(timeout=SLACK)
        waiters = [b.new_lock(LEADER, value=b"b"), c.new_lock(LEADER, value=b"c")]
        started = []
        for count, waiter in enumerate(waiters, start=2):
            started.append(acquire_in_thread(waiter, SLACK * 4))
            wait_until(lambda count=count: len(contenders(raw, key_path)) == count, SLACK, "the next contender")
        first, second, third = contenders(raw, key_path)
        session_of = {s: s.sessions[0].current_session_id() for s in (a, b, c)}

        def waiting_as_in_the_recipe() -> bool:
            watched = watchers_by_path(zk_server)
            return session_of[b] in watched.get(f"{key_path}/{first}", set()) and session_of[c] in watched.get(
                f"{key_path}/{second}", set()
            )

        wait_until(waiting_as_in_the_recipe, SLACK, "each waiter to watch the contender before it")
        watched = watchers_by_path(zk_server)
        assert session_of[c] not in watched.get(f"{key_path}/{first}", set()), "the last waiter watches the holder"
        assert session_of[b] not in watched.get(f"{key_path}/{third}", set())

        # The line moves one at a time.
        holder.release()
        assert started[0][1].wait(SLACK)
        assert b.get(LEADER).value == b"b"
        assert not started[1][1].is_set()
        waiters[0].release()
        assert started[1][1].wait(SLACK)
        assert c.get(LEADER).value == b"c"
        waiters[1].release()
        for thread, _ in started:
            thread.join(timeout=SLACK)


def test_holder_loses_the_lock_when_its_own_contender_goes(zk_server: ZooKeeperServer, prefix: str, raw: Any) -> None:
    key_path = f"/{prefix}/{LEADER}"
    with open_store(zk_server, prefix) as store:
        lock = store.new_lock(LEADER, value=b"me")
        lost = lock.acquire(timeout=SLACK)
        (held,) = contenders(raw, key_path)
        raw.delete(f"{key_path}/{held}")
        assert lost.wait(SLACK), "the lost-event was not set"
        wait_until(lambda: not store.exists(LEADER), SLACK, "the lost holder's value to be cleared")
        lock.release()  # lost already: nothing to give up
        with store.new_lock(LEADER, value=b"again"):
            assert store.get(LEADER).value == b"again"


def test_kvstore_waits_behind_a_go_holder_and_takes_over_when_its_session_goes(
    zk_server: ZooKeeperServer, prefix: str, raw: Any
) -> None:
    key_path = f"/{prefix}/{LEADER}"
    go = GoContender(zk_server.address, key_path, b"127.0.0.1:5001")
    try:
        go.enqueue()
        go.take()
        with open_store(zk_server, prefix) as store:
            lock = store.new_lock(LEADER, value=b"127.0.0.1:5002")
            with pytest.raises(CannotLockError):
                lock.acquire(timeout=0.5)
            assert contenders(raw, key_path) == [go.name], "a contender that gave up withdraws"
            assert store.get(LEADER).value == b"127.0.0.1:5001"

            thread, got = acquire_in_thread(lock, SLACK * 3)
            wait_until(lambda: len(contenders(raw, key_path)) == 2, SLACK, "the kvstore contender")
            ours = contenders(raw, key_path)[1]
            assert CONTENDER.match(ours) and sequence(ours) > sequence(go.name)
            assert not got.is_set()
            assert store.get(LEADER).value == b"127.0.0.1:5001"

            go.die()
            assert got.wait(SLACK * 2), "the kvstore contender did not take over"
            assert contenders(raw, key_path) == [ours]
            assert store.get(LEADER).value == b"127.0.0.1:5002"
            assert raw.get(key_path)[0] == b"127.0.0.1:5002"
            lock.release()
            thread.join(timeout=SLACK)
    finally:
        go.die()


def test_a_go_waiter_behind_a_kvstore_holder_is_lowest_once_the_holders_session_dies(
    zk_server: ZooKeeperServer, prefix: str, raw: Any
) -> None:
    key_path = f"/{prefix}/{LEADER}"
    with open_store(zk_server, prefix) as holder_store, open_store(zk_server, prefix) as reader:
        lost = holder_store.new_lock(LEADER, value=b"127.0.0.1:6001").acquire(timeout=SLACK)
        (held,) = contenders(raw, key_path)
        go = GoContender(zk_server.address, key_path, b"127.0.0.1:6002")
        try:
            go.enqueue()
            assert go.ahead() == held, "a Go waiter watches the kvstore holder's node"
            fired = threading.Event()
            assert go.client.exists(f"{key_path}/{held}", watch=lambda _event: fired.set()) is not None

            main = holder_store.sessions[0]
            session_id = main.current_session_id()
            assert session_id is not None
            twin = KazooClient(hosts=zk_server.address, client_id=(session_id, main.client.client_id[1]))
            twin.start(timeout=10)  # joined and closed from elsewhere: the holder's session is over
            twin.stop()
            twin.close()

            assert fired.wait(SLACK), "the Go waiter's watch did not fire"
            assert go.ahead() is None
            go.take()
            assert lost.wait(SLACK), "the kvstore holder was not told it lost the lock"
            wait_until(lambda: reader.get(LEADER).value == b"127.0.0.1:6002", SLACK, "the Go holder's value")
            assert contenders(raw, key_path) == [go.name]
        finally:
            go.die()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")
def test_a_go_waiter_takes_over_from_a_killed_swarmctl_primary(
    zk_server: ZooKeeperServer, prefix: str, raw: Any, tmp_path: Path
) -> None:
    from tests.support.manager import Manager
    from tests.support.roles import has_role

    key_path = f"/{prefix}/{LEADER}"
    primary = Manager(tmp_path, f"zk://{zk_server.address}/{prefix}", replication_ttl="3s")
    go = GoContender(zk_server.address, key_path, b"127.0.0.1:8001")
    try:
        wait_until(lambda: has_role(primary, ("primary", "")), 60, "swarmctl to become the primary")
        assert raw.get(key_path)[0] == primary.addr.encode()
        (held,) = contenders(raw, key_path)
        go.enqueue()
        assert go.ahead() == held, "the Go waiter queues behind the swarmctl primary"
        primary.process.kill()  # SIGKILL: its session ends when its timeout (the replication TTL) runs out
        wait_until(lambda: go.ahead() is None, 3 + SLACK * 2, "the Go waiter to be first in line")
        go.take()
        assert raw.get(key_path)[0] == b"127.0.0.1:8001"
        assert contenders(raw, key_path) == [go.name]
    finally:
        go.die()
        primary.process.kill()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")
def test_swarmctl_replica_follows_a_go_layout_primary_and_takes_over(
    zk_server: ZooKeeperServer, prefix: str, raw: Any, tmp_path: Path
) -> None:
    from tests.support.manager import Manager
    from tests.support.roles import has_role

    url = f"zk://{zk_server.address}/{prefix}"
    key_path = f"/{prefix}/{LEADER}"
    # The Go primary's API: a plain manager answers what the Go one would (the replica forwards to it).
    go_api = Manager(tmp_path, url)
    go = GoContender(zk_server.address, key_path, go_api.addr.encode())
    replica: Manager | None = None
    try:
        go.enqueue()
        go.take()
        replica = Manager(tmp_path, url, replication_ttl="3s")

        wait_until(lambda: has_role(replica, ("replica", go_api.addr)), 60, "the replica to name the Go primary")
        assert go.ahead() is None, "the replica waits behind the Go primary"

        go.die()
        wait_until(lambda: has_role(replica, ("primary", "")), 60, "the replica to take over")
        assert raw.get(key_path)[0] == replica.addr.encode()
        (ours,) = contenders(raw, key_path)
        assert CONTENDER.match(ours)
    finally:
        go.die()
        if replica is not None:
            replica.process.kill()
        go_api.process.kill()
