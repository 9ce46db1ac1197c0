"""The async and the sync sqlite stores on one file: each sees the other's writes and locks; the loop never waits.

Other processes share a sqlite file, and a program may hold both faces of
kvstore, so what one store writes another must see whichever face wrote it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import kvstore
import kvstore.aio
from kvstore.testing import SLACK


def test_async_watch_sees_sync_writes(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/kv.db"

    async def main() -> None:
        with kvstore.from_url(url) as sync_store:
            async with kvstore.aio.from_url(url) as store, store.watch_tree("d") as watch:
                assert await watch.next(timeout=SLACK) == []
                sync_store.put("d/k", b"from-sync")
                items = await watch.next(timeout=SLACK)
                assert [(p.key, p.value) for p in items] == [("d/k", b"from-sync")]
                sync_store.delete("d/k")
                assert await watch.next(timeout=SLACK) == []

    asyncio.run(main())


def test_sync_watch_sees_async_writes(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/kv.db"

    async def main() -> None:
        with kvstore.from_url(url) as sync_store:
            async with kvstore.aio.from_url(url) as store:
                await store.put("k", b"0")
                with sync_store.watch("k") as watch:
                    assert watch.next(timeout=SLACK).value == b"0"
                    await store.put("k", b"1")
                    assert watch.next(timeout=SLACK).value == b"1"
                pair = sync_store.get("k")
                assert await store.get("k") == pair
                await store.atomic_put("k", b"2", pair)
                assert sync_store.get("k").value == b"2"

    asyncio.run(main())


def test_a_sync_holder_excludes_an_async_one_and_back(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/kv.db"

    async def main() -> None:
        with kvstore.from_url(url) as sync_store:
            async with kvstore.aio.from_url(url) as store:
                with sync_store.new_lock("lock", value=b"sync"), pytest.raises(kvstore.CannotLockError):
                    await store.new_lock("lock").acquire(timeout=0.3)
                async with store.new_lock("lock", value=b"async"):
                    assert sync_store.get("lock").value == b"async"
                    with pytest.raises(kvstore.CannotLockError):
                        sync_store.new_lock("lock").acquire(timeout=0.3)
                assert not sync_store.exists("lock")

    asyncio.run(main())


def test_the_loop_runs_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"

    async def main() -> None:
        async with kvstore.aio.new_store("sqlite", [str(path)], kvstore.Config(connection_timeout=SLACK * 3)) as store:
            await store.put("k", b"before")
            other = sqlite3.connect(path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                writing = asyncio.create_task(store.put("k", b"after"))
                for _ in range(5):  # each turn needs the loop: a put blocking inside sqlite would stall these
                    await asyncio.sleep(0.01)
                assert not writing.done()
                other.execute("COMMIT")
                await asyncio.wait_for(writing, SLACK)
            finally:
                other.close()
            assert (await store.get("k")).value == b"after"

    asyncio.run(main())


def test_a_write_lock_held_past_the_connection_timeout_is_not_reachable(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"

    async def main() -> None:
        async with kvstore.aio.new_store("sqlite", [str(path)], kvstore.Config(connection_timeout=0.3)) as store:
            await store.put("k", b"before")
            other = sqlite3.connect(path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(kvstore.NotReachableError, match="busy"):
                    await store.put("k", b"after")
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert (await store.get("k")).value == b"before"

    asyncio.run(main())


def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    async def main() -> None:
        store = kvstore.aio.from_url(f"sqlite://{tmp_path}/kv.db")
        await store.put("k", b"v")
        await store.aclose()
        assert store.closed
        with pytest.raises(kvstore.KVStoreError, match="closed"):
            await store.get("k")

    asyncio.run(main())


def test_unknown_backend_and_bad_arguments() -> None:
    with pytest.raises(kvstore.BackendNotSupportedError):
        kvstore.aio.new_store("nosuch", [])
    with pytest.raises(kvstore.InvalidArgumentError):
        kvstore.aio.new_store("sqlite", "/tmp/kv.db")  # type: ignore[arg-type]
    with pytest.raises(kvstore.InvalidArgumentError):
        kvstore.aio.from_url("sqlite://relative/kv.db")
