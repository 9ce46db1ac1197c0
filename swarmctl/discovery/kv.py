"""``etcd://``, ``consul://``, ``zk://``, ``sqlite://``: nodes kept in a kvstore.

The layout is Docker Swarm's own: ``<prefix>/docker/swarm/nodes/<host:port>``
with the address as value and the TTL on the key, so Swarm's agents and
managers can share a store with ours. The store is opened lazily, so
``join`` started before its store keeps retrying instead of dying.

An unreachable store is kept, not re-opened: it already retries on its own
and knows which member answered last (a new etcd client would start again
with the first member, maybe the dead one), and closing a ZooKeeper client
ends its session, which deletes every ephemeral entry that session still
holds. Any other failure re-opens it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import kvstore
from kvstore.addresses import parse_host_port

from ..errors import DiscoveryError, SwarmctlError
from .base import Discovery

log = logging.getLogger("swarmctl.discovery")

DEFAULT_PATH = "docker/swarm/nodes"


def check_store_addresses(url: str, addrs: list[str]) -> None:
    """Each store address read as kvstore will (``host[:port]``), now rather than at the first connection.

    kvstore's own check takes a port of any Unicode digits ("²"), which ``int``
    then refuses with a bare ``ValueError``: that is a bad port too.
    """
    for addr in addrs:
        try:
            parse_host_port(addr, 1)
        except kvstore.KVStoreError as exc:
            raise SwarmctlError(f"invalid discovery {url!r}: {exc}") from None
        except ValueError:
            raise SwarmctlError(f"invalid discovery {url!r}: store address {addr!r}: port must be 1-65535") from None


class KVDiscovery(Discovery):
    """Nodes as keys below ``path`` in the store that ``store_url`` names."""

    def __init__(self, url: str, store_url: str, config: kvstore.Config, path: str = DEFAULT_PATH) -> None:
        super().__init__(url)
        self.store_url = store_url
        self.config = config
        self.path = path.strip("/")
        self._store: kvstore.Store | None = None
        self._mutex = threading.Lock()

    def _open(self) -> kvstore.Store:
        with self._mutex:
            if self._store is None:
                try:
                    self._store = kvstore.from_url(self.store_url, self.config)
                except kvstore.NotReachableError as exc:
                    raise DiscoveryError(str(exc)) from None
            return self._store

    def _reset(self) -> None:
        with self._mutex:
            store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(kvstore.KVStoreError):
                store.close()

    def _key(self, address: str) -> str:
        return f"{self.path}/{address}"

    @staticmethod
    def _addresses(pairs: list[kvstore.KVPair]) -> list[str]:
        # The value is the address; fall back to the key's last segment for
        # entries written with an empty value.
        return [p.value.decode("utf-8", "replace") or p.key.rsplit("/", 1)[-1] for p in pairs]

    def fetch(self) -> list[str]:
        try:
            return self._addresses(self._open().list(self.path))
        except kvstore.KeyNotFoundError:
            return []
        except kvstore.NotReachableError as exc:
            raise DiscoveryError(str(exc)) from None

    def watch(self, stop: threading.Event) -> Iterator[list[str]]:
        """A ``watch_tree`` on the nodes path, re-established after any failure."""
        last: list[str] | None = None
        failing = False
        while not stop.is_set():
            try:
                watch = self._open().watch_tree(self.path)
            except (DiscoveryError, kvstore.NotReachableError) as exc:
                self._reset()
                if not failing:
                    log.warning("discovery %s unavailable, retrying: %s", self.url, exc)
                failing = True
                stop.wait(min(self.poll_interval, 2.0))
                continue
            if failing:
                log.info("discovery %s available again", self.url)
                failing = False
            # close() ends a blocked iteration: do it when asked to stop (the
            # thread ends with this watch either way).
            done = threading.Event()

            def close_on_stop(watch: kvstore.Watch[list[kvstore.KVPair]] = watch, done: threading.Event = done) -> None:
                while not (stop.wait(0.5) or done.is_set()):
                    pass
                watch.close()

            threading.Thread(target=close_on_stop, name="discovery-watch-stop", daemon=True).start()
            try:
                for pairs in watch:
                    nodes = self._addresses(pairs)
                    if nodes != last:
                        last = nodes
                        yield nodes
            except kvstore.KVStoreError as exc:
                log.warning("discovery %s: watch interrupted, re-establishing: %s", self.url, exc)
                self._reset()
            finally:
                done.set()
                watch.close()

    def register(self, address: str, ttl: float) -> None:
        try:
            self._open().put(self._key(address), address.encode(), ttl=ttl)
        except kvstore.NotReachableError as exc:
            raise DiscoveryError(str(exc)) from None
        except kvstore.KVStoreError as exc:
            self._reset()
            raise DiscoveryError(str(exc)) from None

    def deregister(self, address: str) -> None:
        try:
            self._open().delete(self._key(address))
        except kvstore.KVStoreError as exc:
            self._reset()
            raise DiscoveryError(str(exc)) from None

    def close(self) -> None:
        self._reset()
