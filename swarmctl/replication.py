"""Replicated managers: one primary, elected through a kvstore lock; replicas forward to it.

Every manager runs the cluster (discovery, engines, caches), so a replica that
takes over serves from a warm cache at once. The primary holds the lock at
``<prefix>/docker/swarm/leader`` (Docker Swarm's key) with its advertised
address as value and the replication TTL on it; the others try to take it
every second and read the key to learn whom to forward to. A primary whose
lock is lost (its TTL ran out: the store was unreachable or the process was
frozen) stops acting as primary the moment it learns it.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

import kvstore

from .api.streams import ByteStream, connect

LEADER_KEY = "docker/swarm/leader"
log = logging.getLogger("swarmctl.replication")


@dataclass
class Role:
    """What this manager is right now."""

    primary: bool = False
    #: The primary's advertised address (ours when primary); None while nobody holds the lock.
    leader: str | None = None


class Election:
    """Runs in a thread: campaign for the lock, hold it, report every change of role."""

    def __init__(
        self,
        store_url: str,
        config: kvstore.Config,
        advertise: str,
        ttl: float,
        on_change: Callable[[Role], None],
    ) -> None:
        self.store_url = store_url
        self.config = config
        self.advertise = advertise
        self.ttl = ttl
        self.on_change = on_change
        self.stop = threading.Event()
        self._role = Role()
        self._thread = threading.Thread(target=self._run, name="election", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)

    def _report(self, role: Role) -> None:
        if role != self._role:
            self._role = role
            self.on_change(Role(role.primary, role.leader))

    def _run(self) -> None:
        store: kvstore.Store | None = None
        while not self.stop.is_set():
            try:
                if store is None:
                    store = kvstore.from_url(self.store_url, self.config)
                self._campaign(store)
            except kvstore.KVStoreError as exc:
                log.warning("replication: store unavailable, retrying: %s", exc)
                self._report(Role(False, None))
                if store is not None:
                    with contextlib.suppress(kvstore.KVStoreError):
                        store.close()
                    store = None
                self.stop.wait(1.0)
        if store is not None:
            with contextlib.suppress(kvstore.KVStoreError):
                store.close()

    def _campaign(self, store: kvstore.Store) -> None:
        lock = store.new_lock(LEADER_KEY, value=self.advertise.encode(), ttl=self.ttl)
        while not self.stop.is_set():
            try:
                lost = lock.acquire(timeout=1.0)
            except kvstore.CannotLockError:
                try:
                    leader = store.get(LEADER_KEY).value.decode()
                except kvstore.KeyNotFoundError:
                    leader = None
                self._report(Role(False, leader))
                continue
            log.info("replication: %s is now the primary", self.advertise)
            self._report(Role(True, self.advertise))
            while not self.stop.is_set() and not lost.wait(0.2):
                pass
            if lost.is_set():
                log.warning("replication: lost the primary lock; now a replica")
                self._report(Role(False, None))
            else:
                with contextlib.suppress(kvstore.KVStoreError):
                    lock.release()  # leaving: let a replica take over at once


class PrimaryPeer:
    """The primary manager as a relay target for a replica (see :class:`~swarmctl.api.proxy.Upstream`)."""

    def __init__(self, addr: str, session: Callable[[], aiohttp.ClientSession], ssl_context: ssl.SSLContext | None):
        self.addr = addr
        self._session = session
        self._ssl = ssl_context
        self.base_url = f"{'https' if ssl_context else 'http'}://{addr}"
        #: Whether a request could not even connect (nothing was sent: it may go to the next primary).
        self.unreachable = False

    @property
    def name(self) -> str:
        return f"primary {self.addr}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._session().request(method, self.base_url + path, **kwargs)

    async def open_connection(self) -> ByteStream:
        return await connect(self.addr, self._ssl)

    def report_failure(self, exc: BaseException) -> None:
        self.unreachable = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
        log.warning("replication: cannot reach the primary %s: %s", self.addr, exc)
