"""What every discovery source offers: the node list now, and every change to it."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Iterator

from ..errors import DiscoveryError

log = logging.getLogger("swarmctl.discovery")


class Discovery(abc.ABC):
    """One discovery source (a kv store path, a file, a fixed list, a token cluster).

    ``fetch`` reads the list once and raises :class:`DiscoveryError` while the
    source is unavailable; ``watch`` never gives up: it logs the reason and
    retries, yielding the list whenever it changes.
    """

    #: Seconds between reads for sources that are polled (file, token).
    poll_interval: float = 10.0

    def __init__(self, url: str) -> None:
        self.url = url

    @abc.abstractmethod
    def fetch(self) -> list[str]:
        """The current node addresses, in a stable order."""

    def watch(self, stop: threading.Event) -> Iterator[list[str]]:
        """The current list, then the list again after every change, until ``stop`` is set."""
        last: list[str] | None = None
        failing = False
        while not stop.is_set():
            try:
                nodes = self.fetch()
            except DiscoveryError as exc:
                if not failing:
                    log.warning("discovery %s unavailable, retrying: %s", self.url, exc)
                failing = True
            else:
                if failing:
                    log.info("discovery %s available again", self.url)
                failing = False
                if nodes != last:
                    last = nodes
                    yield nodes
            stop.wait(self.poll_interval)

    def follow_heartbeat(self, heartbeat: float) -> None:
        """``manage --heartbeat``: read a polled source at least every ``heartbeat`` seconds.

        A source polled more often already (a file, every second) keeps its pace.
        """
        self.poll_interval = min(self.poll_interval, heartbeat)

    def register(self, address: str, ttl: float) -> None:
        """Announce ``address`` for ``ttl`` seconds (``join``)."""
        raise DiscoveryError(f"{self.url}: this discovery is a static list; there is nothing to join")

    def deregister(self, address: str) -> None:
        """Withdraw ``address`` at once (``join`` exiting on SIGINT/SIGTERM)."""
        raise DiscoveryError(f"{self.url}: this discovery is a static list; there is nothing to leave")

    @property
    def can_register(self) -> bool:
        return type(self).register is not Discovery.register

    def close(self) -> None:
        """Release connections."""
        return


def dedupe(addresses: list[str]) -> list[str]:
    """First occurrence of each address, order kept."""
    return list(dict.fromkeys(addresses))
