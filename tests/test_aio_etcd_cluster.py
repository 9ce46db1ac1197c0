"""kvstore.aio on a three-member etcd cluster: the leader dies under a running watch and a held lock.

The async twin of tests/test_etcd_cluster.py, with the same rules: the
watch resumes from the last delivered revision on a live member and loses
no change; calls move on within their budget; a lock's lease is renewed
through another member, and its holder learns of a loss.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator

import pytest

import kvstore
import kvstore.aio
from kvstore import Config, KVPair
from tests.support.etcd import EtcdCluster, EtcdMember, PausableProxy, etcd_cluster

#: Generous: a failover on a loaded 2-core machine takes a few seconds.
DEADLINE = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(tmp_path_factory.mktemp("etcd-aio-cluster"), size=3) as running:
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


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_watch_tree_survives_the_leader_dying(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """The watch's member dies; ten puts happen while the watch has no member; none is lost."""
    config = Config(connection_timeout=15.0)
    follower = next(m for m in cluster.members if m is not leader)
    names = [f"d/k{n:03d}" for n in range(30)]
    states: list[list[KVPair]] = []

    async def main(proxy: PausableProxy) -> None:
        async with (
            kvstore.aio.new_store("etcd", [leader.endpoint, proxy.endpoint], config) as watching,
            kvstore.aio.new_store("etcd", leader_first(cluster, leader), config) as store,
            watching.watch_tree("d") as watch,
        ):

            async def read() -> None:
                async for state in watch:
                    states.append(state)
                    if len(state) == len(names):
                        return

            reader = asyncio.create_task(read())
            for name in names[:10]:
                await store.put(name, name.encode())
            await until(lambda: bool(states) and len(states[-1]) == 10, "the first ten keys")

            proxy.pause()
            await asyncio.to_thread(cluster.kill_member, leader)
            for name in names[10:20]:  # each put moves to a live member within its budget
                await store.put(name, name.encode())
            assert len(states[-1]) == 10, "the watch saw changes while it had no member to watch"
            proxy.resume()
            for name in names[20:]:
                await store.put(name, name.encode())
            await asyncio.wait_for(reader, DEADLINE)  # TimeoutError: the watch stopped delivering after the failover

    with PausableProxy(follower.endpoint) as proxy:
        asyncio.run(main(proxy))
    assert cluster.wait_for_leader() is not leader
    seen = [[p.key for p in state] for state in states]
    for n in range(len(names) + 1):
        assert names[:n] in seen, f"the state after {n} puts was never delivered"
    assert all(len(a) <= len(b) <= len(a) + 1 for a, b in itertools.pairwise(seen)), seen
    assert [(p.key, p.value) for p in states[-1]] == [(n, n.encode()) for n in names]


def test_lock_held_across_the_leader_dying(cluster: EtcdCluster, leader: EtcdMember) -> None:
    config = Config(connection_timeout=10.0)
    ttl = 6.0

    async def main() -> None:
        async with (
            kvstore.aio.new_store("etcd", leader_first(cluster, leader), config) as holder_store,
            kvstore.aio.new_store("etcd", followers_first(cluster, leader), config) as other,
        ):
            lock = holder_store.new_lock("locks/primary", value=b"me:1234", ttl=ttl)
            lost = await lock.acquire(timeout=DEADLINE)
            await asyncio.to_thread(cluster.kill_member, leader)
            await asyncio.to_thread(cluster.wait_for_leader)
            failed_over = time.monotonic()
            # Still held one full TTL after the failover: only renewals through the survivors can do that.
            while time.monotonic() - failed_over < ttl + 1:
                assert not lost.is_set(), "the lock was reported lost, but its lease was renewable"
                assert (await other.get("locks/primary")).value == b"me:1234"
                await asyncio.sleep(0.5)
            with pytest.raises(kvstore.CannotLockError):
                await other.new_lock("locks/primary").acquire(timeout=0.2)
            # The holder learns of a loss at once: its watch on the key moved to a live member too.
            await other.delete("locks/primary")
            await asyncio.wait_for(lost.wait(), DEADLINE)
            taken = await other.new_lock("locks/primary", value=b"next").acquire(timeout=DEADLINE)
            assert not taken.is_set()
            await lock.release()  # lost already: no error, and the new holder keeps it
            assert (await other.get("locks/primary")).value == b"next"

    asyncio.run(main())


def test_lost_lock_when_the_cluster_is_gone_past_the_ttl(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """With every member gone, the holder cannot renew: it must call the lock lost once the TTL passed."""

    async def main() -> None:
        async with kvstore.aio.new_store("etcd", leader_first(cluster, leader), Config(connection_timeout=2.0)) as s:
            lost = await s.new_lock("locks/alone", value=b"me", ttl=2).acquire(timeout=DEADLINE)
            for member in cluster.members:
                await asyncio.to_thread(cluster.kill_member, member)
            await asyncio.wait_for(lost.wait(), 2 + DEADLINE)  # TimeoutError: it kept believing in the lock

    asyncio.run(main())


def test_calls_move_off_a_member_that_hangs(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """A frozen member (SIGSTOP) keeps its sockets open and answers nothing: calls move on within budget."""
    frozen = next(m for m in cluster.members if m is not leader)
    addrs = [frozen.endpoint] + [m.endpoint for m in cluster.members if m is not frozen]

    async def main() -> None:
        async with kvstore.aio.new_store("etcd", addrs, Config(connection_timeout=6.0)) as store:
            await store.put("hang/before", b"1")  # connected to the member about to freeze
            cluster.freeze_member(frozen)
            try:
                await store.put("hang/k", b"v")  # one attempt times out on the frozen member, the next succeeds
                assert (await store.get("hang/k")).value == b"v"
                assert [p.key for p in await store.list("hang")] == ["hang/before", "hang/k"]
            finally:
                cluster.thaw_member(frozen)

    asyncio.run(main())
