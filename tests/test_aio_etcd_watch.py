"""kvstore.aio's etcd watches across an interrupted connection: resumed without loss, or rebuilt after compaction.

The async twin of tests/test_etcd_watch.py: the watching store reaches etcd
only through a :class:`PausableProxy`; a sync store that always reaches it
makes the changes while the watcher is cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

import kvstore
import kvstore.aio
from kvstore import Config, KVPair
from kvstore.aio import AsyncStore
from kvstore.aio.testing import next_matching
from tests.support.etcd import EtcdCluster, PausableProxy, single_etcd
from tests.test_etcd_watch import compact

WAIT = 15.0


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd-aio-watch")) as cluster:
        yield cluster


@pytest.fixture
def proxy(etcd: EtcdCluster) -> Iterator[PausableProxy]:
    with PausableProxy(etcd.endpoints[0]) as running:
        yield running


@pytest.fixture
def direct(etcd: EtcdCluster) -> Iterator[kvstore.Store]:
    with kvstore.new_store("etcd", etcd.endpoints) as store:
        yield store


def behind(proxy: PausableProxy, case: Callable[[AsyncStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with kvstore.aio.new_store("etcd", [proxy.endpoint], Config(connection_timeout=WAIT)) as store:
            await case(store)

    asyncio.run(main())


def keys_values(pairs: list[KVPair]) -> list[tuple[str, bytes]]:
    return [(p.key, p.value) for p in pairs]


def test_watch_tree_resumes_with_every_change_made_while_cut_off(proxy: PausableProxy, direct: kvstore.Store) -> None:
    async def case(store: AsyncStore) -> None:
        async with store.watch_tree("resume") as watch:
            assert await watch.next(timeout=WAIT) == []
            proxy.pause()
            direct.put("resume/a", b"1")
            direct.put("resume/b", b"2")
            direct.delete("resume/a")
            proxy.resume()
            # Each change made during the outage arrives as its own state, in order.
            assert keys_values(await watch.next(timeout=WAIT)) == [("resume/a", b"1")]
            assert keys_values(await watch.next(timeout=WAIT)) == [("resume/a", b"1"), ("resume/b", b"2")]
            assert keys_values(await watch.next(timeout=WAIT)) == [("resume/b", b"2")]
            direct.put("resume/c", b"3")
            assert keys_values(await watch.next(timeout=WAIT)) == [("resume/b", b"2"), ("resume/c", b"3")]

    behind(proxy, case)


def test_watch_tree_rebuilds_its_state_after_compaction(
    etcd: EtcdCluster, proxy: PausableProxy, direct: kvstore.Store
) -> None:
    direct.put("compacted/stays", b"0")
    direct.put("compacted/goes", b"0")

    async def case(store: AsyncStore) -> None:
        async with store.watch_tree("compacted") as watch:
            assert [p.key for p in await watch.next(timeout=WAIT)] == ["compacted/goes", "compacted/stays"]
            proxy.pause()
            direct.delete("compacted/goes")
            direct.put("compacted/new", b"1")
            compact(etcd)
            proxy.resume()
            wanted = ["compacted/new", "compacted/stays"]
            state = await next_matching(watch, lambda ps: [p.key for p in ps] == wanted)
            assert keys_values(state) == [("compacted/new", b"1"), ("compacted/stays", b"0")]
            direct.put("compacted/stays", b"after")
            state = await watch.next(timeout=WAIT)
            assert keys_values(state) == [("compacted/new", b"1"), ("compacted/stays", b"after")]

    behind(proxy, case)


def test_watch_of_a_key_after_compaction(etcd: EtcdCluster, proxy: PausableProxy, direct: kvstore.Store) -> None:
    direct.put("one/k", b"0")

    async def case(store: AsyncStore) -> None:
        async with store.watch("one/k") as watch:
            assert (await watch.next(timeout=WAIT)).value == b"0"
            proxy.pause()
            direct.put("one/k", b"1")
            direct.put("one/k", b"2")
            compact(etcd)
            proxy.resume()
            assert (await watch.next(timeout=WAIT)).value == b"2"
            proxy.pause()
            direct.delete("one/k")
            direct.put("one/other", b"x")  # moves the compaction past the revision the watch resumes from
            compact(etcd)
            proxy.resume()
            with pytest.raises(StopAsyncIteration):
                await watch.next(timeout=WAIT)

    behind(proxy, case)


def test_watch_of_a_key_deleted_while_cut_off_ends(proxy: PausableProxy, direct: kvstore.Store) -> None:
    direct.put("gone/k", b"0")

    async def case(store: AsyncStore) -> None:
        async with store.watch("gone/k") as watch:
            assert (await watch.next(timeout=WAIT)).value == b"0"
            proxy.pause()
            direct.put("gone/k", b"1")
            direct.delete("gone/k")
            proxy.resume()
            assert (await watch.next(timeout=WAIT)).value == b"1"
            with pytest.raises(StopAsyncIteration):
                await watch.next(timeout=WAIT)

    behind(proxy, case)


def test_lock_holder_cut_off_learns_of_the_loss(proxy: PausableProxy, direct: kvstore.Store) -> None:
    """Cut off while its key is taken away: the holder hears of it once it is back."""

    async def case(store: AsyncStore) -> None:
        lost = await store.new_lock("cut/lock", value=b"me", ttl=30).acquire(timeout=WAIT)
        proxy.pause()
        direct.delete("cut/lock")
        direct.put("cut/lock", b"someone else")
        assert not lost.is_set()
        proxy.resume()
        await asyncio.wait_for(lost.wait(), WAIT)  # TimeoutError: the holder never learned its key was taken
        assert direct.get("cut/lock").value == b"someone else"

    behind(proxy, case)
