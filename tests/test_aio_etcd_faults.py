"""kvstore.aio on etcd when the store goes away, and a watch closed before its first read is done.

The contract: a watch survives a reconnect without losing state, but once
the store is gone for longer than the connection timeout, iteration raises
``NotReachableError``; and a closed watch holds nothing (no stream task left).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import kvstore.aio
from kvstore import Config, NotReachableError
from kvstore.aio.etcd import AsyncEtcdStore
from tests.support.etcd import single_etcd

WAIT = 30.0


def test_a_watch_raises_not_reachable_once_etcd_is_gone_past_the_connection_timeout(tmp_path: Path) -> None:
    with single_etcd(tmp_path / "etcd") as cluster:

        async def main() -> None:
            async with kvstore.aio.new_store("etcd", cluster.endpoints, Config(connection_timeout=2.0)) as store:
                await store.put("gone/k", b"0")
                async with store.watch_tree("gone") as watch:
                    assert [p.key for p in await watch.next(timeout=WAIT)] == ["gone/k"]
                    await asyncio.to_thread(cluster.kill_member, cluster.members[0])
                    with pytest.raises(NotReachableError, match="no etcd member answered"):
                        await watch.next(timeout=WAIT)

        asyncio.run(main())


def test_a_watch_closed_during_its_first_read_leaves_no_stream(tmp_path: Path) -> None:
    with single_etcd(tmp_path / "etcd") as cluster:

        async def main() -> None:
            async with kvstore.aio.new_store("etcd", cluster.endpoints) as store:
                assert isinstance(store, AsyncEtcdStore)
                await store.put("early/k", b"0")
                watch = store.watch_tree("early")
                starting = asyncio.create_task(watch.start())
                await asyncio.sleep(0)  # the first read is under way
                await watch.aclose()
                await asyncio.wait_for(starting, WAIT)
                with pytest.raises(StopAsyncIteration):
                    await watch.next(timeout=WAIT)
                assert store._streams == set()

        asyncio.run(main())
