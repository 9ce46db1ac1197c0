"""Counts and timings the manager's layers keep as things happen, for ``/metrics`` (``api/metrics.py``).

Each layer declares what it counts next to the code that counts it (the
scheduler its decisions, the engines their refreshes, the API its request
times), as a :class:`Counts` or a :class:`Timings` registered in
:data:`ALL`; ``/metrics`` writes them out in Prometheus' format with what
it reads of the cluster's state when scraped. They are plain dictionaries
updated from the event loop (no lock, no per-update object), because the
request timings sit on the manager's hottest paths: an update costs a
dictionary lookup, where ``prometheus_client``'s own metric objects take a
lock each time. Label values are bounded by construction (route families,
filter names, node addresses), never per container.
"""

from __future__ import annotations

from bisect import bisect_left

#: Every metric declared, in the order declared (the exposition keeps it).
ALL: list[Counts | Timings] = []


class Counts:
    """A Prometheus counter with labels: ``add`` one (or ``amount``) to the series of some label values."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {}
        ALL.append(self)

    def add(self, *values: str, amount: float = 1.0) -> None:
        self.values[values] = self.values.get(values, 0.0) + amount


#: Bucket bounds in seconds for request and refresh times: a cached answer takes well under a
#: millisecond, a create tens of milliseconds, a refresh of a busy engine up to seconds.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Timings:
    """A Prometheus histogram with labels; :meth:`series` hands out one label set's, to observe without lookups."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (), bounds: tuple[float, ...] = SECONDS):
        self.name = name
        self.help = help
        self.labels = labels
        self.bounds = bounds
        self.values: dict[tuple[str, ...], Series] = {}
        ALL.append(self)

    def series(self, *values: str) -> Series:
        found = self.values.get(values)
        if found is None:
            found = self.values[values] = Series(self.bounds)
        return found

    def observe(self, seconds: float, *values: str) -> None:
        self.series(*values).observe(seconds)


class Series:
    """One label set of a :class:`Timings`: a count per bucket (not cumulative), the sum and the count."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus writes a histogram's buckets, ``+Inf`` last."""
        running, out = 0, []
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.buckets, strict=True):
            running += count
            out.append((bound, running))
        return out
