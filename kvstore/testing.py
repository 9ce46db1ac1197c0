"""The conformance suite: the contract of :class:`kvstore.Store`, as tests.

Every backend runs these tests unchanged. To run them against a backend,
subclass :class:`StoreConformance` in a pytest module and give it a ``store``
fixture that yields an open store::

    import kvstore
    import pytest
    from kvstore.testing import StoreConformance

    class TestMyBackend(StoreConformance):
        @pytest.fixture
        def store(self):
            with kvstore.new_store("mybackend", ["127.0.0.1:1234"]) as s:
                yield s

Each test works below a fresh random directory, so the fixture may share one
server (and one store prefix) across tests. Tests that need a second client
open one with ``kvstore.new_store(store.backend, store.addrs, store.config)``;
the cross-process tests do the same in child processes, so the backend must
be findable by name there (an entry point in the ``kvstore.backends`` group,
or a built-in). A store whose class says ``shared_across_processes = False``
(the in-process ``memory`` store) is its own second client, and the
cross-process tests do not apply to it.

A backend whose TTL keys live as long as their writer's session (ZooKeeper's
ephemeral nodes) sets ``ttl_bound_to_session = True``: its TTL keys are then
checked to vanish when the writer goes away, not while it lives.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest

import kvstore
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
    Store,
)

#: Slack for conditions that depend on a backend's timers (TTL expiry,
#: session timeouts): generous so a loaded 2-core CI machine does not flake.
SLACK = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def let_time_pass(seconds: float) -> None:
    """Sleep on purpose: only where the test checks that something does *not* happen."""
    time.sleep(seconds)


def ttl_bound_to_session(store: Store) -> bool:
    return bool(getattr(store, "ttl_bound_to_session", False))


@contextlib.contextmanager
def peer_of(store: Store) -> Iterator[Store]:
    """A second client of the same store (the store itself when it is private)."""
    if not type(store).shared_across_processes:
        yield store
        return
    other = kvstore.new_store(store.backend, store.addrs, store.config)
    try:
        yield other
    finally:
        other.close()


def next_matching(watch: kvstore.Watch[Any], predicate: Callable[[Any], bool], timeout: float = SLACK) -> Any:
    """Read the watch until an item satisfies ``predicate``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail("the watch did not deliver the expected state in time")
        item = watch.next(timeout=remaining)
        if predicate(item):
            return item


def keys_of(pairs: list[KVPair]) -> list[str]:
    return [p.key for p in pairs]


