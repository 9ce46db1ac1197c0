"""Replicated managers: one primary, elected through a kvstore lock; replicas forward to it.

Every manager runs the cluster (discovery, engines, caches), so a replica that
takes over serves from a warm cache at once. The primary holds the lock at
``<prefix>/docker/swarm/leader`` (Docker Swarm's key) with its advertised
address as value and the replication TTL on it; the others try to take it
every second and read the key to learn whom to forward to. A primary whose
lock is lost (its TTL ran out: the store was unreachable or the process was
frozen) stops acting as primary the moment it learns it.

This module is the election alone: the API relays a replica's requests
(``api/app.py``) to the primary as a :class:`swarmctl.net.peer.PrimaryPeer`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import kvstore

from .discovery.kv import StoreLocation

LEADER_KEY = "docker/swarm/leader"
log = logging.getLogger("swarmctl.replication")


@dataclass
class Role:
    """What this manager is right now."""

    primary: bool = False
    #: The primary's advertised address (ours when primary); None while nobody holds the lock.
    leader: str | None = None


@dataclass(frozen=True)
class ReplicationSettings:
    """``manage --replication``: where the managers elect their primary, and as whom this one campaigns."""

    #: The kv discovery's store: the leader key lives beside the nodes.
    store: StoreLocation
    #: This manager's address for the others (the lock's value while it is the primary).
    advertise: str
    #: The lock's TTL: a dead primary is replaced within it.
    ttl: float


class Election:
    """Runs in a thread: campaign for the lock, hold it, report every change of role."""

    def __init__(self, settings: ReplicationSettings, on_change: Callable[[Role], None]) -> None:
        self.location = settings.store
        self.advertise = settings.advertise
        self.ttl = settings.ttl
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
                    store = self.location.open()
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
