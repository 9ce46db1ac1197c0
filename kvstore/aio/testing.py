"""The conformance suite of :class:`kvstore.aio.AsyncStore`: the cases of :mod:`kvstore.testing`, awaited.

Every case of the sync suite is here with the same meaning, written with
``await``, tasks in place of threads and ``asyncio.Event`` lost-events. To
run it against a backend, subclass :class:`AsyncStoreConformance` and give
it an ``open_store`` fixture: a callable that makes a new, unopened store
(each case runs in its own event loop, opens the store there and closes it
at the end)::

    import kvstore.aio
    import pytest
    from kvstore.aio.testing import AsyncStoreConformance

    class TestMyBackend(AsyncStoreConformance):
        @pytest.fixture
        def open_store(self):
            return lambda: kvstore.aio.new_store("mybackend", ["127.0.0.1:1234"])

No asyncio plugin for pytest is needed: each case is a plain test that runs
its coroutine with :func:`asyncio.run`. Second clients are opened with
``kvstore.aio.new_store(store.backend, store.addrs, store.config)``, in this
process or in child processes, as in the sync suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import pytest

import kvstore.aio
from kvstore import (
    CannotLockError,
    Config,
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVPair,
    KVStoreError,
    PreviousNotSpecifiedError,
)
from kvstore.aio import AsyncStore, AsyncWatch
from kvstore.testing import SLACK, keys_of

T = TypeVar("T")
StoreOpener = Callable[[], AsyncStore]
Case = Callable[[Any, AsyncStore, str], Coroutine[Any, Any, None]]


def async_case(body: Case) -> Callable[[Any, StoreOpener], None]:
    """Turn ``async def test_x(self, store, root)`` into a plain test over the ``open_store`` fixture."""

    def test(self: Any, open_store: StoreOpener) -> None:
        asyncio.run(_run_case(self, body, open_store))

    test.__name__ = body.__name__
    test.__qualname__ = body.__qualname__
    test.__doc__ = body.__doc__
    return test


async def _run_case(owner: Any, body: Case, open_store: StoreOpener) -> None:
    root = f"conformance-{uuid.uuid4().hex[:10]}"
    async with open_store() as store:
        try:
            await asyncio.wait_for(body(owner, store, root), SLACK * 20)
        finally:
            with contextlib.suppress(KVStoreError):
                await store.delete_tree(root)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Await ``predicate`` until it holds; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def pass_time(seconds: float) -> None:
    """Sleep on purpose: only where the test checks that something does *not* happen."""
    await asyncio.sleep(seconds)


def ttl_bound_to_session(store: AsyncStore) -> bool:
    return bool(getattr(store, "ttl_bound_to_session", False))


@contextlib.asynccontextmanager
async def peer_of(store: AsyncStore) -> AsyncIterator[AsyncStore]:
    """A second client of the same store (the store itself when it is private)."""
    if not type(store).shared_across_processes:
        yield store
        return
    async with kvstore.aio.new_store(store.backend, store.addrs, store.config) as other:
        yield other


async def next_matching(watch: AsyncWatch[Any], predicate: Callable[[Any], bool], timeout: float = SLACK) -> Any:
    """Read the watch until an item satisfies ``predicate``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail("the watch did not deliver the expected state in time")
        item = await watch.next(timeout=remaining)
        if predicate(item):
            return item


