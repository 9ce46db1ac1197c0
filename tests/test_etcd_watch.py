"""Watches across an interrupted connection: resumed without loss, or rebuilt after compaction.

The store under test reaches etcd only through a :class:`PausableProxy`, so
the test decides exactly when the watch is cut off and what happens to the
keys meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from etcd3 import etcdrpc

import kvstore
from kvstore import Config, KVPair
from kvstore.testing import next_matching
from tests.support.etcd import EtcdCluster, PausableProxy, single_etcd

WAIT = 15.0


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd-watch")) as cluster:
        yield cluster


@pytest.fixture
def proxy(etcd: EtcdCluster) -> Iterator[PausableProxy]:
    with PausableProxy(etcd.endpoints[0]) as running:
        yield running


@pytest.fixture
def direct(etcd: EtcdCluster) -> Iterator[kvstore.Store]:
    """A client that always reaches etcd: it makes the changes while the watcher is cut off."""
    with kvstore.new_store("etcd", etcd.endpoints) as store:
        yield store


@pytest.fixture
def behind_proxy(proxy: PausableProxy) -> Iterator[kvstore.Store]:
    with kvstore.new_store("etcd", [proxy.endpoint], Config(connection_timeout=WAIT)) as store:
        yield store


def compact(etcd: EtcdCluster) -> None:
    """Compact etcd's history up to now: older revisions can no longer be watched from.

    Compacting at the newest revision is harsher than any real retention
    policy, and it is what makes a resuming watch meet "compacted" for sure.
    """
    with etcd.channel(etcd.members[0]) as channel:
        kv = etcdrpc.KVStub(channel)
        revision = kv.Range(etcdrpc.RangeRequest(key=b"\0"), timeout=5).header.revision
        kv.Compact(etcdrpc.CompactionRequest(revision=revision, physical=True), timeout=5)


def keys_values(pairs: list[KVPair]) -> list[tuple[str, bytes]]:
    return [(p.key, p.value) for p in pairs]


def test_watch_tree_resumes_with_every_change_made_while_cut_off(
    proxy: PausableProxy, direct: kvstore.Store, behind_proxy: kvstore.Store
) -> None:
    with behind_proxy.watch_tree("resume") as watch:
        assert watch.next(timeout=WAIT) == []
        proxy.pause()
        direct.put("resume/a", b"1")
        direct.put("resume/b", b"2")
        direct.delete("resume/a")
        proxy.resume()
        # Each change made during the outage arrives as its own state, in order.
        assert keys_values(watch.next(timeout=WAIT)) == [("resume/a", b"1")]
        assert keys_values(watch.next(timeout=WAIT)) == [("resume/a", b"1"), ("resume/b", b"2")]
        assert keys_values(watch.next(timeout=WAIT)) == [("resume/b", b"2")]
        direct.put("resume/c", b"3")
        assert keys_values(watch.next(timeout=WAIT)) == [("resume/b", b"2"), ("resume/c", b"3")]


def test_watch_tree_rebuilds_its_state_after_compaction(
    etcd: EtcdCluster, proxy: PausableProxy, direct: kvstore.Store, behind_proxy: kvstore.Store
) -> None:
    direct.put("compacted/stays", b"0")
    direct.put("compacted/goes", b"0")
    with behind_proxy.watch_tree("compacted") as watch:
        assert [p.key for p in watch.next(timeout=WAIT)] == ["compacted/goes", "compacted/stays"]
        proxy.pause()
        direct.delete("compacted/goes")
        direct.put("compacted/new", b"1")
        compact(etcd)
        proxy.resume()
        # The individual changes are gone from etcd; the state they led to is delivered.
        state = next_matching(watch, lambda ps: [p.key for p in ps] == ["compacted/new", "compacted/stays"])
        assert keys_values(state) == [("compacted/new", b"1"), ("compacted/stays", b"0")]
        direct.put("compacted/stays", b"after")
        state = watch.next(timeout=WAIT)
        assert keys_values(state) == [("compacted/new", b"1"), ("compacted/stays", b"after")]


def test_watch_of_a_key_after_compaction(
    etcd: EtcdCluster, proxy: PausableProxy, direct: kvstore.Store, behind_proxy: kvstore.Store
) -> None:
    direct.put("one/k", b"0")
    with behind_proxy.watch("one/k") as watch:
        assert watch.next(timeout=WAIT).value == b"0"
        proxy.pause()
        direct.put("one/k", b"1")
        direct.put("one/k", b"2")
        compact(etcd)
        proxy.resume()
        assert watch.next(timeout=WAIT).value == b"2"
        proxy.pause()
        direct.delete("one/k")
        # Compacting right at the delete's revision would purge the tombstone
        # yet still let a watch start there (etcd's own rule), so a later
        # write moves the compaction past the revision the watch resumes from.
        direct.put("one/other", b"x")
        compact(etcd)
        proxy.resume()
        with pytest.raises(StopIteration):
            watch.next(timeout=WAIT)


def test_watch_of_a_key_deleted_while_cut_off_ends(
    proxy: PausableProxy, direct: kvstore.Store, behind_proxy: kvstore.Store
) -> None:
    direct.put("gone/k", b"0")
    with behind_proxy.watch("gone/k") as watch:
        assert watch.next(timeout=WAIT).value == b"0"
        proxy.pause()
        direct.put("gone/k", b"1")
        direct.delete("gone/k")
        proxy.resume()
        assert watch.next(timeout=WAIT).value == b"1"
        with pytest.raises(StopIteration):
            watch.next(timeout=WAIT)


def test_lock_holder_cut_off_learns_of_the_loss(
    proxy: PausableProxy, direct: kvstore.Store, behind_proxy: kvstore.Store
) -> None:
    """Cut off while its key is taken away: the holder hears of it once it is back."""
    lost = behind_proxy.new_lock("cut/lock", value=b"me", ttl=30).acquire(timeout=WAIT)
    proxy.pause()
    direct.delete("cut/lock")
    direct.put("cut/lock", b"someone else")
    assert not lost.is_set()
    proxy.resume()
    assert lost.wait(WAIT), "the holder never learned that its key was taken"
    assert direct.get("cut/lock").value == b"someone else"
