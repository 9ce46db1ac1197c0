"""kvstore.aio against the sync kvstore, per operation, side by side in one run.

Run: .venv/bin/python -m bench.bench_aio [--ops 2000] [--changes 100]

Run: .venv/bin/python -m bench.bench_aio --etcd 127.0.0.1:2379   (an etcd of your own; default: a throw-away one)

For sqlite (one file per face, same shape) and etcd: the mean latency of
``get`` and ``put``, and of watch delivery (a second store object writes a
key; the time until the watch yields the change), for the sync API and the
async one, and their ratio (async / sync; the issue's target: at most 1).
For etcd also the raw ``grpc.aio`` client on etcd's own stubs, the same
requests without kvstore, and async / raw (target: at most 1.10). The async
calls are awaited one at a time in one event loop, so the figures compare
like with like: one caller, one call in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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


def sync_etcd(endpoint: str, ops: int, changes: int) -> tuple[float, float, float]:
    with kvstore.new_store("etcd", [endpoint]) as store, kvstore.new_store("etcd", [endpoint]) as writer:
        put = per_op(ops, lambda n: store.put(f"bench-sync/k{n % 100}", b"v" * 64))
        get = per_op(ops, lambda n: store.get(f"bench-sync/k{n % 100}"))
        store.put("bench-sync/watched", b"0")
        with store.watch("bench-sync/watched") as watch:
            watch.next(timeout=10)

            def change(n: int) -> None:
                writer.put("bench-sync/watched", str(n + 1).encode())
                watch.next(timeout=10)

            delivery = per_op(changes, change)
    return put, get, delivery


async def async_etcd(endpoint: str, ops: int, changes: int) -> tuple[float, float, float]:
    async with kvstore.aio.new_store("etcd", [endpoint]) as store, kvstore.aio.new_store("etcd", [endpoint]) as writer:
        put = await per_op_async(ops, lambda n: store.put(f"bench-aio/k{n % 100}", b"v" * 64))
        get = await per_op_async(ops, lambda n: store.get(f"bench-aio/k{n % 100}"))
        await store.put("bench-aio/watched", b"0")
        async with store.watch("bench-aio/watched") as watch:
            await watch.next(timeout=10)

            async def change(n: int) -> None:
                await writer.put("bench-aio/watched", str(n + 1).encode())
                await watch.next(timeout=10)

            delivery = await per_op_async(changes, change)
    return put, get, delivery


async def raw_etcd(endpoint: str, ops: int, changes: int) -> tuple[float, float, float]:
    """The same requests on etcd's generated stubs over a ``grpc.aio`` channel: no kvstore at all."""
    import grpc.aio  # type: ignore[import-untyped]
    from etcd3 import etcdrpc  # type: ignore[import-untyped]

    async with grpc.aio.insecure_channel(endpoint) as channel, grpc.aio.insecure_channel(endpoint) as other:
        kv, writer, watcher = etcdrpc.KVStub(channel), etcdrpc.KVStub(other), etcdrpc.WatchStub(channel)

        def put_request(n: int) -> Any:
            return etcdrpc.PutRequest(key=f"bench-raw/k{n % 100}".encode(), value=b"v" * 64)

        put = await per_op_async(ops, lambda n: kv.Put(put_request(n), timeout=10))
        get = await per_op_async(ops, lambda n: kv.Range(etcdrpc.RangeRequest(key=f"bench-raw/k{n % 100}".encode())))
        key = b"bench-raw/watched"
        call = watcher.Watch()
        await call.write(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(key=key)))
        await call.read()  # "created"

        async def change(n: int) -> None:
            await writer.Put(etcdrpc.PutRequest(key=key, value=str(n + 1).encode()), timeout=10)
            await call.read()

        delivery = await per_op_async(changes, change)
        call.cancel()
    return put, get, delivery


def print_table(title: str, columns: list[str], rows: list[tuple[str, list[float]]], latencies: int) -> None:
    """One line per operation: the first ``latencies`` values are seconds (shown in us), the rest ratios."""
    print(f"{title:<22}" + "".join(f"{c:>14}" for c in columns))
    for name, values in rows:
        cells = [f"{v * 1e6:>12.1f}us" if i < latencies else f"{v:>14.2f}" for i, v in enumerate(values)]
        print(f"{name:<22}" + "".join(cells))


def etcd_rows(endpoint: str, ops: int, changes: int) -> list[tuple[str, list[float]]]:
    sync = sync_etcd(endpoint, ops, changes)
    aio = asyncio.run(async_etcd(endpoint, ops, changes))
    raw = asyncio.run(raw_etcd(endpoint, ops, changes))
    order = ((1, "get"), (0, "put"), (2, "watch delivery"))
    return [(name, [sync[i], aio[i], raw[i], aio[i] / sync[i], aio[i] / raw[i]]) for i, name in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--etcd", help="host:port of an etcd to use (default: start a throw-away one)")
    parser.add_argument("--no-etcd", action="store_true", help="sqlite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-aio-") as tmp:
        sync = sync_sqlite(Path(tmp) / "sync.db", args.ops, args.changes)
        aio = asyncio.run(async_sqlite(Path(tmp) / "async.db", args.ops, args.changes))
    order = ((1, "get"), (0, "put"), (2, "watch delivery"))
    rows = [(n, [sync[i], aio[i], aio[i] / sync[i]]) for i, n in order]
    print_table("sqlite", ["sync", "async", "async/sync"], rows, latencies=2)
    if args.no_etcd:
        return
    from bench.bench_etcd import server

    with server(args.etcd) as endpoint:
        etcd = etcd_rows(endpoint, args.ops, args.changes)
    print_table("etcd", ["sync", "async", "raw grpc.aio", "async/sync", "async/raw"], etcd, latencies=3)


if __name__ == "__main__":
    main()