def absent(store: AsyncStore, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not await store.exists(key)

    return check


class AsyncStoreConformance:
    """Subclass with an ``open_store`` fixture; every case below then runs against it."""

    # -- put / get / delete / exists --------------------------------------------
    @async_case
    async def test_put_then_get(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/k", b"v")
        pair = await store.get(f"{root}/k")
        assert pair == KVPair(f"{root}/k", b"v", pair.last_index)
        assert pair.last_index > 0

    @async_case
    async def test_values_are_bytes_verbatim(self, store: AsyncStore, root: str) -> None:
        every_byte = bytes(range(256))
        await store.put(f"{root}/bin", every_byte)
        assert (await store.get(f"{root}/bin")).value == every_byte
        await store.put(f"{root}/empty", b"")
        assert (await store.get(f"{root}/empty")).value == b""
        await store.put(f"{root}/ba", bytearray(b"xy"))  # type: ignore[arg-type]
        assert (await store.get(f"{root}/ba")).value == b"xy"

    @async_case
    async def test_get_missing_raises(self, store: AsyncStore, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            await store.get(f"{root}/missing")

    @async_case
    async def test_key_normalisation(self, store: AsyncStore, root: str) -> None:
        await store.put(f"/{root}/a/b/", b"1")
        for spelling in (f"{root}/a/b", f"/{root}/a/b", f"{root}/a/b/", f"{root}//a/b"):
            pair = await store.get(spelling)
            assert (pair.key, pair.value) == (f"{root}/a/b", b"1")
        await store.put(f"{root}/a/b", b"2")
        assert [p.value for p in await store.list(root)] == [b"2"]

    @async_case
    async def test_put_overwrites_and_changes_index(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/k", b"1")
        first = await store.get(f"{root}/k")
        await store.put(f"{root}/k", b"2")
        second = await store.get(f"{root}/k")
        assert second.value == b"2"
        assert second.last_index != first.last_index

    @async_case
    async def test_delete_and_exists(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/k", b"v")
        assert await store.exists(f"{root}/k")
        await store.delete(f"{root}/k")
        assert not await store.exists(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            await store.get(f"{root}/k")
        await store.delete(f"{root}/k")  # absent: no error

    @async_case
    async def test_bad_arguments(self, store: AsyncStore, root: str) -> None:
        for empty in ("", "/", "//"):
            with pytest.raises(InvalidArgumentError, match="empty key"):
                await store.put(empty, b"v")
            with pytest.raises(InvalidArgumentError):
                await store.get(empty)
        with pytest.raises(InvalidArgumentError, match="bytes"):
            await store.put(f"{root}/k", "text")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="bytes"):
            await store.put(f"{root}/k", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="ttl"):
            await store.put(f"{root}/k", b"v", ttl=0)
        with pytest.raises(InvalidArgumentError, match="ttl"):
            await store.put(f"{root}/k", b"v", ttl=-1)
        assert not await store.exists(f"{root}/k")

    # -- list / delete_tree -------------------------------------------------------
    @async_case
    async def test_list_at_any_depth_sorted(self, store: AsyncStore, root: str) -> None:
        for key in ("b", "a/x", "a/y/z", "a/y/w", "c/d/e/f"):
            await store.put(f"{root}/{key}", key.encode())
        assert keys_of(await store.list(root)) == [f"{root}/{k}" for k in ("a/x", "a/y/w", "a/y/z", "b", "c/d/e/f")]
        assert keys_of(await store.list(f"{root}/a")) == [f"{root}/a/x", f"{root}/a/y/w", f"{root}/a/y/z"]
        assert keys_of(await store.list(f"/{root}/a/y/")) == [f"{root}/a/y/w", f"{root}/a/y/z"]
        assert [p.value for p in await store.list(f"{root}/c")] == [b"c/d/e/f"]

    @async_case
    async def test_list_excludes_directory_itself(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/dir", b"marker", is_dir=True)
        await store.put(f"{root}/dir/child", b"c")
        assert keys_of(await store.list(f"{root}/dir")) == [f"{root}/dir/child"]

    @async_case
    async def test_list_works_on_segments(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/a/x", b"1")
        await store.put(f"{root}/ab/c", b"2")
        await store.put(f"{root}/a-b", b"3")
        assert keys_of(await store.list(f"{root}/a")) == [f"{root}/a/x"]

    @async_case
    async def test_list_missing_directory(self, store: AsyncStore, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            await store.list(f"{root}/nothing")

    @async_case
    async def test_list_existing_empty_directory(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/empty", b"", is_dir=True)
        assert await store.list(f"{root}/empty") == []

    @async_case
    async def test_delete_tree(self, store: AsyncStore, root: str) -> None:
        for key in ("a", "a/b", "a/b/c", "ab", "ab/c", "z"):
            await store.put(f"{root}/{key}", b"v")
        await store.delete_tree(f"{root}/a")
        assert keys_of(await store.list(root)) == [f"{root}/ab", f"{root}/ab/c", f"{root}/z"]
        await store.delete_tree(f"{root}/missing")  # absent: no error

    # -- TTL ------------------------------------------------------------------------
    @async_case
    async def test_ttl_key_exists_before_it_runs_out(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/t", b"v", ttl=30)
        assert (await store.get(f"{root}/t")).value == b"v"
        assert keys_of(await store.list(root)) == [f"{root}/t"]

    @async_case
    async def test_ttl_expiry(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/t", b"v", ttl=1)
        if ttl_bound_to_session(store):
            await pass_time(1.5)
            assert await store.exists(f"{root}/t")
            return
        assert await store.exists(f"{root}/t")
        await wait_until(absent(store, f"{root}/t"), 1 + SLACK, "the TTL key to vanish")
        with pytest.raises(KeyNotFoundError):
            await store.list(root)

    @async_case
    async def test_ttl_key_of_a_writer_that_went_away_vanishes(self, store: AsyncStore, root: str) -> None:
        async with peer_of(store) as writer:
            await writer.put(f"{root}/t", b"v", ttl=1)
            assert await store.exists(f"{root}/t")
        await wait_until(absent(store, f"{root}/t"), 1 + SLACK, "the TTL key to vanish")

    @async_case
    async def test_put_without_ttl_makes_key_permanent(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/t", b"v", ttl=1)
        await store.put(f"{root}/t", b"w")
        await pass_time(1.5)
        assert (await store.get(f"{root}/t")).value == b"w"

    @async_case
    async def test_put_again_refreshes_ttl(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/t", b"v", ttl=2)
        await pass_time(1.2)
        await store.put(f"{root}/t", b"v", ttl=2)
        await pass_time(1.2)  # 2.4 s after the first put: alive only if refreshed
        assert await store.exists(f"{root}/t")

    # -- watch ------------------------------------------------------------------------
    @async_case
    async def test_watch_missing_key_raises(self, store: AsyncStore, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            async with store.watch(f"{root}/missing"):
                pass
        with pytest.raises(KeyNotFoundError):
            async for _ in store.watch(f"{root}/missing"):
                pass

    @async_case
    async def test_watch_first_item_and_every_change(self, store: AsyncStore, root: str) -> None:
        key = f"{root}/w"
        await store.put(key, b"0")
        async with peer_of(store) as writer, store.watch(key) as watch:
            first = await watch.next(timeout=SLACK)
            assert (first.key, first.value) == (key, b"0")
            for n in range(1, 5):
                await writer.put(key, str(n).encode())
                item = await watch.next(timeout=SLACK)
                assert (item.key, item.value) == (key, str(n).encode())

    @async_case
    async def test_watch_ends_when_key_deleted(self, store: AsyncStore, root: str) -> None:
        key = f"{root}/w"
        await store.put(key, b"0")
        async with store.watch(key) as watch:
            assert (await watch.next(timeout=SLACK)).value == b"0"
            await store.delete(key)
            with pytest.raises(StopAsyncIteration):
                await next_matching(watch, lambda _: False)

    @async_case
    async def test_watch_close_from_another_task(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/w", b"0")
        watch = store.watch(f"{root}/w")
        seen: list[KVPair] = []

        async def read() -> None:
            async for pair in watch:
                seen.append(pair)

        reader = asyncio.create_task(read())
        await wait_until(_holds(lambda: len(seen) == 1), SLACK, "the first item")
        await watch.aclose()
        await asyncio.wait_for(reader, 1.0)  # TimeoutError: iteration did not end within 1 s of aclose()

    @async_case
    async def test_watch_tree_close_from_another_task(self, store: AsyncStore, root: str) -> None:
        watch = store.watch_tree(root)

        async def read() -> None:
            async for _ in watch:
                pass

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)
        await watch.aclose()
        await asyncio.wait_for(reader, 1.0)

    @async_case
    async def test_watch_ends_when_its_reader_is_cancelled(self, store: AsyncStore, root: str) -> None:
        await store.put(f"{root}/w", b"0")
        watch = store.watch(f"{root}/w")
        seen: list[KVPair] = []

        async def read() -> None:
            async for pair in watch:
                seen.append(pair)

        reader = asyncio.create_task(read())
        await wait_until(_holds(lambda: len(seen) == 1), SLACK, "the first item")
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert watch.closed
        with pytest.raises(StopAsyncIteration):
            await watch.next(timeout=SLACK)

    # -- watch_tree ---------------------------------------------------------------------
    @async_case
    async def test_watch_tree_first_item(self, store: AsyncStore, root: str) -> None:
        async with store.watch_tree(f"{root}/none") as watch:
            assert await watch.next(timeout=SLACK) == []
        await store.put(f"{root}/d/a", b"1")
        async with store.watch_tree(f"{root}/d") as watch:
            assert keys_of(await watch.next(timeout=SLACK)) == [f"{root}/d/a"]

    @async_case
    async def test_watch_tree_add_change_delete(self, store: AsyncStore, root: str) -> None:
        d = f"{root}/d"
        async with peer_of(store) as writer, store.watch_tree(d) as watch:
            assert await watch.next(timeout=SLACK) == []
            await writer.put(f"{d}/a", b"1")
            assert [(p.key, p.value) for p in await next_matching(watch, bool)] == [(f"{d}/a", b"1")]
            await writer.put(f"{d}/b/deep", b"2")
            items = await next_matching(watch, lambda ps: len(ps) == 2)
            assert [(p.key, p.value) for p in items] == [(f"{d}/a", b"1"), (f"{d}/b/deep", b"2")]
            await writer.put(f"{d}/a", b"changed")
            items = await next_matching(watch, lambda ps: ps and ps[0].value == b"changed")
            assert keys_of(items) == [f"{d}/a", f"{d}/b/deep"]
            await writer.put(f"{root}/dx/not-below", b"x")  # a sibling that shares the name's start
            await writer.delete(f"{d}/a")
            items = await next_matching(watch, lambda ps: len(ps) == 1)
            assert keys_of(items) == [f"{d}/b/deep"]
            await writer.delete_tree(d)
            assert await next_matching(watch, lambda ps: ps == []) == []

    @async_case
    async def test_watch_tree_sees_ttl_expiry(self, store: AsyncStore, root: str) -> None:
        d = f"{root}/d"
        await store.put(f"{d}/stays", b"1")
        async with store.watch_tree(d) as watch:
            assert keys_of(await watch.next(timeout=SLACK)) == [f"{d}/stays"]
            async with peer_of(store) as writer:
                await writer.put(f"{d}/ttl", b"2", ttl=1)
                items = await next_matching(watch, lambda ps: len(ps) == 2)
                assert keys_of(items) == [f"{d}/stays", f"{d}/ttl"]
            items = await next_matching(watch, lambda ps: len(ps) == 1, timeout=1 + SLACK)
            assert keys_of(items) == [f"{d}/stays"]

    # -- atomic operations ------------------------------------------------------------------
    @async_case
    async def test_atomic_put_create(self, store: AsyncStore, root: str) -> None:
        created = await store.atomic_put(f"{root}/k", b"v", None)
        assert (created.key, created.value) == (f"{root}/k", b"v")
        assert await store.get(f"{root}/k") == created
        with pytest.raises(KeyExistsError):
            await store.atomic_put(f"{root}/k", b"w", None)
        assert (await store.get(f"{root}/k")).value == b"v"

    @async_case
    async def test_atomic_put_compare_and_swap(self, store: AsyncStore, root: str) -> None:
        first = await store.atomic_put(f"{root}/k", b"1", None)
        second = await store.atomic_put(f"{root}/k", b"2", first)
        assert second.value == b"2" and second.last_index != first.last_index
        assert await store.get(f"{root}/k") == second
        with pytest.raises(KeyModifiedError):
            await store.atomic_put(f"{root}/k", b"3", first)
        assert (await store.get(f"{root}/k")).value == b"2"

    @async_case
    async def test_atomic_put_on_deleted_key(self, store: AsyncStore, root: str) -> None:
        pair = await store.atomic_put(f"{root}/k", b"1", None)
        await store.delete(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            await store.atomic_put(f"{root}/k", b"2", pair)
        assert not await store.exists(f"{root}/k")

    @async_case
    async def test_stale_index_never_matches_a_recreated_key(self, store: AsyncStore, root: str) -> None:
        old = await store.atomic_put(f"{root}/k", b"1", None)
        await store.delete(f"{root}/k")
        await store.put(f"{root}/k", b"1")
        assert (await store.get(f"{root}/k")).last_index != old.last_index
        with pytest.raises(KeyModifiedError):
            await store.atomic_put(f"{root}/k", b"2", old)
        with pytest.raises(KeyModifiedError):
            await store.atomic_delete(f"{root}/k", old)

    @async_case
    async def test_atomic_put_with_ttl(self, store: AsyncStore, root: str) -> None:
        async with peer_of(store) as writer:
            await writer.atomic_put(f"{root}/k", b"v", None, ttl=1)
            assert await store.exists(f"{root}/k")
        await wait_until(absent(store, f"{root}/k"), 1 + SLACK, "the TTL key to vanish")

    @staticmethod
    async def _race(count: int, attempt: Callable[[int], Awaitable[object]]) -> tuple[int, list[BaseException]]:
        start = asyncio.Barrier(count)

        async def contender(n: int) -> object:
            await start.wait()
            return await attempt(n)

        outcomes = await asyncio.gather(*(contender(n) for n in range(count)), return_exceptions=True)
        losses = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(e, KVStoreError) for e in losses), losses
        return count - len(losses), losses

    @async_case
    async def test_atomic_create_race_has_one_winner(self, store: AsyncStore, root: str) -> None:
        async with peer_of(store) as other:
            stores = [store, other]
            wins, losses = await self._race(8, lambda n: stores[n % 2].atomic_put(f"{root}/k", str(n).encode(), None))
        assert wins == 1
        assert len(losses) == 7 and all(isinstance(e, KeyExistsError) for e in losses)

    @async_case
    async def test_compare_and_swap_race_has_one_winner(self, store: AsyncStore, root: str) -> None:
        base = await store.atomic_put(f"{root}/k", b"base", None)
        wins, losses = await self._race(8, lambda _: store.atomic_put(f"{root}/k", b"new", base))
        assert wins == 1
        assert len(losses) == 7 and all(isinstance(e, KeyModifiedError) for e in losses)

    @async_case
    async def test_atomic_delete(self, store: AsyncStore, root: str) -> None:
        first = await store.atomic_put(f"{root}/k", b"1", None)
        with pytest.raises(PreviousNotSpecifiedError):
            await store.atomic_delete(f"{root}/k", None)
        second = await store.atomic_put(f"{root}/k", b"2", first)
        with pytest.raises(KeyModifiedError):
            await store.atomic_delete(f"{root}/k", first)
        assert await store.exists(f"{root}/k")
        await store.atomic_delete(f"{root}/k", second)
        assert not await store.exists(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            await store.atomic_delete(f"{root}/k", second)

    # -- locks -------------------------------------------------------------------------------
    @async_case
    async def test_lock_holds_value_and_releases(self, store: AsyncStore, root: str) -> None:
        lock = store.new_lock(f"{root}/lock", value=b"me", ttl=10)
        lost = await lock.acquire(timeout=SLACK)
        assert isinstance(lost, asyncio.Event) and not lost.is_set()
        assert (await store.get(f"{root}/lock")).value == b"me"
        await lock.release()
        assert not lost.is_set()
        assert not await store.exists(f"{root}/lock")
        await lock.release()  # not held: no error

    @async_case
    async def test_lock_timeout_while_held(self, store: AsyncStore, root: str) -> None:
        async with peer_of(store) as other:
            async with store.new_lock(f"{root}/lock"):
                with pytest.raises(CannotLockError):
                    await other.new_lock(f"{root}/lock").acquire(timeout=0.5)
            lost = await other.new_lock(f"{root}/lock").acquire(timeout=SLACK)
            assert not lost.is_set()

    @async_case
    async def test_lock_waiter_gets_it_on_release(self, store: AsyncStore, root: str) -> None:
        holder = store.new_lock(f"{root}/lock", value=b"first")
        await holder.acquire(timeout=SLACK)
        async with peer_of(store) as other:
            waiter = other.new_lock(f"{root}/lock", value=b"second")
            waiting = asyncio.create_task(waiter.acquire(timeout=SLACK * 2))
            await pass_time(0.3)
            assert not waiting.done()
            await holder.release()
            await asyncio.wait_for(waiting, SLACK)
            assert (await store.get(f"{root}/lock")).value == b"second"
            await waiter.release()

    @async_case
    async def test_lock_mutual_exclusion_among_tasks(self, store: AsyncStore, root: str) -> None:
        inside = 0
        most_inside = 0
        entries = 0

        async def worker(n: int) -> None:
            nonlocal inside, most_inside, entries
            lock = store.new_lock(f"{root}/lock", value=str(n).encode(), ttl=10)
            for _ in range(3):
                await lock.acquire(timeout=SLACK * 6)
                inside += 1
                most_inside = max(most_inside, inside)
                entries += 1
                await asyncio.sleep(0.005)  # work inside the critical section
                inside -= 1
                await lock.release()

        await asyncio.gather(*(worker(n) for n in range(8)))
        assert entries == 24
        assert most_inside == 1

    @async_case
    async def test_lock_lost_when_its_key_is_deleted(self, store: AsyncStore, root: str) -> None:
        lock = store.new_lock(f"{root}/lock", value=b"me", ttl=2)
        lost = await lock.acquire(timeout=SLACK)
        async with peer_of(store) as other:
            await other.delete(f"{root}/lock")
        await asyncio.wait_for(lost.wait(), 2 + SLACK)  # TimeoutError: the lost-event was not set
        await lock.release()

    # -- across processes ---------------------------------------------------------------------
    @staticmethod
    def _needs_processes(store: AsyncStore) -> None:
        if not type(store).shared_across_processes:
            pytest.skip(f"{type(store).__name__} is private to one object: nothing crosses processes")

    @async_case
    async def test_write_in_one_process_reaches_watch_in_another(self, store: AsyncStore, root: str) -> None:
        self._needs_processes(store)
        async with store.watch_tree(f"{root}/d") as watch:
            assert await watch.next(timeout=SLACK) == []
            with _child(_child_put, store, f"{root}/d/k", b"from-child") as child:
                assert await child.recv() == "done"
            items = await next_matching(watch, bool)
            assert [(p.key, p.value) for p in items] == [(f"{root}/d/k", b"from-child")]

    @async_case
    async def test_lock_mutual_exclusion_between_processes(self, store: AsyncStore, root: str) -> None:
        self._needs_processes(store)
        journal = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kvstore-aio-journal-{uuid.uuid4().hex}")
        try:
            with (
                _child(_child_lock_loop, store, f"{root}/lock", journal) as a,
                _child(_child_lock_loop, store, f"{root}/lock", journal) as b,
            ):
                assert await a.recv(SLACK * 6) == "done"
                assert await b.recv(SLACK * 6) == "done"
            with open(journal) as fh:
                lines = fh.read().split()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(journal)
        assert len(lines) == 20
        for enter, leave in zip(lines[::2], lines[1::2], strict=True):
            assert enter.startswith("enter:") and leave == "leave:" + enter[len("enter:") :], lines

    @async_case
    async def test_dead_holder_loses_lock_within_ttl(self, store: AsyncStore, root: str) -> None:
        self._needs_processes(store)
        with _child(_child_hold_lock, store, f"{root}/lock", 2.0) as child:
            assert await child.recv(SLACK * 2) == "held"
            with pytest.raises(CannotLockError):
                await store.new_lock(f"{root}/lock").acquire(timeout=0.2)
            _kill(child, signal.SIGKILL)
            lost = await store.new_lock(f"{root}/lock", value=b"next").acquire(timeout=2.0 + SLACK)
            assert not lost.is_set()

    @async_case
    async def test_lost_event_when_the_lock_ttl_runs_out(self, store: AsyncStore, root: str) -> None:
        """A holder frozen past its TTL (SIGSTOP: a long GC pause, a suspended VM) learns it lost the lock."""
        self._needs_processes(store)
        with _child(_child_report_loss, store, f"{root}/lock", 2.0) as child:
            assert await child.recv(SLACK * 2) == "held"
            _kill(child, signal.SIGSTOP)
            try:
                await store.new_lock(f"{root}/lock", value=b"taker").acquire(timeout=2.0 + SLACK)
            finally:
                _kill(child, signal.SIGCONT)
            assert await child.recv(2.0 + SLACK) == "lost"


def _holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


# -- child processes of the cross-process cases ----------------------------------------------
# Module-level functions, so the "spawn" start method can find them by name. A child runs
# its own event loop over the async API; the parent waits on the pipe without blocking its loop.


async def _readable(conn: Connection, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not conn.poll():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class _ChildHandle:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    async def recv(self, timeout: float = SLACK * 3) -> Any:
        if not await _readable(self.conn, timeout):
            pytest.fail("the child process did not answer in time")
        return self.conn.recv()


@contextlib.contextmanager
def _child(target: Callable[..., Coroutine[Any, Any, None]], store: AsyncStore, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_child_main,
        args=(target, theirs, store.backend, store.addrs, store.config, args),
        daemon=True,
    )
    process.start()
    theirs.close()
    try:
        yield _ChildHandle(process, ours)
    finally:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.join(timeout=SLACK)
        ours.close()


def _kill(child: _ChildHandle, signum: int) -> None:
    assert child.process.pid is not None
    os.kill(child.process.pid, signum)
    if signum == signal.SIGKILL:
        child.process.join(timeout=SLACK)


def _child_main(
    target: Callable[..., Coroutine[Any, Any, None]],
    conn: Connection,
    backend: str,
    addrs: list[str],
    config: Config,
    args: tuple[Any, ...],
) -> None:
    async def main() -> None:
        async with kvstore.aio.new_store(backend, addrs, config) as store:
            await target(store, conn, *args)

    asyncio.run(main())


async def _child_put(store: AsyncStore, conn: Connection, key: str, value: bytes) -> None:
    await store.put(key, value)
    conn.send("done")


async def _child_lock_loop(store: AsyncStore, conn: Connection, key: str, journal: str) -> None:
    lock = store.new_lock(key, value=str(os.getpid()).encode(), ttl=10)
    for _ in range(5):
        await lock.acquire(timeout=SLACK * 6)
        with open(journal, "a") as fh:
            fh.write(f"enter:{os.getpid()}\n")
        await asyncio.sleep(0.02)  # work inside the critical section
        with open(journal, "a") as fh:
            fh.write(f"leave:{os.getpid()}\n")
        await lock.release()
    conn.send("done")


async def _child_hold_lock(store: AsyncStore, conn: Connection, key: str, ttl: float) -> None:
    await store.new_lock(key, value=b"child", ttl=ttl).acquire(timeout=SLACK)
    conn.send("held")
    await _readable(conn, SLACK * 30)  # until killed


async def _child_report_loss(store: AsyncStore, conn: Connection, key: str, ttl: float) -> None:
    lost = await store.new_lock(key, value=b"child", ttl=ttl).acquire(timeout=SLACK)
    conn.send("held")
    try:
        await asyncio.wait_for(lost.wait(), ttl + SLACK * 3)
    except TimeoutError:
        conn.send("kept")
    else:
        conn.send("lost")


__all__ = ["AsyncStoreConformance", "StoreOpener", "async_case", "next_matching", "pass_time", "peer_of", "wait_until"]
