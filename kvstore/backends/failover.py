"""Endpoint failover for the network backends: one policy, written once.

A store reached at several addresses (etcd members, Consul agents) sends a
call to the current one. When an attempt fails in a way another address, or
the same one a moment later, may answer, the call moves to the next address
and tries again, until its time budget is spent; the address that answered
then stays current, so later calls do not pay for the dead one. What is
shared here, and so the same on every backend:

* the rotation (:class:`Rotation`): one current address, moved on by the
  first caller that sees it fail;
* the time budget of a call, and each attempt's share of it
  (:meth:`Failover.attempt_timeout`), so that a hung address leaves time to
  try the others;
* the back-off: after every full round of failures a pause that grows from
  50 ms to 0.5 s (an election takes about a second), never past the budget;
* the TLS-failure count: once every address failed its TLS handshake the
  call gives up at once, since a certificate problem does not go away by
  waiting.

What differs per backend is only what an exception means. Each backend
hands in a classifier: for each exception of an attempt it answers a
:class:`Retry` (try elsewhere) or the :class:`~kvstore.KVStoreError` to
raise now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import KVStoreError

E = TypeVar("E")
T = TypeVar("T")

#: Each attempt gets at least this long before the call tries another address
#: (a healthy server answers in milliseconds; this only stops a small budget
#: from being sliced into attempts too short for a loaded machine).
MIN_ATTEMPT = 0.5


class Rotation(Generic[E]):
    """The addresses of one cluster in the order given, one of them current."""

    def __init__(self, endpoints: Sequence[E]) -> None:
        self.endpoints: list[E] = list(endpoints)
        self._lock = threading.Lock()
        # The first address is tried first: callers list them in the order
        # they prefer (the nearest first), as etcdctl's --endpoints does.
        self._index = 0

    def current(self) -> E:
        return self.endpoints[self._index]

    def fail_over(self, endpoint: E) -> None:
        """``endpoint`` failed: make the next one current (unless another thread already did)."""
        with self._lock:
            if self.endpoints[self._index] is endpoint:
                self._index = (self._index + 1) % len(self.endpoints)

    def __len__(self) -> int:
        return len(self.endpoints)


@dataclass(frozen=True, slots=True)
class Retry:
    """A classifier's verdict on a failed attempt: another address (or a later try) may answer.

    ``error`` is what the call raises if this stays the last word; ``detail``
    is what the address answered, for the out-of-budget message; ``tls``
    marks a failed TLS handshake.
    """

    error: KVStoreError
    detail: str = ""
    tls: bool = False


#: ``classify(exc, endpoint, what)``: a :class:`Retry`, or the error to raise now.
Classify = Callable[[Exception, E, str], Retry | KVStoreError]

#: ``out_of_budget(what, budget, tried, last)``: the error of a call whose budget ran out;
#: ``tried`` maps each address tried (as ``str``) to (attempts, last detail), in the order tried.
OutOfBudget = Callable[[str, float, Mapping[str, tuple[int, str]], Retry], KVStoreError]


def _last_error(_what: str, _budget: float, _tried: Mapping[str, tuple[int, str]], last: Retry) -> KVStoreError:
    return last.error


class Failover(Generic[E]):
    """Runs one call's attempts over a :class:`Rotation` within a time budget.

    ``catch`` names the exceptions an attempt may raise that ``classify``
    understands; anything else (a :class:`~kvstore.KVStoreError` included)
    leaves the call unchanged. ``closed`` answers the error to raise when
    the store was closed (None while open); it is asked before every attempt.
    """

    def __init__(
        self,
        rotation: Rotation[E],
        *,
        catch: tuple[type[Exception], ...],
        classify: Classify[E],
        closed: Callable[[str], KVStoreError | None],
        out_of_budget: OutOfBudget = _last_error,
        min_attempt: float = MIN_ATTEMPT,
    ) -> None:
        self.rotation = rotation
        self._catch = catch
        self._classify = classify
        #: Asked before every attempt: the error to raise when the store was closed, else None.
        self.closed_error = closed
        #: The error of a call whose budget ran out.
        self.out_of_budget = out_of_budget
        self._min_attempt = min_attempt

    def attempt_timeout(self, budget: float, remaining: float) -> float:
        """One attempt's share of a call's budget: a hung address must leave time to try the others.

        The budget divided among the addresses, never less than
        ``min_attempt`` nor more than what remains: with a budget of one
        heartbeat and three addresses, a frozen one costs a third of it.
        """
        count = len(self.rotation)
        if count == 1:
            return remaining
        return min(remaining, max(self._min_attempt, budget / count))

    def call(
        self,
        what: str,
        attempt: Callable[[E, float], T],
        budget: float,
        *,
        classify: Classify[E] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """``attempt(endpoint, timeout)`` on the current address, moving on after failures, within ``budget``.

        ``classify`` replaces the default classifier for this call (e.g.
        one that knows the request must not be repeated); ``on_retry`` runs
        before every attempt after the first.
        """
        tally = _Tally(self, what, budget, classify or self._classify)
        while True:
            endpoint, timeout = tally.next_attempt()
            try:
                return attempt(endpoint, timeout)
            except self._catch as exc:
                pause = tally.failed(exc, endpoint)
            if pause > 0:
                time.sleep(pause)
            if on_retry is not None:
                on_retry()

    async def acall(
        self,
        what: str,
        attempt: Callable[[E, float], Awaitable[T]],
        budget: float,
        *,
        classify: Classify[E] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """:meth:`call` for asyncio: the same policy, the attempt awaited and the back-off an ``asyncio.sleep``.

        For the async backends (:mod:`kvstore.aio`): nothing here blocks the
        event loop, and no thread is involved.
        """
        import asyncio  # here, not at the top: the sync backends never pay for importing asyncio

        tally = _Tally(self, what, budget, classify or self._classify)
        while True:
            endpoint, timeout = tally.next_attempt()
            try:
                return await attempt(endpoint, timeout)
            except self._catch as exc:
                pause = tally.failed(exc, endpoint)
            await asyncio.sleep(pause)
            if on_retry is not None:
                on_retry()


class _Tally(Generic[E]):
    """The bookkeeping of one call's attempts, shared by :meth:`Failover.call` and :meth:`Failover.acall`."""

    def __init__(self, failover: Failover[E], what: str, budget: float, classify: Classify[E]) -> None:
        self._failover = failover
        self._what = what
        self._budget = budget
        self._classify = classify
        self._deadline = time.monotonic() + budget
        self._failures = 0
        self._last: Retry | None = None
        self._tried: dict[str, tuple[int, str]] = {}
        self._tls_failed: set[str] = set()

    def next_attempt(self) -> tuple[E, float]:
        """The address to try now and the attempt's timeout; raises once the store closed or the budget is spent."""
        failover = self._failover
        closed = failover.closed_error(self._what)
        if closed is not None:
            raise closed
        remaining = self._deadline - time.monotonic()
        if self._last is not None and remaining <= 0:
            raise failover.out_of_budget(self._what, self._budget, self._tried, self._last)
        return failover.rotation.current(), failover.attempt_timeout(self._budget, remaining)

    def failed(self, exc: Exception, endpoint: E) -> float:
        """Record a failed attempt and move to the next address; the pause before the next attempt.

        Raises the classifier's error when it says no other address can help,
        and the TLS error once every address failed its handshake.
        """
        verdict = self._classify(exc, endpoint, self._what)
        if isinstance(verdict, KVStoreError):
            raise verdict from None
        self._last = verdict
        name = str(endpoint)
        self._tried[name] = (self._tried.get(name, (0, ""))[0] + 1, verdict.detail)
        rotation = self._failover.rotation
        if verdict.tls:
            self._tls_failed.add(name)
            if len(self._tls_failed) == len(rotation):
                raise verdict.error from None
        rotation.fail_over(endpoint)
        self._failures += 1
        if self._failures % len(rotation) != 0:
            return 0.0
        # Every address failed once more: give them a moment instead of spinning.
        pause = min(0.05 * 2.0 ** min(self._failures // len(rotation), 4), 0.5)
        return max(0.0, min(pause, self._deadline - time.monotonic()))
