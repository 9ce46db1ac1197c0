"""``swarmctl list`` with 1,000 and 10,000 registered nodes on etcd and ZooKeeper; range expansion.

Run: .venv/bin/python -m bench.bench_discovery [--sizes 1000,10000]

For each store and size: registers the nodes the way ``join`` does (Swarm's
layout, ``docker/swarm/nodes/<addr>``), then times the real ``swarmctl list``
command (best of 3 runs, wall clock, peak RSS of the process) beside a
baseline in the same run: the raw client library (etcd3 ``get_prefix``;
kazoo ``get_children`` plus one ``get`` per child, as Docker Swarm's Go
``swarm list`` reads ZooKeeper) and the figures measured for Docker Swarm's
Go ``swarm list`` on these 2-core machines.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kvstore

SWARMCTL = str(Path(sys.executable).with_name("swarmctl"))
#: Docker Swarm 1.2.9's Go `swarm list`, measured on these machines (seconds).
GO_REFERENCE = {("etcd", 1000): 0.04, ("etcd", 10000): 0.21, ("zk", 10000): 2.7}


def run_list(argv: list[str]) -> tuple[float, float, int]:
    """Best-of-3 wall time (s), and peak RSS (MiB) and line count of a listing command."""
    best = float("inf")
    peak = 0.0
    lines = 0
    for _ in range(3):
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{argv} failed")
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)
        lines = len(out.splitlines())
    return best, peak, lines


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def register(url: str, count: int) -> None:
    """``count`` nodes in Swarm's layout, as ``join`` writes them."""
    with kvstore.from_url(url) as store:
        store.delete_tree("docker/swarm/nodes")
        for n in range(count):
            address = f"127.{n // 65536 % 256}.{n // 256 % 256}.{n % 256 + 1}:2375"
            store.put(f"docker/swarm/nodes/{address}", address.encode())


#: The same listing written directly against each client library, run as its own process
#: (so interpreter start-up and imports count on both sides).
RAW_ETCD = """
import sys, etcd3
host, port = sys.argv[1].rsplit(":", 1)
client = etcd3.client(host=host, port=int(port))
sys.stdout.write("".join(v.decode() + "\\n" for v, _ in client.get_prefix("bench/docker/swarm/nodes/")))
"""
RAW_KAZOO = """
import sys
from kazoo.client import KazooClient
client = KazooClient(hosts=sys.argv[1]); client.start()
base = "/bench/docker/swarm/nodes"
sys.stdout.write("".join(client.get(base + "/" + c)[0].decode() + "\\n" for c in client.get_children(base)))
client.stop()
"""


def report(store: str, size: int, url: str, endpoint: str, raw: str) -> None:
    register(url, size)
    wall, peak, lines = run_list([SWARMCTL, "list", "--timeout", "60s", url])
    assert lines == size, (lines, size)
    raw_wall, raw_peak, raw_lines = run_list([sys.executable, "-c", raw, endpoint])
    assert raw_lines == size, (raw_lines, size)
    go = GO_REFERENCE.get((store, size))
    go_text = f"   Go swarm list {go:.2f} s (ratio {wall / go:.2f})" if go else ""
    print(
        f"{store:4} {size:6} nodes: swarmctl list {wall:6.3f} s, {peak:5.1f} MiB   raw client script "
        f"{raw_wall:6.3f} s, {raw_peak:5.1f} MiB (ratio {wall / raw_wall:.2f}){go_text}"
    )


def ranges() -> None:
    from swarmctl.discovery.ranges import expand

    entry = "10.0.[0:255].[0:255]:2375"
    elapsed = best_of(3, lambda: expand(entry))
    naive = best_of(3, lambda: [f"10.0.{a}.{b}:2375" for a in range(256) for b in range(256)])
    print(
        f"ranges: {entry} -> 65536 checked addresses in {elapsed * 1000:.0f} ms "
        f"(unchecked f-string loop {naive * 1000:.0f} ms, ratio {elapsed / naive:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.etcd import single_etcd
    from tests.support.zookeeper import standalone

    ranges()
    with tempfile.TemporaryDirectory() as tmp:
        with single_etcd(Path(tmp) / "etcd") as etcd:
            for size in sizes:
                report("etcd", size, f"{etcd.url}/bench", etcd.endpoints[0], RAW_ETCD)
        with standalone(Path(tmp) / "zk") as zk:
            for size in sizes:
                report("zk", size, f"zk://{zk.address}/bench", zk.address, RAW_KAZOO)
    print(f"(peak RSS of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
