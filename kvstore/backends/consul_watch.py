"""Blocking-query loops, kept the way Consul's documentation says a client must keep them.

Consul answers a query carrying ``?index=N`` only once what it reads has an
index above N, or when ``wait`` runs out. Its "Blocking Queries" page lists
what a client has to handle, and :class:`IndexCursor` does each:

* an answer is no proof of a change (timeouts, writes elsewhere in the KV
  store): the caller compares what it read with what it last delivered;
* the index can go *backwards* (a snapshot restore, a KV list whose newest
  key was removed and its tombstone reaped): the loop restarts from index 0,
  i.e. reads once without blocking;
* the index must stay at least 1, or every query returns at once;
* the loop must be rate limited so that a key changing very fast degrades
  into polling instead of a busy loop: a token bucket with a small burst.

After a reconnect (a failover, or the server restarted) the next read is
also made without blocking: the new server may know nothing of the old
index, and a blocking read with an index it has not reached would sit out
the whole ``wait`` while changes go unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import KVStoreError
from ..store import Watch
from .consul_transport import ConsulTransport

S = TypeVar("S")

#: A watch's query rate once its burst is spent: changes faster than this are
#: coalesced (the watch still ends on the latest state), rather than turning
#: the loop into a stream of back-to-back requests.
QUERY_RATE = 100.0
QUERY_BURST = 10


class IndexCursor:
    """The index the next blocking read waits past (0: read at once)."""

    def __init__(self, index: int = 0) -> None:
        self.index = max(index, 0)

    def update(self, returned: int | None) -> None:
        """Take the ``X-Consul-Index`` of an answer."""
        if returned is None:
            return
        if returned < self.index:
            self.index = 0  # went backwards: restart the loop with a non-blocking read
        else:
            self.index = max(returned, 1)  # never block on 0: that returns at once, forever

    def reset(self) -> None:
        self.index = 0


class TokenBucket:
    """At most ``burst`` reads back to back, then ``rate`` a second; waiting ends early on ``stop``."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, stop: threading.Event) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            stop.wait((1 - self._tokens) / self._rate)
            self._tokens = 1.0
            self._stamp = time.monotonic()
        self._tokens -= 1


class BlockingLoop(Generic[S]):
    """A thread that keeps a blocking query going and hands each answer to ``handle``.

    ``read(client, index, wait)`` makes one request and returns the answer's
    index and what it read; ``handle(state)`` returns False to end the loop
    (e.g. the watched key is gone). Errors that outlast the transport's
    retries end the watch with that error.
    """

    def __init__(
        self,
        transport: ConsulTransport,
        watch: Watch[Any],
        what: str,
        read: Callable[[Any, int, float], tuple[int | None, S]],
        handle: Callable[[S], bool],
        *,
        index: int,
        wait: float,
        stopped: threading.Event,
    ) -> None:
        self._transport = transport
        self._watch = watch
        self._what = what
        self._read = read
        self._handle = handle
        self._cursor = IndexCursor(index)
        self._wait = wait
        self._stopped = stopped
        self._bucket = TokenBucket(rate=QUERY_RATE, burst=QUERY_BURST)

    def start(self, name: str) -> None:
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        cursor = self._cursor
        while not self._stopped.is_set():
            self._bucket.take(self._stopped)
            if self._stopped.is_set():
                return
            try:
                index, state = self._transport.call(
                    self._what,
                    lambda client: self._read(client, cursor.index, self._wait),
                    read_timeout=self._transport.blocking_timeout(self._wait),
                    on_retry=cursor.reset,
                )
            except KVStoreError as exc:
                if not self._stopped.is_set():
                    self._watch.fail(exc)
                return
            if self._stopped.is_set():
                return
            cursor.update(index)
            if not self._handle(state):
                return


def header_index(raw: Any) -> int | None:
    """An ``X-Consul-Index`` header as python-consul2 hands it over (a string, or None)."""
    if raw is None or raw == "":
        return None
    return int(raw)
