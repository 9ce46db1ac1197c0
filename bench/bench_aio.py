"""kvstore.aio against the sync kvstore, per operation, side by side in one run.

Run: .venv/bin/python -m bench.bench_aio [--ops 2000] [--changes 100]

For the sqlite store (one file per face, same shape): the mean latency of
``get`` and ``put``, and of watch delivery (a second store object on the
same file writes a key; the time until the watch yields the change), for
the sync API and the async one, and their ratio (async / sync; the issue's
target is at most 1). The async calls are awaited one at a time in one
event loop, so the figures compare like with like: one caller, one call in
flight.

etcd joins this table when ``kvstore.aio``'s etcd backend lands (the issue
also asks for the async API against the raw ``grpc.aio`` client there).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import kvstore
import kvstore.aio


def per_op(count: int, op: Callable[[int], object]) -> float:
    """Mean seconds per call of ``op`` over ``count`` calls."""
    start = time.perf_counter()
    for n in range(count):
        op(n)
    return (time.perf_counter() - start) / count


async def per_op_async(count: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Mean seconds per awaited call of ``op`` over ``count`` calls."""
    start = time.perf_counter()
    for n in range(count):
        await op(n)
    return (time.perf_counter() - start) / count


def sync_sqlite(path: Path, ops: int, changes: int) -> tuple[float, float, float]:
    with kvstore.new_store("sqlite", [str(path)]) as store, kvstore.new_store("sqlite", [str(path)]) as writer:
        put = per_op(ops, lambda n: store.put(f"bench/k{n % 100}", b"v" * 64))
        get = per_op(ops, lambda n: store.get(f"bench/k{n % 100}"))
        store.put("watched", b"0")
        with store.watch("watched") as watch:
            watch.next(timeout=10)

            def change(n: int) -> None:
                writer.put("watched", str(n + 1).encode())
                watch.next(timeout=10)

            delivery = per_op(changes, change)
    return put, get, delivery


async def async_sqlite(path: Path, ops: int, changes: int) -> tuple[float, float, float]:
    async with (
        kvstore.aio.new_store("sqlite", [str(path)]) as store,
        kvstore.aio.new_store("sqlite", [str(path)]) as writer,
    ):
        put = await per_op_async(ops, lambda n: store.put(f"bench/k{n % 100}", b"v" * 64))
        get = await per_op_async(ops, lambda n: store.get(f"bench/k{n % 100}"))
        await store.put("watched", b"0")
        async with store.watch("watched") as watch:
            await watch.next(timeout=10)

            async def change(n: int) -> None:
                await writer.put("watched", str(n + 1).encode())
                await watch.next(timeout=10)

            delivery = await per_op_async(changes, change)
    return put, get, delivery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-aio-") as tmp:
        sync = sync_sqlite(Path(tmp) / "sync.db", args.ops, args.changes)
        aio = asyncio.run(async_sqlite(Path(tmp) / "async.db", args.ops, args.changes))
    print(f"{'sqlite':<22}{'sync':>12}{'async':>12}{'async/sync':>12}")
    rows = (("get", sync[1], aio[1]), ("put", sync[0], aio[0]), ("watch delivery", sync[2], aio[2]))
    for name, s, a in rows:
        print(f"{name:<22}{s * 1e6:>10.1f}us{a * 1e6:>10.1f}us{a / s:>12.2f}")


if __name__ == "__main__":
    main()
