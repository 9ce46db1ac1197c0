"""kvstore's Consul backend against raw python-consul2, side by side on one server.

Prints the latency of ``get``, ``put`` and watch delivery (from a put to the
watcher holding the change: kvstore's ``watch`` against a hand-written
python-consul2 blocking-query loop) for both, and kvstore's cost as a ratio
of the medians. The two run in alternating rounds in one process, so drift
of the machine hits both alike.

Without ``--address`` it starts the project's Consul test server (there is
no Consul binary here), so the absolute numbers are those of that server;
the ratio is what this measures.

    .venv/bin/python bench/bench_consul.py
    .venv/bin/python bench/bench_consul.py --address 127.0.0.1:8500   # a real Consul
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import consul  # type: ignore[import-untyped]

import kvstore
from kvstore import Config

Sampler = Callable[[], list[float]]

#: Between two changes in the delivery measurement (not timed): changes as
#: events, not a firehose. kvstore's watch rate-limits its queries as Consul's
#: documentation asks (a burst, then 100 a second), so under sustained churn
#: above that it coalesces changes on purpose; that is not what this measures.
PAUSE = 0.02


def timed(op: Callable[[], object], count: int) -> list[float]:
    """Latencies of ``count`` calls of ``op``, in microseconds."""
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        op()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def interleave(raw: Sampler, ours: Sampler, rounds: int) -> tuple[list[float], list[float]]:
    """``rounds`` rounds of both, the order swapped every round."""
    raw_all: list[float] = []
    ours_all: list[float] = []
    for n in range(rounds):
        first, second = (raw, ours) if n % 2 == 0 else (ours, raw)
        a, b = first(), second()
        raw_part, our_part = (a, b) if n % 2 == 0 else (b, a)
        raw_all += raw_part
        ours_all += our_part
    return raw_all, ours_all


def line(name: str, raw: list[float], ours: list[float]) -> float:
    def p99(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=100)[98]

    raw_median, our_median = statistics.median(raw), statistics.median(ours)
    ratio = our_median / raw_median
    print(
        f"{name:<15} {raw_median:>9.1f} {p99(raw):>9.1f}   {our_median:>9.1f} {p99(ours):>9.1f}   "
        f"{ratio:>6.3f}  ({(ratio - 1) * 100:+.1f}%)"
    )
    return ratio


class RawWatcher:
    """The blocking-query loop a python-consul2 user writes by hand, delivering into a queue."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self._client = consul.Consul(host=host, port=port)
        self._key = key
        self._cond = threading.Condition()
        self._seen = 0
        self._stop = False
        index, _ = self._client.kv.get(key)
        self._index = index
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop:
            try:
                index, _ = self._client.kv.get(self._key, index=self._index, wait="10s")
            except Exception:  # the server went away at the end of the run
                return
            if index != self._index:
                self._index = index
                with self._cond:
                    self._seen += 1
                    self._cond.notify_all()

    def next(self, seen: int) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._seen > seen, timeout=10)
            return self._seen

    def stop(self) -> None:
        self._stop = True


def delivery_raw(client: Any, watcher: RawWatcher, key: str, count: int) -> Sampler:
    def run() -> list[float]:
        samples = []
        seen = watcher.next(-1)
        for n in range(count):
            start = time.perf_counter_ns()
            client.kv.put(key, str(n))
            seen = watcher.next(seen)
            samples.append((time.perf_counter_ns() - start) / 1000)
            time.sleep(PAUSE)
        return samples

    return run


def delivery_ours(client: Any, watch: kvstore.Watch[kvstore.KVPair], key: str, count: int) -> Sampler:
    def run() -> list[float]:
        samples = []
        for n in range(count):
            start = time.perf_counter_ns()
            client.kv.put(key, str(n))  # the same writer as for raw: only the delivery differs
            watch.next(timeout=10)
            samples.append((time.perf_counter_ns() - start) / 1000)
            time.sleep(PAUSE)
        return samples

    return run


@contextlib.contextmanager
def server(address: str | None) -> Iterator[str]:
    if address:
        yield address
        return
    from tests.support.consul import running_consul

    with (
        tempfile.TemporaryDirectory(prefix="bench-consul-") as directory,
        running_consul(Path(directory)) as test_server,
    ):
        yield test_server.address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", help="a Consul agent's HTTP address (host:port); default: start the test server")
    parser.add_argument("--count", type=int, default=200, help="operations per round (default 200)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    args = parser.parse_args()

    with server(args.address) as address:
        host, _, port = address.rpartition(":")
        client = consul.Consul(host=host, port=int(port))
        store = kvstore.new_store("consul", [address], Config(connection_timeout=10.0))
        try:
            value = b"x" * 100
            client.kv.put("bench/k", value)
            timed(lambda: client.kv.get("bench/k"), 100)  # warm both up
            timed(lambda: store.get("bench/k"), 100)

            print(f"consul at {address}; {args.rounds} rounds x {args.count} ops; latencies in microseconds")
            print(f"{'':<15} {'raw python-consul2':>19}   {'kvstore':>19}   ratio (kvstore/raw, medians)")
            print(f"{'':<15} {'median':>9} {'p99':>9}   {'median':>9} {'p99':>9}")
            ratios = [
                line(
                    "get",
                    *interleave(
                        lambda: timed(lambda: client.kv.get("bench/k"), args.count),
                        lambda: timed(lambda: store.get("bench/k"), args.count),
                        args.rounds,
                    ),
                ),
                line(
                    "put",
                    *interleave(
                        lambda: timed(lambda: client.kv.put("bench/p", value), args.count),
                        lambda: timed(lambda: store.put("bench/p", value), args.count),
                        args.rounds,
                    ),
                ),
            ]
            client.kv.put("bench/w-raw", "start")
            client.kv.put("bench/w-ours", "start")
            watcher = RawWatcher(host, int(port), "bench/w-raw")
            watch = store.watch("bench/w-ours")
            watch.next(timeout=10)
            delivery_count = max(1, args.count // 4)
            ratios.append(
                line(
                    "watch delivery",
                    *interleave(
                        delivery_raw(client, watcher, "bench/w-raw", delivery_count),
                        delivery_ours(client, watch, "bench/w-ours", delivery_count),
                        args.rounds,
                    ),
                )
            )
            watcher.stop()
            watch.close()
            print(f"get/put ratio (kvstore/raw python-consul2): {ratios[0]:.3f} / {ratios[1]:.3f}")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
