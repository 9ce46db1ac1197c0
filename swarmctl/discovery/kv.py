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
import dataclasses
import logging
import threading
from collections.abc import Iterator

import kvstore
import kvstore.url
from kvstore.addresses import parse_host_port

from ..errors import DiscoveryError, SwarmctlError
from .base import Discovery
from .tls import store_config

log = logging.getLogger("swarmctl.discovery")

DEFAULT_PATH = "docker/swarm/nodes"


@dataclasses.dataclass(frozen=True)
class StoreLocation:
    """The store a kv discovery URL names, parsed once: what ``kvstore.new_store`` takes.

    Discovery and the replicated managers' election both open it; neither
    reads the URL again.
    """

    #: As given, for messages.
    url: str
    backend: str
    addrs: tuple[str, ...]
    #: TLS from ``--discovery-opt``, the connection timeout, and the URL's prefix (as ``kvstore.from_url`` sets it).
    config: kvstore.Config

    def open(self) -> kvstore.Store:
        return kvstore.new_store(self.backend, list(self.addrs), self.config)


def kv_discovery(url: str, scheme: str, options: dict[str, str], timeout: float | None) -> KVDiscovery:
    """The discovery of ``etcd://``, ``consul://``, ``zk://``, ``sqlite://``, checked before anything connects."""
    config = store_config(scheme, options)
    if timeout is not None:
        config = dataclasses.replace(config, connection_timeout=max(timeout, 0.1))
    try:
        parsed = kvstore.url.parse(url)
    except kvstore.KVStoreError as exc:  # kvstore's InvalidArgumentError names the URL
        raise SwarmctlError(str(exc)) from None
    if scheme != "sqlite":
        check_store_addresses(url, parsed.addrs)
    path = options.get("kv.path", DEFAULT_PATH).strip("/")
    if not path:
        raise SwarmctlError("--discovery-opt kv.path must not be empty")
    if parsed.prefix:
        config = dataclasses.replace(config, prefix=parsed.prefix)
    return KVDiscovery(url, StoreLocation(url, parsed.backend, tuple(parsed.addrs), config), path)


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
    """Nodes as keys below ``path`` in the store at ``location``."""

    def __init__(self, url: str, location: StoreLocation, path: str = DEFAULT_PATH) -> None:
        super().__init__(url)
        self.location = location
        self.path = path.strip("/")
        self._store: kvstore.Store | None = None
        self._mutex = threading.Lock()

    def _open(self) -> kvstore.Store:
        with self._mutex:
            if self._store is None:
                try:
                    self._store = self.location.open()
                except kvstore.NotReachableError as exc:
                    raise DiscoveryError(str(exc)) from None
            return self._store

    def _reset(self) -> None:
        with self._mutex:
            store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(kvstore.KVStoreError):
                store.close()

    @property
    def store_url(self) -> str:
        return self.location.url

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
