"""``zk`` for asyncio: ZooKeeper through kazoo, on threads of its own behind the async face.

kazoo is a threaded, blocking client and no asyncio client of ZooKeeper's
protocol is at hand, so this backend is the sync one
(:mod:`kvstore.backends.zookeeper`, every rule of it: znodes, ephemeral TTL
keys, re-armed watches, libkv's lock layout) run by
:class:`~kvstore.aio.threaded.ThreadedStore`: its calls run on one worker
thread per store, each watch is pumped by a thread into the loop, and lock
waits happen on a thread. The event loop itself never blocks. Sync and
async stores on one ensemble see each other's keys and share locks.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.zookeeper import ZooKeeperStore
from ..store import Config
from .threaded import ThreadedStore


class AsyncZooKeeperStore(ThreadedStore):
    """``addrs`` are the ensemble's ``host:port``; options and TLS as for the sync ``zk`` store."""

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        sync = ZooKeeperStore(addrs, config)
        sync.backend = "zk"
        super().__init__(sync, "kvstore-aio-zk")
