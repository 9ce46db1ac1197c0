"""A three-member etcd cluster on loopback: the leader dies under a running watch and a held lock.

The store is given the leader's address first, so that its calls, its watch
stream and its lock's keep-alives all start on the member that is then
killed (SIGKILL: a crash, no graceful leadership transfer). After that:

- the ``watch_tree`` goes on and delivers every change made after the
  failover, each as its own state, none lost;
- the store keeps serving every call, without the caller seeing an error;
- the lock's holder keeps the lock (its lease is renewed through another
  member), and learns at once when it does lose it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

import kvstore
from kvstore import Config, KVPair
from tests.support.etcd import EtcdCluster, EtcdMember, PausableProxy, etcd_cluster
from tests.support.process import wait_for

#: Generous: a failover on a loaded 2-core machine takes a few seconds.
DEADLINE = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(tmp_path_factory.mktemp("etcd-cluster"), size=3) as running:
        yield running


@pytest.fixture
def leader(cluster: EtcdCluster) -> Iterator[EtcdMember]:
    """The current leader; whatever a test kills is restarted after it, and the cluster healed."""
    yield cluster.wait_for_leader()
    cluster.restart_stopped()


def leader_first(cluster: EtcdCluster, leader: EtcdMember) -> list[str]:
    return [leader.endpoint] + [m.endpoint for m in cluster.members if m is not leader]


def followers_first(cluster: EtcdCluster, leader: EtcdMember) -> list[str]:
    return [m.endpoint for m in cluster.members if m is not leader] + [leader.endpoint]


def test_watch_tree_survives_the_leader_dying(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """The watch's member dies; changes are made while the watch has no member; none is lost.

    The watching store knows the leader and a follower it reaches through a
    proxy. The proxy is cut before the leader is killed and restored only
    after ten more puts, so those ten certainly happen while the watch is
    disconnected: only resuming from the last delivered revision shows them.
    """
    config = Config(connection_timeout=15.0)
    follower = next(m for m in cluster.members if m is not leader)
    states: list[list[KVPair]] = []
    done = threading.Event()
    errors: list[BaseException] = []
    names = [f"d/k{n:03d}" for n in range(30)]

    with (
        PausableProxy(follower.endpoint) as proxy,
        kvstore.new_store("etcd", [leader.endpoint, proxy.endpoint], config) as watching,
        kvstore.new_store("etcd", leader_first(cluster, leader), config) as store,
        watching.watch_tree("d") as watch,
    ):

        def read() -> None:
            try:
                for state in watch:
                    states.append(state)
                    if len(state) == len(names):
                        break
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)
            finally:
                done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for name in names[:10]:
            store.put(name, name.encode())
        wait_for(lambda: len(states) > 0 and len(states[-1]) == 10, DEADLINE, "the first ten keys")

        proxy.pause()
        cluster.kill_member(leader)
        # The writing store keeps serving: each put moves to a live member within its budget.
        for name in names[10:20]:
            store.put(name, name.encode())
        assert len(states[-1]) == 10, "the watch saw changes while it had no member to watch"
        proxy.resume()
        for name in names[20:]:
            store.put(name, name.encode())
        assert cluster.wait_for_leader() is not leader

        assert done.wait(DEADLINE), "the watch stopped delivering after the failover"
        assert not errors, errors
    seen = [[p.key for p in state] for state in states]
    # Every change is its own state, in order: the key lists are exactly the
    # growing prefixes of `names` (a put retried across the failover may
    # show the same list twice, with a new index; nothing may be skipped).
    for n in range(len(names) + 1):
        assert names[:n] in seen, f"the state after {n} puts was never delivered"
    assert all(len(a) <= len(b) <= len(a) + 1 for a, b in itertools.pairwise(seen)), seen
    assert [(p.key, p.value) for p in states[-1]] == [(n, n.encode()) for n in names]


def test_lock_held_across_the_leader_dying(cluster: EtcdCluster, leader: EtcdMember) -> None:
    config = Config(connection_timeout=10.0)
    ttl = 6.0
    with (
        kvstore.new_store("etcd", leader_first(cluster, leader), config) as holder_store,
        kvstore.new_store("etcd", followers_first(cluster, leader), config) as other,
    ):
        lock = holder_store.new_lock("locks/primary", value=b"me:1234", ttl=ttl)
        lost = lock.acquire(timeout=DEADLINE)
        cluster.kill_member(leader)
        cluster.wait_for_leader()
        failed_over = time.monotonic()

        # Still held one full TTL after the failover: only renewals through
        # the surviving members can have kept the lease alive that long.
        while time.monotonic() - failed_over < ttl + 1:
            assert not lost.is_set(), "the lock was reported lost, but its lease was renewable"
            assert other.get("locks/primary").value == b"me:1234"
            time.sleep(0.5)
        with pytest.raises(kvstore.CannotLockError):
            other.new_lock("locks/primary").acquire(timeout=0.2)

        # The holder learns of a loss at once: its watch on the key moved to a live member too.
        other.delete("locks/primary")
        assert lost.wait(DEADLINE), "the holder never learned that it lost the lock"
        taken = other.new_lock("locks/primary", value=b"next").acquire(timeout=DEADLINE)
        assert not taken.is_set()
        assert holder_store.get("locks/primary").value == b"next"
        lock.release()  # lost already: no error, and the new holder keeps it
        assert other.get("locks/primary").value == b"next"


def test_lost_lock_when_the_cluster_is_gone_past_the_ttl(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """With every member gone, the holder cannot renew: it must call the lock lost once the TTL passed."""
    config = Config(connection_timeout=2.0)
    with kvstore.new_store("etcd", leader_first(cluster, leader), config) as store:
        lost = store.new_lock("locks/alone", value=b"me", ttl=2).acquire(timeout=DEADLINE)
        for member in cluster.members:
            cluster.kill_member(member)
        assert lost.wait(2 + DEADLINE), "the holder kept believing in a lock it could not renew"


def test_calls_move_off_a_member_that_hangs(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """A frozen member (SIGSTOP) keeps its sockets open and answers nothing: calls move on within budget."""
    frozen = next(m for m in cluster.members if m is not leader)
    addrs = [frozen.endpoint] + [m.endpoint for m in cluster.members if m is not frozen]
    with kvstore.new_store("etcd", addrs, Config(connection_timeout=6.0)) as store:
        store.put("hang/before", b"1")  # connected to the member about to freeze
        cluster.freeze_member(frozen)
        try:
            store.put("hang/k", b"v")  # one attempt times out on the frozen member, the next succeeds
            assert store.get("hang/k").value == b"v"
            assert [p.key for p in store.list("hang")] == ["hang/before", "hang/k"]
        finally:
            cluster.thaw_member(frozen)
