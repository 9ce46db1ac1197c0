"""The async conformance suite against a real ZooKeeper, plain and over client-certificate TLS.

The async ``zk`` store is the sync one on threads of its own (kvstore.aio.zookeeper),
so these runs check the async face over it: every call awaited, watches
pumped into the loop, locks and their lost-events mirrored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import kvstore
import kvstore.aio
from kvstore import Config
from kvstore.aio.testing import AsyncStoreConformance, StoreOpener
from tests.support.zookeeper import ZooKeeperServer, standalone, tls_standalone, zookeeper_installed
from tests.test_zookeeper_tls import good_tls

pytestmark = pytest.mark.skipif(not zookeeper_installed(), reason="ZooKeeper (and Java) not installed")


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with standalone(tmp_path_factory.mktemp("zookeeper-aio")) as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with tls_standalone(tmp_path_factory.mktemp("zookeeper-aio-tls")) as server:
        yield server


class TestAsyncZooKeeper(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self, zk_server: ZooKeeperServer) -> StoreOpener:
        config = Config(connection_timeout=10.0, prefix="kvstore-aio-test")
        return lambda: kvstore.aio.new_store("zk", [zk_server.address], config)


class TestAsyncZooKeeperTLS(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self, tls_server: ZooKeeperServer) -> StoreOpener:
        config = Config(connection_timeout=10.0, tls=good_tls(tls_server), prefix="tls-aio")
        return lambda: kvstore.aio.new_store("zk", [tls_server.address], config)


def test_a_sync_and_an_async_store_share_keys_and_locks(zk_server: ZooKeeperServer) -> None:
    config = Config(connection_timeout=10.0, prefix="kvstore-aio-shared")

    async def main() -> None:
        with kvstore.new_store("zk", [zk_server.address], config) as sync_store:
            async with kvstore.aio.new_store("zk", [zk_server.address], config) as store:
                await store.put("shared/k", b"from-async")
                assert sync_store.get("shared/k").value == b"from-async"
                async with store.watch("shared/k") as watch:
                    assert (await watch.next(timeout=10)).value == b"from-async"
                    sync_store.put("shared/k", b"from-sync")
                    assert (await watch.next(timeout=10)).value == b"from-sync"
                async with store.new_lock("shared/lock", value=b"async"):
                    with pytest.raises(kvstore.CannotLockError):
                        await asyncio.to_thread(sync_store.new_lock("shared/lock").acquire, 0.5)
                await store.delete_tree("shared")

    asyncio.run(main())
