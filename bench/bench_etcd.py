"""kvstore's etcd backend against the raw ``etcd3`` client, side by side on one etcd.

Prints the latency of ``get``, ``put`` and watch delivery (time from a put
to the watcher holding the change) for both, and kvstore's cost as a ratio
(goal: under 1.10). The two run in alternating rounds in one process, so
drift of the machine (other load, etcd compacting) hits both alike.

    .venv/bin/python bench/bench_etcd.py                   # starts a throw-away etcd
    .venv/bin/python bench/bench_etcd.py --endpoint 127.0.0.1:2379
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

import etcd3

import kvstore
from kvstore import Config


def timed(op: Callable[[], object], count: int) -> list[float]:
    """Latencies of ``count`` calls of ``op``, in microseconds."""
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        op()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def alternate(
    raw: Callable[[], list[float]], ours: Callable[[], list[float]], rounds: int
) -> tuple[list[float], list[float]]:
    """Run both ``rounds`` times, raw first then ours, then ours first then raw, and so on."""
    raw_samples: list[float] = []
    our_samples: list[float] = []
    for n in range(rounds):
        if n % 2 == 0:
            raw_samples += raw()
            our_samples += ours()
        else:
            our_samples += ours()
            raw_samples += raw()
    return raw_samples, our_samples


def report(name: str, raw: list[float], ours: list[float]) -> float:
    raw_median, our_median = statistics.median(raw), statistics.median(ours)
    ratio = our_median / raw_median

    def p99(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=100)[98]

    print(
        f"{name:<16} {raw_median:>9.1f} {p99(raw):>9.1f}   {our_median:>9.1f} {p99(ours):>9.1f}   "
        f"{ratio:>6.3f}  ({(ratio - 1) * 100:+.1f}%)"
    )
    return ratio


def watch_delivery_raw(client: Any, key: str, count: int) -> Callable[[], list[float]]:
    events, cancel = client.watch(key)

    def run() -> list[float]:
        samples = []
        for n in range(count):
            start = time.perf_counter_ns()
            client.put(key, str(n))
            next(events)
            samples.append((time.perf_counter_ns() - start) / 1000)
        return samples

    run.cancel = cancel  # type: ignore[attr-defined]
    return run


def watch_delivery_ours(client: Any, store: kvstore.Store, key: str, count: int) -> Callable[[], list[float]]:
    client.put(key, "start")
    watch = store.watch(key)
    watch.next(timeout=10)

    def run() -> list[float]:
        samples = []
        for n in range(count):
            start = time.perf_counter_ns()
            client.put(key, str(n))  # the same writer as for raw: only the delivery differs
            watch.next(timeout=10)
            samples.append((time.perf_counter_ns() - start) / 1000)
        return samples

    run.cancel = watch.close  # type: ignore[attr-defined]
    return run


@contextlib.contextmanager
def server(endpoint: str | None) -> Iterator[str]:
    if endpoint:
        yield endpoint
        return
    from tests.support.etcd import single_etcd

    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as directory, single_etcd(Path(directory)) as etcd:
        yield etcd.endpoints[0]


def _quiet_raw_watcher_exit(hook_args: threading.ExceptHookArgs) -> None:
    """The raw etcd3 watcher's thread dies with NameError ('six') when its stream closes: expected here."""
    thread = hook_args.thread
    if hook_args.exc_type is NameError and thread is not None and thread.name.startswith("etcd3_watch"):
        return
    threading.__excepthook__(hook_args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", help="an etcd to use (host:port); default: start one")
    parser.add_argument("--count", type=int, default=300, help="operations per round (default 300)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    args = parser.parse_args()
    threading.excepthook = _quiet_raw_watcher_exit

    with server(args.endpoint) as endpoint:
        host, _, port = endpoint.rpartition(":")
        client = etcd3.client(host=host, port=int(port))
        store = kvstore.new_store("etcd", [endpoint], Config(connection_timeout=10.0))
        try:
            value = b"x" * 100
            client.put("bench/k", value)
            # Warm both up (channels, first-call paths) before measuring.
            timed(lambda: client.get("bench/k"), 200)
            timed(lambda: store.get("bench/k"), 200)

            print(f"etcd at {endpoint}; {args.rounds} rounds x {args.count} ops each; latencies in microseconds")
            print(f"{'':<16} {'raw etcd3':>19}   {'kvstore':>19}   ratio (kvstore/raw, medians)")
            print(f"{'':<16} {'median':>9} {'p99':>9}   {'median':>9} {'p99':>9}")
            ratios = []
            raw, ours = alternate(
                lambda: timed(lambda: client.get("bench/k"), args.count),
                lambda: timed(lambda: store.get("bench/k"), args.count),
                args.rounds,
            )
            ratios.append(report("get", raw, ours))
            raw, ours = alternate(
                lambda: timed(lambda: client.put("bench/p", value), args.count),
                lambda: timed(lambda: store.put("bench/p", value), args.count),
                args.rounds,
            )
            ratios.append(report("put", raw, ours))
            raw_watch = watch_delivery_raw(client, "bench/w-raw", args.count)
            our_watch = watch_delivery_ours(client, store, "bench/w-ours", args.count)
            raw, ours = alternate(raw_watch, our_watch, args.rounds)
            ratios.append(report("watch delivery", raw, ours))
            raw_watch.cancel()  # type: ignore[attr-defined]
            our_watch.cancel()  # type: ignore[attr-defined]
            worst = max(ratios)
            verdict = "within" if worst < 1.10 else "OVER"
            print(f"worst ratio {worst:.3f}: {verdict} the 10% overhead goal")
        finally:
            store.close()
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
