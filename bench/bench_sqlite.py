"""kvstore's embedded sqlite store against raw sqlite3, and cross-process watch latency.

Run: .venv/bin/python -m bench.bench_sqlite [--ops 2000] [--changes 50]

1. put/get: kvstore's ``put``/``get`` beside the same statements issued with
   the raw ``sqlite3`` module on a file of the same shape (WAL, one write
   transaction per put), in the same run; prints each latency and the ratio.
2. watch delivery: a second *process* writes a key every 20 ms; this process
   receives each change through ``watch_tree``. Prints the delay from the
   write's commit to its delivery (target: under 100 ms).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kvstore


def per_op(count: int, op: Callable[[int], object]) -> float:
    """Mean seconds per call of ``op`` over ``count`` calls."""
    start = time.perf_counter()
    for n in range(count):
        op(n)
    return (time.perf_counter() - start) / count


def raw_sqlite(path: Path, ops: int) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB, idx INTEGER, expires REAL) WITHOUT ROWID")

    def put(n: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO kv VALUES (?, ?, ?, NULL) ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
            "idx = excluded.idx",
            (f"bench/k{n % 100}", b"v" * 64, n),
        )
        conn.execute("COMMIT")

    def get(n: int) -> None:
        conn.execute("SELECT value, idx FROM kv WHERE key = ?", (f"bench/k{n % 100}",)).fetchone()

    result = per_op(ops, put), per_op(ops, get)
    conn.close()
    return result


def kv_sqlite(path: Path, ops: int) -> tuple[float, float]:
    with kvstore.new_store("sqlite", [str(path)]) as store:
        return (
            per_op(ops, lambda n: store.put(f"bench/k{n % 100}", b"v" * 64)),
            per_op(ops, lambda n: store.get(f"bench/k{n % 100}")),
        )


def _writer(path: str, changes: int, ready: multiprocessing.synchronize.Event) -> None:
    with kvstore.new_store("sqlite", [path]) as store:
        ready.wait()
        for n in range(changes):
            store.put(f"watched/k{n:06d}", repr(time.time()).encode())
            time.sleep(0.02)  # pacing: one change at a time, like nodes registering


def watch_latency(path: Path, changes: int) -> list[float]:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    delays: list[float] = []
    with kvstore.new_store("sqlite", [str(path)]) as store, store.watch_tree("watched") as watch:
        next(watch)
        writer = context.Process(target=_writer, args=(str(path), changes, ready))
        writer.start()
        ready.set()
        seen = 0
        while seen < changes:
            pairs = watch.next(timeout=10)
            received = time.time()
            for pair in pairs[seen:]:
                delays.append(received - float(pair.value))
            seen = len(pairs)
        writer.join()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_put, raw_get = raw_sqlite(Path(tmp) / "raw.db", args.ops)
        kv_put, kv_get = kv_sqlite(Path(tmp) / "kv.db", args.ops)
        delays = watch_latency(Path(tmp) / "watch.db", args.changes)
    print(
        f"sqlite put: kvstore {kv_put * 1e6:8.1f} us   raw sqlite3 {raw_put * 1e6:8.1f} us   "
        f"ratio {kv_put / raw_put:.2f}"
    )
    print(
        f"sqlite get: kvstore {kv_get * 1e6:8.1f} us   raw sqlite3 {raw_get * 1e6:8.1f} us   "
        f"ratio {kv_get / raw_get:.2f}"
    )
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(
        f"cross-process watch delivery over {len(ms)} changes: median {statistics.median(ms):.1f} ms, "
        f"p95 {p95:.1f} ms, max {ms[-1]:.1f} ms   (target 100 ms: p95/target {p95 / 100:.2f})"
    )


if __name__ == "__main__":
    main()