class StoreConformance:
    """Subclass with a ``store`` fixture; every test below then runs against it."""

    @pytest.fixture
    def root(self, store: Store) -> Iterator[str]:
        """A fresh directory for one test, removed after it."""
        name = f"conformance-{uuid.uuid4().hex[:10]}"
        yield name
        with contextlib.suppress(KVStoreError):
            store.delete_tree(name)

    # -- put / get / delete / exists --------------------------------------------
    def test_put_then_get(self, store: Store, root: str) -> None:
        store.put(f"{root}/k", b"v")
        pair = store.get(f"{root}/k")
        assert pair == KVPair(f"{root}/k", b"v", pair.last_index)
        assert pair.last_index > 0

    def test_values_are_bytes_verbatim(self, store: Store, root: str) -> None:
        every_byte = bytes(range(256))
        store.put(f"{root}/bin", every_byte)
        assert store.get(f"{root}/bin").value == every_byte
        store.put(f"{root}/empty", b"")
        assert store.get(f"{root}/empty").value == b""
        store.put(f"{root}/ba", bytearray(b"xy"))  # type: ignore[arg-type]
        assert store.get(f"{root}/ba").value == b"xy"

    def test_get_missing_raises(self, store: Store, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            store.get(f"{root}/missing")

    def test_key_normalisation(self, store: Store, root: str) -> None:
        store.put(f"/{root}/a/b/", b"1")
        for spelling in (f"{root}/a/b", f"/{root}/a/b", f"{root}/a/b/", f"{root}//a/b"):
            assert store.get(spelling).value == b"1"
            assert store.get(spelling).key == f"{root}/a/b"
        store.put(f"{root}/a/b", b"2")
        assert [p.value for p in store.list(root)] == [b"2"]

    def test_put_overwrites_and_changes_index(self, store: Store, root: str) -> None:
        store.put(f"{root}/k", b"1")
        first = store.get(f"{root}/k")
        store.put(f"{root}/k", b"2")
        second = store.get(f"{root}/k")
        assert second.value == b"2"
        assert second.last_index != first.last_index

    def test_delete_and_exists(self, store: Store, root: str) -> None:
        store.put(f"{root}/k", b"v")
        assert store.exists(f"{root}/k")
        store.delete(f"{root}/k")
        assert not store.exists(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            store.get(f"{root}/k")
        store.delete(f"{root}/k")  # absent: no error

    def test_bad_arguments(self, store: Store, root: str) -> None:
        for empty in ("", "/", "//"):
            with pytest.raises(InvalidArgumentError, match="empty key"):
                store.put(empty, b"v")
            with pytest.raises(InvalidArgumentError):
                store.get(empty)
        with pytest.raises(InvalidArgumentError, match="bytes"):
            store.put(f"{root}/k", "text")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="bytes"):
            store.put(f"{root}/k", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="ttl"):
            store.put(f"{root}/k", b"v", ttl=0)
        with pytest.raises(InvalidArgumentError, match="ttl"):
            store.put(f"{root}/k", b"v", ttl=-1)
        assert not store.exists(f"{root}/k")

    # -- list / delete_tree -------------------------------------------------------
    def test_list_at_any_depth_sorted(self, store: Store, root: str) -> None:
        for key in ("b", "a/x", "a/y/z", "a/y/w", "c/d/e/f"):
            store.put(f"{root}/{key}", key.encode())
        assert keys_of(store.list(root)) == [f"{root}/{k}" for k in ("a/x", "a/y/w", "a/y/z", "b", "c/d/e/f")]
        assert keys_of(store.list(f"{root}/a")) == [f"{root}/a/x", f"{root}/a/y/w", f"{root}/a/y/z"]
        assert keys_of(store.list(f"/{root}/a/y/")) == [f"{root}/a/y/w", f"{root}/a/y/z"]
        assert [p.value for p in store.list(f"{root}/c")] == [b"c/d/e/f"]

    def test_list_excludes_directory_itself(self, store: Store, root: str) -> None:
        store.put(f"{root}/dir", b"marker", is_dir=True)
        store.put(f"{root}/dir/child", b"c")
        assert keys_of(store.list(f"{root}/dir")) == [f"{root}/dir/child"]

    def test_list_works_on_segments(self, store: Store, root: str) -> None:
        store.put(f"{root}/a/x", b"1")
        store.put(f"{root}/ab/c", b"2")
        store.put(f"{root}/a-b", b"3")
        assert keys_of(store.list(f"{root}/a")) == [f"{root}/a/x"]

    def test_list_missing_directory(self, store: Store, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            store.list(f"{root}/nothing")

    def test_list_existing_empty_directory(self, store: Store, root: str) -> None:
        store.put(f"{root}/empty", b"", is_dir=True)
        assert store.list(f"{root}/empty") == []

    def test_delete_tree(self, store: Store, root: str) -> None:
        for key in ("a", "a/b", "a/b/c", "ab", "ab/c", "z"):
            store.put(f"{root}/{key}", b"v")
        store.delete_tree(f"{root}/a")
        assert keys_of(store.list(root)) == [f"{root}/ab", f"{root}/ab/c", f"{root}/z"]
        store.delete_tree(f"{root}/missing")  # absent: no error

    # -- TTL ------------------------------------------------------------------------
    def test_ttl_key_exists_before_it_runs_out(self, store: Store, root: str) -> None:
        store.put(f"{root}/t", b"v", ttl=30)
        assert store.get(f"{root}/t").value == b"v"
        assert keys_of(store.list(root)) == [f"{root}/t"]

    def test_ttl_expiry(self, store: Store, root: str) -> None:
        store.put(f"{root}/t", b"v", ttl=1)
        if ttl_bound_to_session(store):
            # The contract for such backends: the key lives while its writer does.
            let_time_pass(1.5)
            assert store.exists(f"{root}/t")
            return
        assert store.exists(f"{root}/t")
        wait_until(lambda: not store.exists(f"{root}/t"), 1 + SLACK, "the TTL key to vanish")
        with pytest.raises(KeyNotFoundError):
            store.list(root)

    def test_ttl_key_of_a_writer_that_went_away_vanishes(self, store: Store, root: str) -> None:
        with peer_of(store) as writer:
            writer.put(f"{root}/t", b"v", ttl=1)
            assert store.exists(f"{root}/t")
        wait_until(lambda: not store.exists(f"{root}/t"), 1 + SLACK, "the TTL key to vanish")

    def test_put_without_ttl_makes_key_permanent(self, store: Store, root: str) -> None:
        store.put(f"{root}/t", b"v", ttl=1)
        store.put(f"{root}/t", b"w")
        let_time_pass(1.5)
        assert store.get(f"{root}/t").value == b"w"

    def test_put_again_refreshes_ttl(self, store: Store, root: str) -> None:
        store.put(f"{root}/t", b"v", ttl=2)
        let_time_pass(1.2)
        store.put(f"{root}/t", b"v", ttl=2)
        let_time_pass(1.2)  # 2.4 s after the first put: alive only if refreshed
        assert store.exists(f"{root}/t")

    # -- watch ------------------------------------------------------------------------
    def test_watch_missing_key_raises(self, store: Store, root: str) -> None:
        with pytest.raises(KeyNotFoundError):
            store.watch(f"{root}/missing")

    def test_watch_first_item_and_every_change(self, store: Store, root: str) -> None:
        key = f"{root}/w"
        store.put(key, b"0")
        with peer_of(store) as writer, store.watch(key) as watch:
            first = watch.next(timeout=SLACK)
            assert (first.key, first.value) == (key, b"0")
            for n in range(1, 5):
                writer.put(key, str(n).encode())
                item = watch.next(timeout=SLACK)
                assert (item.key, item.value) == (key, str(n).encode())

    def test_watch_ends_when_key_deleted(self, store: Store, root: str) -> None:
        key = f"{root}/w"
        store.put(key, b"0")
        with store.watch(key) as watch:
            assert watch.next(timeout=SLACK).value == b"0"
            store.delete(key)
            with pytest.raises(StopIteration):
                next_matching(watch, lambda _: False)

    def test_watch_close_from_another_thread(self, store: Store, root: str) -> None:
        store.put(f"{root}/w", b"0")
        watch = store.watch(f"{root}/w")
        seen: list[KVPair] = []
        reader = threading.Thread(target=lambda: seen.extend(watch), daemon=True)
        reader.start()
        wait_until(lambda: len(seen) == 1, SLACK, "the first item")
        watch.close()
        reader.join(timeout=1.0)
        assert not reader.is_alive(), "iteration did not end within 1 s of close()"

    def test_watch_tree_close_from_another_thread(self, store: Store, root: str) -> None:
        watch = store.watch_tree(root)
        ended = threading.Event()

        def read() -> None:
            for _ in watch:
                pass
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        watch.close()
        assert ended.wait(1.0), "iteration did not end within 1 s of close()"

    # -- watch_tree ---------------------------------------------------------------------
    def test_watch_tree_first_item(self, store: Store, root: str) -> None:
        with store.watch_tree(f"{root}/none") as watch:
            assert watch.next(timeout=SLACK) == []
        store.put(f"{root}/d/a", b"1")
        with store.watch_tree(f"{root}/d") as watch:
            assert keys_of(watch.next(timeout=SLACK)) == [f"{root}/d/a"]

    def test_watch_tree_add_change_delete(self, store: Store, root: str) -> None:
        d = f"{root}/d"
        with peer_of(store) as writer, store.watch_tree(d) as watch:
            assert watch.next(timeout=SLACK) == []
            writer.put(f"{d}/a", b"1")
            assert [(p.key, p.value) for p in next_matching(watch, bool)] == [(f"{d}/a", b"1")]
            writer.put(f"{d}/b/deep", b"2")
            items = next_matching(watch, lambda ps: len(ps) == 2)
            assert [(p.key, p.value) for p in items] == [(f"{d}/a", b"1"), (f"{d}/b/deep", b"2")]
            writer.put(f"{d}/a", b"changed")
            items = next_matching(watch, lambda ps: ps and ps[0].value == b"changed")
            assert keys_of(items) == [f"{d}/a", f"{d}/b/deep"]
            writer.put(f"{root}/dx/not-below", b"x")  # a sibling that shares the name's start
            writer.delete(f"{d}/a")
            items = next_matching(watch, lambda ps: len(ps) == 1)
            assert keys_of(items) == [f"{d}/b/deep"]
            writer.delete_tree(d)
            assert next_matching(watch, lambda ps: ps == []) == []

    def test_watch_tree_sees_ttl_expiry(self, store: Store, root: str) -> None:
        d = f"{root}/d"
        store.put(f"{d}/stays", b"1")
        with store.watch_tree(d) as watch:
            assert keys_of(watch.next(timeout=SLACK)) == [f"{d}/stays"]
            with peer_of(store) as writer:
                writer.put(f"{d}/ttl", b"2", ttl=1)
                items = next_matching(watch, lambda ps: len(ps) == 2)
                assert keys_of(items) == [f"{d}/stays", f"{d}/ttl"]
            items = next_matching(watch, lambda ps: len(ps) == 1, timeout=1 + SLACK)
            assert keys_of(items) == [f"{d}/stays"]

    # -- atomic operations ------------------------------------------------------------------
    def test_atomic_put_create(self, store: Store, root: str) -> None:
        created = store.atomic_put(f"{root}/k", b"v", None)
        assert (created.key, created.value) == (f"{root}/k", b"v")
        assert store.get(f"{root}/k") == created
        with pytest.raises(KeyExistsError):
            store.atomic_put(f"{root}/k", b"w", None)
        assert store.get(f"{root}/k").value == b"v"

    def test_atomic_put_compare_and_swap(self, store: Store, root: str) -> None:
        first = store.atomic_put(f"{root}/k", b"1", None)
        second = store.atomic_put(f"{root}/k", b"2", first)
        assert second.value == b"2" and second.last_index != first.last_index
        assert store.get(f"{root}/k") == second
        with pytest.raises(KeyModifiedError):
            store.atomic_put(f"{root}/k", b"3", first)
        assert store.get(f"{root}/k").value == b"2"

    def test_atomic_put_on_deleted_key(self, store: Store, root: str) -> None:
        pair = store.atomic_put(f"{root}/k", b"1", None)
        store.delete(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            store.atomic_put(f"{root}/k", b"2", pair)
        assert not store.exists(f"{root}/k")

    def test_stale_index_never_matches_a_recreated_key(self, store: Store, root: str) -> None:
        old = store.atomic_put(f"{root}/k", b"1", None)
        store.delete(f"{root}/k")
        store.put(f"{root}/k", b"1")
        assert store.get(f"{root}/k").last_index != old.last_index
        with pytest.raises(KeyModifiedError):
            store.atomic_put(f"{root}/k", b"2", old)
        with pytest.raises(KeyModifiedError):
            store.atomic_delete(f"{root}/k", old)

    def test_atomic_put_with_ttl(self, store: Store, root: str) -> None:
        with peer_of(store) as writer:
            writer.atomic_put(f"{root}/k", b"v", None, ttl=1)
            assert store.exists(f"{root}/k")
        wait_until(lambda: not store.exists(f"{root}/k"), 1 + SLACK, "the TTL key to vanish")

    @staticmethod
    def _race(count: int, attempt: Callable[[], object]) -> tuple[int, list[BaseException]]:
        start = threading.Barrier(count)
        wins: list[object] = []
        losses: list[BaseException] = []

        def contender() -> None:
            start.wait()
            try:
                wins.append(attempt())
            except KVStoreError as exc:
                losses.append(exc)

        threads = [threading.Thread(target=contender) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SLACK * 3)
        return len(wins), losses

    def test_atomic_create_race_has_one_winner(self, store: Store, root: str) -> None:
        with peer_of(store) as other:
            stores = [store, other]
            counter = iter(range(1000))
            lock = threading.Lock()

            def attempt() -> KVPair:
                with lock:
                    n = next(counter)
                return stores[n % 2].atomic_put(f"{root}/k", str(n).encode(), None)

            wins, losses = self._race(8, attempt)
        assert wins == 1
        assert len(losses) == 7 and all(isinstance(e, KeyExistsError) for e in losses)

    def test_compare_and_swap_race_has_one_winner(self, store: Store, root: str) -> None:
        base = store.atomic_put(f"{root}/k", b"base", None)
        wins, losses = self._race(8, lambda: store.atomic_put(f"{root}/k", b"new", base))
        assert wins == 1
        assert len(losses) == 7 and all(isinstance(e, KeyModifiedError) for e in losses)

    def test_atomic_delete(self, store: Store, root: str) -> None:
        first = store.atomic_put(f"{root}/k", b"1", None)
        with pytest.raises(PreviousNotSpecifiedError):
            store.atomic_delete(f"{root}/k", None)
        second = store.atomic_put(f"{root}/k", b"2", first)
        with pytest.raises(KeyModifiedError):
            store.atomic_delete(f"{root}/k", first)
        assert store.exists(f"{root}/k")
        store.atomic_delete(f"{root}/k", second)
        assert not store.exists(f"{root}/k")
        with pytest.raises(KeyNotFoundError):
            store.atomic_delete(f"{root}/k", second)

    # -- locks -------------------------------------------------------------------------------
    def test_lock_holds_value_and_releases(self, store: Store, root: str) -> None:
        lock = store.new_lock(f"{root}/lock", value=b"me", ttl=10)
        lost = lock.acquire(timeout=SLACK)
        assert isinstance(lost, threading.Event) and not lost.is_set()
        assert store.get(f"{root}/lock").value == b"me"
        lock.release()
        assert not lost.is_set()
        assert not store.exists(f"{root}/lock")
        lock.release()  # not held: no error

    def test_lock_timeout_while_held(self, store: Store, root: str) -> None:
        with peer_of(store) as other:
            with store.new_lock(f"{root}/lock"), pytest.raises(CannotLockError):
                other.new_lock(f"{root}/lock").acquire(timeout=0.5)
            lost = other.new_lock(f"{root}/lock").acquire(timeout=SLACK)
            assert not lost.is_set()

    def test_lock_waiter_gets_it_on_release(self, store: Store, root: str) -> None:
        holder = store.new_lock(f"{root}/lock", value=b"first")
        holder.acquire(timeout=SLACK)
        got = threading.Event()
        with peer_of(store) as other:
            waiter = other.new_lock(f"{root}/lock", value=b"second")

            def wait_for_it() -> None:
                waiter.acquire(timeout=SLACK * 2)
                got.set()

            thread = threading.Thread(target=wait_for_it, daemon=True)
            thread.start()
            let_time_pass(0.3)
            assert not got.is_set()
            holder.release()
            assert got.wait(SLACK)
            assert store.get(f"{root}/lock").value == b"second"
            waiter.release()
            thread.join(timeout=SLACK)

    def test_lock_mutual_exclusion_among_threads(self, store: Store, root: str) -> None:
        inside = 0
        most_inside = 0
        entries = 0
        guard = threading.Lock()
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            nonlocal inside, most_inside, entries
            try:
                lock = store.new_lock(f"{root}/lock", value=str(n).encode(), ttl=10)
                for _ in range(3):
                    lock.acquire(timeout=SLACK * 6)
                    with guard:
                        inside += 1
                        most_inside = max(most_inside, inside)
                        entries += 1
                    time.sleep(0.005)  # work inside the critical section
                    with guard:
                        inside -= 1
                    lock.release()
            except BaseException as exc:  # noqa: BLE001 - a worker thread's failure, any kind, reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SLACK * 8)
        assert not errors, errors
        assert entries == 24
        assert most_inside == 1

    def test_lock_lost_when_its_key_is_deleted(self, store: Store, root: str) -> None:
        lock = store.new_lock(f"{root}/lock", value=b"me", ttl=2)
        lost = lock.acquire(timeout=SLACK)
        with peer_of(store) as other:
            other.delete(f"{root}/lock")
        assert lost.wait(2 + SLACK), "the lost-event was not set"
        lock.release()

    # -- across processes ---------------------------------------------------------------------
    @staticmethod
    def _needs_processes(store: Store) -> None:
        if not type(store).shared_across_processes:
            pytest.skip(f"{type(store).__name__} is private to one object: nothing crosses processes")

    def test_write_in_one_process_reaches_watch_in_another(self, store: Store, root: str) -> None:
        self._needs_processes(store)
        with store.watch_tree(f"{root}/d") as watch:
            assert watch.next(timeout=SLACK) == []
            with _child(_child_put, store, f"{root}/d/k", b"from-child") as child:
                assert child.recv() == "done"
            items = next_matching(watch, bool)
            assert [(p.key, p.value) for p in items] == [(f"{root}/d/k", b"from-child")]

    def test_lock_mutual_exclusion_between_processes(self, store: Store, root: str, tmp_path: Any) -> None:
        self._needs_processes(store)
        journal = os.path.join(str(tmp_path), "journal")
        with (
            _child(_child_lock_loop, store, f"{root}/lock", journal) as a,
            _child(_child_lock_loop, store, f"{root}/lock", journal) as b,
        ):
            assert a.poll(SLACK * 6) and a.recv() == "done"
            assert b.poll(SLACK * 6) and b.recv() == "done"
        with open(journal) as fh:
            lines = fh.read().split()
        assert len(lines) == 20
        for enter, leave in zip(lines[::2], lines[1::2], strict=True):
            assert enter.startswith("enter:") and leave == "leave:" + enter[len("enter:") :], lines

    def test_dead_holder_loses_lock_within_ttl(self, store: Store, root: str) -> None:
        self._needs_processes(store)
        with _child(_child_hold_lock, store, f"{root}/lock", 2.0) as child:
            assert child.poll(SLACK * 2) and child.recv() == "held"
            with pytest.raises(CannotLockError):
                store.new_lock(f"{root}/lock").acquire(timeout=0.2)
            _kill(child, signal.SIGKILL)
            lost = store.new_lock(f"{root}/lock", value=b"next").acquire(timeout=2.0 + SLACK)
            assert not lost.is_set()

    def test_lost_event_when_the_lock_ttl_runs_out(self, store: Store, root: str) -> None:
        """A holder frozen past its TTL (SIGSTOP: a long GC pause, a suspended VM) learns it lost the lock."""
        self._needs_processes(store)
        with _child(_child_report_loss, store, f"{root}/lock", 2.0) as child:
            assert child.poll(SLACK * 2) and child.recv() == "held"
            _kill(child, signal.SIGSTOP)
            try:
                store.new_lock(f"{root}/lock", value=b"taker").acquire(timeout=2.0 + SLACK)
            finally:
                _kill(child, signal.SIGCONT)
            assert child.poll(2.0 + SLACK), "the frozen holder never reported"
            assert child.recv() == "lost"


# -- child processes of the cross-process tests ----------------------------------------------
# Module-level functions, so the "spawn" start method can find them by name.


class _ChildHandle:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def recv(self) -> Any:
        if not self.conn.poll(SLACK * 3):
            pytest.fail("the child process did not answer in time")
        return self.conn.recv()

    def poll(self, timeout: float) -> bool:
        return self.conn.poll(timeout)


@contextlib.contextmanager
def _child(target: Callable[..., None], store: Store, *args: Any) -> Iterator[_ChildHandle]:
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
    target: Callable[..., None],
    conn: Connection,
    backend: str,
    addrs: list[str],
    config: Config,
    args: tuple[Any, ...],
) -> None:
    store = kvstore.new_store(backend, addrs, config)
    try:
        target(store, conn, *args)
    finally:
        store.close()


def _child_put(store: Store, conn: Connection, key: str, value: bytes) -> None:
    store.put(key, value)
    conn.send("done")


def _child_lock_loop(store: Store, conn: Connection, key: str, journal: str) -> None:
    lock = store.new_lock(key, value=str(os.getpid()).encode(), ttl=10)
    for _ in range(5):
        lock.acquire(timeout=SLACK * 6)
        with open(journal, "a") as fh:
            fh.write(f"enter:{os.getpid()}\n")
        time.sleep(0.02)  # work inside the critical section
        with open(journal, "a") as fh:
            fh.write(f"leave:{os.getpid()}\n")
        lock.release()
    conn.send("done")


def _child_hold_lock(store: Store, conn: Connection, key: str, ttl: float) -> None:
    store.new_lock(key, value=b"child", ttl=ttl).acquire(timeout=SLACK)
    conn.send("held")
    conn.recv()  # until killed


def _child_report_loss(store: Store, conn: Connection, key: str, ttl: float) -> None:
    lost = store.new_lock(key, value=b"child", ttl=ttl).acquire(timeout=SLACK)
    conn.send("held")
    conn.send("lost" if lost.wait(ttl + SLACK * 3) else "kept")
