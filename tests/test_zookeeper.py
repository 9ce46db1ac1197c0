"""The ``zk`` backend against a real standalone ZooKeeper 3.8.

The conformance suite, then what is ZooKeeper's own: bare parents, zxids,
sessions per ttl, expiry and reconnection, credentials, unreachable servers.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient  # type: ignore[import-untyped]

import kvstore
from kvstore import Config, KVStoreError, NotReachableError
from kvstore.backends.zookeeper import ZooKeeperStore
from kvstore.testing import SLACK, StoreConformance, next_matching, wait_until
from tests.support.process import free_port
from tests.support.zookeeper import ZooKeeperServer, standalone, zookeeper_installed

pytestmark = pytest.mark.skipif(not zookeeper_installed(), reason="ZooKeeper (and Java) not installed")

PREFIX = "kvstore-test"


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with standalone(tmp_path_factory.mktemp("zookeeper")) as server:
        yield server


class TestZooKeeper(StoreConformance):
    @pytest.fixture
    def store(self, zk_server: ZooKeeperServer) -> Iterator[kvstore.Store]:
        config = Config(connection_timeout=10.0, prefix=PREFIX)
        with kvstore.new_store("zk", [zk_server.address], config) as s:
            yield s


@pytest.fixture
def store(zk_server: ZooKeeperServer) -> Iterator[ZooKeeperStore]:
    with kvstore.from_url(f"zk://{zk_server.address}/{PREFIX}-{uuid.uuid4().hex[:8]}") as s:
        assert isinstance(s, ZooKeeperStore)
        yield s


@pytest.fixture
def raw(zk_server: ZooKeeperServer) -> Iterator[Any]:
    """A plain kazoo client, to look at the znodes themselves."""
    client = KazooClient(hosts=zk_server.address)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


def expire(session_id: int, password: bytes, address: str) -> None:
    """Expire a session on the server, for real: a second client joins it and closes it.

    (The standard way to test expiry: closing the session from another
    connection ends it on the server; the first client hears SESSION_EXPIRED
    when it next talks to the server.)
    """
    twin = KazooClient(hosts=address, client_id=(session_id, password))
    twin.start(timeout=10)
    twin.stop()
    twin.close()


def test_url_form_and_prefix(store: ZooKeeperStore, raw: Any) -> None:
    store.put("a/b", b"v")
    data, _ = raw.get(f"/{store.prefix}/a/b")
    assert data == b"v"


def test_bare_parents_are_not_keys(store: ZooKeeperStore, raw: Any) -> None:
    """Parents made on the way hold no data (null), so they are not keys; an empty value is a key."""
    store.put("p/q/r", b"1")
    assert raw.get(f"/{store.prefix}/p/q")[0] is None
    assert not store.exists("p/q")
    with pytest.raises(kvstore.KeyNotFoundError):
        store.get("p")
    assert [p.key for p in store.list("p")] == ["p/q/r"]
    store.put("p/q", b"")
    assert store.get("p/q").value == b""
    assert [p.key for p in store.list("p")] == ["p/q", "p/q/r"]
    # Deleting a key that has keys below it keeps its znode as a bare parent.
    store.delete("p/q")
    assert not store.exists("p/q")
    assert store.get("p/q/r").value == b"1"
    store.delete("p/q/r")
    with pytest.raises(kvstore.KeyNotFoundError):
        store.list("p")


def test_last_index_is_the_zxid(store: ZooKeeperStore, raw: Any) -> None:
    store.put("k", b"1")
    _, stat = raw.get(f"/{store.prefix}/k")
    assert store.get("k").last_index == stat.mzxid


def test_ttl_key_is_an_ephemeral_node_in_a_session_of_that_timeout(store: ZooKeeperStore, raw: Any) -> None:
    store.put("t", b"v", ttl=2)
    _, stat = raw.get(f"/{store.prefix}/t")
    owners = {s.current_session_id(): s.timeout for s in store.sessions}
    assert owners[stat.ephemeralOwner] == 2
    # A longer ttl reuses that session; a ttl of the main session's timeout or more uses the main one.
    store.put("t", b"v", ttl=5)
    assert raw.get(f"/{store.prefix}/t")[1].ephemeralOwner == stat.ephemeralOwner
    store.put("t", b"v", ttl=60)
    assert owners[raw.get(f"/{store.prefix}/t")[1].ephemeralOwner] == store.session_timeout
    store.put("t", b"w")
    assert raw.get(f"/{store.prefix}/t")[1].ephemeralOwner == 0


def test_ttl_keys_cannot_have_children(store: ZooKeeperStore) -> None:
    store.put("eph", b"v", ttl=5)
    with pytest.raises(kvstore.CallNotSupportedError):
        store.put("eph/child", b"v")
    store.put("dir", b"original")
    store.put("dir/child", b"v")
    with pytest.raises(kvstore.CallNotSupportedError):
        store.put("dir", b"v", ttl=5)
    assert store.get("dir").value == b"original"  # refused untouched


def test_list_of_many_keys(store: ZooKeeperStore, raw: Any) -> None:
    """``list`` pipelines its reads: a few thousand keys, one level and nested, come back whole."""
    transaction = raw.transaction()
    raw.ensure_path(f"/{store.prefix}/many")
    for n in range(2000):
        transaction.create(f"/{store.prefix}/many/n{n:05d}", str(n).encode())
    transaction.commit()
    store.put("many/n00007/deeper", b"d")
    pairs = store.list("many")
    assert len(pairs) == 2001
    assert pairs[0].key == "many/n00000" and pairs[0].value == b"0"
    assert pairs[8].key == "many/n00007/deeper"


def test_root_directory_hides_zookeeper_internals(zk_server: ZooKeeperServer) -> None:
    with kvstore.new_store("zk", [zk_server.address]) as s:
        name = f"root-{uuid.uuid4().hex[:8]}"
        s.put(f"{name}/k", b"v")
        keys = [p.key for p in s.list("")]
        assert f"{name}/k" in keys and not any(k.startswith("zookeeper") for k in keys)
        s.delete_tree(name)


def test_store_down_at_start_raises_within_connection_timeout() -> None:
    port = free_port()  # nobody listens there
    started = time.monotonic()
    with pytest.raises(NotReachableError, match=f"127.0.0.1:{port}"):
        kvstore.new_store("zk", [f"127.0.0.1:{port}"], Config(connection_timeout=1.5))
    # Bounded by the timeout (plus the slack of a loaded machine), not by kazoo's retrying.
    assert time.monotonic() - started < 1.5 + SLACK


def test_calls_fail_with_not_reachable_when_the_server_goes(tmp_path: Path) -> None:
    with standalone(tmp_path / "zk") as server:
        s = kvstore.new_store("zk", [server.address], Config(connection_timeout=1.0))
        try:
            s.put("k", b"v")
            watch = s.watch("k")
            assert watch.next(timeout=SLACK).value == b"v"
            server.kill()
            with pytest.raises(NotReachableError):
                s.get("k")
            with pytest.raises(NotReachableError):
                watch.next(timeout=SLACK)
        finally:
            s.close()


def test_no_client_exception_leaks_for_bad_keys(store: ZooKeeperStore) -> None:
    with pytest.raises(KVStoreError):
        store.put("bad\u0001key", b"v")


def test_session_expiry_recreates_ttl_keys_rearms_watches_and_loses_locks(
    store: ZooKeeperStore, zk_server: ZooKeeperServer
) -> None:
    """After its session expires the store re-creates its ttl keys, keeps watching, reports its locks lost."""
    store.put("eph", b"mine", ttl=30)  # in the main session (30 s > its timeout)
    lost = store.new_lock("lock", value=b"me").acquire(timeout=SLACK)
    watch = store.watch_tree("")
    assert [p.key for p in watch.next(timeout=SLACK)] == ["eph", "lock"]
    main = store.sessions[0]
    old_id = main.current_session_id()
    assert old_id is not None
    expire(old_id, main.client.client_id[1], zk_server.address)
    assert lost.wait(SLACK), "the lock's lost-event was not set"
    wait_until(lambda: main.current_session_id() not in (None, old_id), SLACK, "a new session")
    wait_until(lambda: store.exists("eph"), SLACK, "the ttl key to be re-created")
    assert store.get("eph").value == b"mine"
    # The watch lives on: it saw the lock go and sees new writes.
    next_matching(watch, lambda ps: [p.key for p in ps] == ["eph"])
    with kvstore.new_store(store.backend, store.addrs, store.config) as other:
        other.put("after", b"1")
    next_matching(watch, lambda ps: [p.key for p in ps] == ["after", "eph"])
    watch.close()


def test_expiry_of_a_ttl_session_recreates_its_keys(store: ZooKeeperStore, zk_server: ZooKeeperServer) -> None:
    store.put("short", b"v", ttl=3)
    lost = store.new_lock("short-lock", ttl=3).acquire(timeout=SLACK)
    (session,) = [s for s in store.sessions if s.timeout == 3]
    old_id = session.current_session_id()
    assert old_id is not None
    expire(old_id, session.client.client_id[1], zk_server.address)
    assert lost.wait(SLACK)
    wait_until(lambda: session.current_session_id() not in (None, old_id), SLACK, "a new session")
    wait_until(lambda: store.exists("short"), SLACK, "the ttl key to be re-created")
    assert not store.exists("short-lock")
    # It belongs to the new session: closing the store still takes it away.
    with kvstore.new_store(store.backend, store.addrs, store.config) as other:
        store.close()
        wait_until(lambda: not other.exists("short"), SLACK, "the key to go with its store")


def test_connection_drop_keeps_session_watch_and_lock(tmp_path: Path) -> None:
    """A server restart inside the session timeout: same session, ephemerals and lock kept, watch goes on."""
    with standalone(tmp_path / "zk") as server:
        config = Config(connection_timeout=20.0, options={"session_timeout": "20"})
        with kvstore.new_store("zk", [server.address], config) as s:
            assert isinstance(s, ZooKeeperStore)
            s.put("eph", b"v", ttl=60)
            lost = s.new_lock("lock", value=b"me").acquire(timeout=SLACK)
            watch = s.watch_tree("")
            assert [p.key for p in watch.next(timeout=SLACK)] == ["eph", "lock"]
            session_id = s.sessions[0].current_session_id()
            server.stop()
            server.start()
            wait_until(lambda: s.sessions[0].connected, SLACK * 2, "the reconnection")
            assert s.sessions[0].current_session_id() == session_id
            with kvstore.new_store("zk", [server.address]) as other:
                other.put("after", b"1")
            next_matching(watch, lambda ps: [p.key for p in ps] == ["after", "eph", "lock"])
            assert not lost.is_set()
            assert s.get("lock").value == b"me"
            watch.close()


def test_watch_of_a_key_across_ttl_change(store: ZooKeeperStore) -> None:
    """Making a ttl key permanent swaps its znode atomically; the key's watch sees a change, not an end."""
    store.put("k", b"1", ttl=30)
    with store.watch("k") as watch:
        assert watch.next(timeout=SLACK).value == b"1"
        store.put("k", b"2")
        assert next_matching(watch, lambda p: p.value == b"2").value == b"2"


