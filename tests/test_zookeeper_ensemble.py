"""The ``zk`` backend on a three-server ensemble (loopback) while its leader goes down.

One scenario, the one Swarm lives through: a manager watches the node
directory, a primary holds the leader lock, nodes keep their ttl keys
fresh, and the ZooKeeper leader dies. The watch must go on without losing
a change, the lock holder must keep its lock (its session survives the
election), a waiter must not get the lock meanwhile but must get it on
release, the ttl keys of live clients must stay, and those of a client
killed meanwhile must vanish.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

import kvstore
from kvstore import Config, KVPair, NotReachableError
from kvstore.backends.zookeeper import ZooKeeperStore
from kvstore.testing import SLACK, wait_until
from tests.support.zookeeper import Ensemble, ensemble, zookeeper_installed

pytestmark = pytest.mark.skipif(not zookeeper_installed(), reason="ZooKeeper (and Java) not installed")

#: Long enough for a session to ride out an election on a loaded machine, short enough to matter.
LIVE_TTL = 8.0
DEAD_TTL = 2.0


@pytest.fixture(scope="module")
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    with ensemble(tmp_path_factory.mktemp("zookeeper-ensemble")) as group:
        yield group


@pytest.fixture
def healthy(zk_ensemble: Ensemble) -> Ensemble:
    """Every member up and one leading (an earlier test may have stopped one)."""
    for server in zk_ensemble.servers:
        if not server.running:
            server.start(wait=False)
    zk_ensemble.wait_quorum()
    return zk_ensemble


def _hold_ttl_key(addrs: list[str], prefix: str, conn: Connection) -> None:
    """A client in another process: writes a ttl key, then waits to be killed."""
    store = kvstore.new_store("zk", addrs, Config(connection_timeout=20.0, prefix=prefix))
    store.put("nodes/dead", b"doomed", ttl=DEAD_TTL)
    conn.send("written")
    conn.recv()


@contextlib.contextmanager
def child_with_ttl_key(addrs: list[str], prefix: str) -> Iterator[multiprocessing.process.BaseProcess]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_hold_ttl_key, args=(addrs, prefix, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        assert ours.poll(SLACK * 3), "the child did not write its key"
        assert ours.recv() == "written"
        yield process
    finally:
        process.kill()
        process.join(timeout=SLACK)
        ours.close()


class Writer:
    """Writes ``nodes/w000``, ``nodes/w001``... in turn, retrying a put that could not get through."""

    def __init__(self, store: kvstore.Store) -> None:
        self.store = store
        self.written: list[str] = []
        self.unreachable = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"nodes/w{n:03d}"
            try:
                self.store.put(key, key.encode())
            except NotReachableError:
                self.unreachable += 1
                continue
            except BaseException as exc:
                self.errors.append(exc)
                return
            self.written.append(key)
            n += 1
            self._stop.wait(0.02)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SLACK * 3)
        assert not self._thread.is_alive()


def keys_of(pairs: list[KVPair]) -> list[str]:
    return [p.key for p in pairs]


def test_leader_failover_during_watch_tree_and_held_lock(healthy: Ensemble, tmp_path: Path) -> None:
    prefix = f"failover-{uuid.uuid4().hex[:8]}"
    addrs = healthy.addrs
    config = Config(connection_timeout=20.0, prefix=prefix)
    with (
        kvstore.new_store("zk", addrs, config) as manager,
        kvstore.new_store("zk", addrs, config) as primary,
        kvstore.new_store("zk", addrs, config) as replica,
        kvstore.new_store("zk", addrs, config) as writer_store,
    ):
        assert isinstance(primary, ZooKeeperStore)
        primary.put("nodes/live", b"alive", ttl=LIVE_TTL)
        leader_lock = primary.new_lock("leader", value=b"primary", ttl=LIVE_TTL)
        lost = leader_lock.acquire(timeout=SLACK)
        sessions_before = {s.timeout: s.current_session_id() for s in primary.sessions}

        watch = manager.watch_tree("nodes")
        seen: list[list[KVPair]] = []
        failures: list[BaseException] = []

        def read() -> None:
            try:
                for pairs in watch:
                    seen.append(pairs)
            except BaseException as exc:
                failures.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        waiter_got = threading.Event()
        waiter_errors: list[BaseException] = []

        def wait_for_lock() -> None:
            try:
                replica.new_lock("leader", value=b"replica", ttl=LIVE_TTL).acquire(timeout=SLACK * 6)
                waiter_got.set()
            except BaseException as exc:
                waiter_errors.append(exc)

        with child_with_ttl_key(addrs, prefix) as child:
            wait_until(lambda: any("nodes/dead" in keys_of(p) for p in seen), SLACK, "the child's key")
            writer = Writer(writer_store).start()
            waiter = threading.Thread(target=wait_for_lock, daemon=True)
            waiter.start()
            wait_until(lambda: len(writer.written) >= 15, SLACK, "writes before the failover")

            old_leader = healthy.leader()
            old_leader.kill()
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)  # a client dies while the ensemble elects
            healthy.wait_quorum()
            during = len(writer.written)
            wait_until(lambda: len(writer.written) >= during + 15, SLACK * 2, "writes after the failover")
            writer.stop()
        assert not writer.errors, writer.errors

        expected = sorted(["nodes/live", *writer.written])
        # (The reader thread consumes the watch: look at what it saw.)
        wait_until(lambda: bool(seen) and keys_of(seen[-1]) == expected, DEAD_TTL + SLACK * 2, "the final state")
        final = seen[-1]
        assert all(p.value == p.key.encode() for p in final if p.key != "nodes/live")
        assert not failures, failures
        # No change lost, none taken back: the written keys only ever grow from one state to the next.
        counts = [sum(1 for k in keys_of(p) if k.startswith("nodes/w")) for p in seen]
        assert counts == sorted(counts)
        assert all(keys_of(p) == sorted(keys_of(p)) for p in seen)

        # The live client kept its session, its ttl key and its lock; the waiter waited.
        assert {s.timeout: s.current_session_id() for s in primary.sessions} == sessions_before
        assert primary.get("nodes/live").value == b"alive"
        assert not lost.is_set()
        assert primary.get("leader").value == b"primary"
        assert not waiter_got.is_set() and not waiter_errors
        assert replica.get("leader").value == b"primary"

        # The lock passes on when released, across the new leader.
        leader_lock.release()
        assert waiter_got.wait(SLACK), waiter_errors
        waiter.join(timeout=SLACK)
        assert manager.get("leader").value == b"replica"
        watch.close()
        reader.join(timeout=SLACK)


def test_store_with_every_member_down_is_not_reachable(healthy: Ensemble) -> None:
    """With no member up: calls fail within the connection timeout, a held lock is lost within its ttl
    (nobody can vouch for its session any more); with a quorum back, the store works again."""
    with kvstore.new_store("zk", healthy.addrs, Config(connection_timeout=2.0, prefix="down")) as store:
        store.put("k", b"v")
        lost = store.new_lock("lock", ttl=DEAD_TTL).acquire(timeout=SLACK)
        for server in healthy.servers:
            server.kill()
        with pytest.raises(NotReachableError):
            store.get("k")
        assert lost.wait(DEAD_TTL + SLACK), "the lock was not reported lost"
        for server in healthy.servers:
            server.start(wait=False)
        healthy.wait_quorum()
        wait_until(lambda: _reads(store), SLACK * 2, "the store to work again")
        assert store.get("k").value == b"v"


def _reads(store: kvstore.Store) -> bool:
    try:
        store.get("k")
    except NotReachableError:
        return False
    return True