def test_many_threads_put_and_read(store: ZooKeeperStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.put(f"t{n}/k{i}", str(i).encode(), ttl=5 if i % 2 else None)
                assert store.get(f"t{n}/k{i}").value == str(i).encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SLACK * 3)
    assert not errors
    assert len(store.list("")) == 120


def test_credentials_protect_the_keys(zk_server: ZooKeeperServer) -> None:
    prefix = f"secret-{uuid.uuid4().hex[:8]}"
    config = Config(prefix=prefix, username="alice", password="s3cret")
    with kvstore.new_store("zk", [zk_server.address], config) as alice:
        alice.put("k", b"v")
        assert alice.get("k").value == b"v"
        with kvstore.new_store("zk", [zk_server.address], Config(prefix=prefix)) as nobody:
            with pytest.raises(KVStoreError, match="permission denied") as caught:
                nobody.get("k")
            assert type(caught.value) is KVStoreError
        alice.delete_tree("")


def test_port_that_is_not_zookeeper_is_not_reachable() -> None:
    """Something listens but never answers like ZooKeeper: a timely NotReachableError, not a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(NotReachableError):
            kvstore.new_store("zk", [f"127.0.0.1:{port}"], Config(connection_timeout=1.0))
        assert time.monotonic() - started < 1.0 + SLACK


def test_closing_the_store_ends_its_watches_and_waiting_locks(store: ZooKeeperStore) -> None:
    with kvstore.new_store(store.backend, store.addrs, store.config) as holder:
        holder.new_lock("lock").acquire(timeout=SLACK)
        store.put("k", b"v")
        watch = store.watch("k")
        assert watch.next(timeout=SLACK).value == b"v"
        errors: list[BaseException] = []

        def wait_for_lock() -> None:
            try:
                store.new_lock("lock").acquire()  # no timeout: only the close can end it
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait_for_lock, daemon=True)
        waiter.start()
        store.close()
        waiter.join(timeout=SLACK)
        assert not waiter.is_alive(), "acquire() went on waiting on a closed store"
        assert len(errors) == 1 and isinstance(errors[0], NotReachableError)
        with pytest.raises(StopIteration):
            watch.next(timeout=SLACK)
        with pytest.raises(NotReachableError):
            store.get("k")


def test_watch_tree_converges_under_concurrent_writers(store: ZooKeeperStore) -> None:
    """Writers create, overwrite, delete and re-create keys at random depths at once, then go (their
    ttl keys with them); the watch's last state is exactly what ``list`` then reads (keys, values,
    indexes): no change lost."""
    seen: list[list[kvstore.KVPair]] = []
    watch = store.watch_tree("t")
    reader = threading.Thread(target=lambda: seen.extend(watch), daemon=True)
    reader.start()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rnd = random.Random(seed)
        with kvstore.new_store(store.backend, store.addrs, store.config) as writer:
            for i in range(150):
                key = "t/" + "/".join(rnd.choice("abc") for _ in range(rnd.randint(1, 4)))
                roll = rnd.random()
                try:
                    if roll < 0.5:
                        writer.put(key, str(i).encode(), ttl=30 if rnd.random() < 0.2 else None)
                    elif roll < 0.8:
                        writer.delete(key)
                    elif roll < 0.9:
                        writer.delete_tree(key)
                    else:
                        writer.put(key, b"")
                except kvstore.CallNotSupportedError:
                    pass  # a ttl key cannot have keys below it, nor gain a ttl with keys below
                except BaseException as exc:
                    errors.append(exc)
                    return
        # Closing the writer ends its session: its ttl keys vanish, a change the watch must see too.

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=SLACK * 6)
    assert not errors, errors

    def state() -> list[tuple[str, bytes, int]]:
        try:
            return [(p.key, p.value, p.last_index) for p in store.list("t")]
        except kvstore.KeyNotFoundError:
            return []

    wait_until(
        lambda: bool(seen) and [(p.key, p.value, p.last_index) for p in seen[-1]] == state(),
        SLACK,
        "the watch to show what list() reads",
    )
    watch.close()
    reader.join(timeout=SLACK)


def test_bad_configuration_is_an_argument_error() -> None:
    for addrs, config in (
        ([], Config()),
        (["127.0.0.1:99999"], Config()),
        (["127.0.0.1:2181"], Config(options={"session_timeout": "soon"})),
        (["127.0.0.1:2181"], Config(options={"session_timeout": "-1"})),
        (["127.0.0.1:2181"], Config(connection_timeout=0)),
    ):
        with pytest.raises(kvstore.InvalidArgumentError):
            kvstore.new_store("zk", addrs, config)
