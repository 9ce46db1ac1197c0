"""How long the scheduler takes to place one container among 1,000 candidate nodes.

Run: .venv/bin/python -m bench.bench_scheduler [--nodes 1000] [--containers 10] [--rounds 200]

The nodes are the manager's own ``Engine`` objects with their caches filled
as a refresh fills them (``/info`` with labels, 10 containers each with
inspect data, some reserving memory and host ports, 3 images), so the
scheduler reads exactly what it reads in ``swarmctl manage``; no network is
involved, this is the decision alone. Measured side by side, in alternating
rounds of the same run:

- baseline: the trivial pick of the first healthy node;
- for scale, the scheduler this one replaced (spread only, on healthy
  nodes, preferring those with the image; no filters, no snapshots);
- the scheduler (all six filters) for a plain container under spread and
  binpack, one reserving memory, one with a constraint and an affinity, one
  binding a host port, with node snapshots reused (the usual case: a node's
  snapshot is rebuilt only when its cache changes);
- and cold, on another 1,000 nodes whose caches all changed since the last
  decision (the worst case, as after a full refresh of every node), for a
  plain container and for one with two constraints and an affinity.

Prints the median and 95th percentile of each, and its ratio to the baseline
and to the previous scheduler: the median of the ratios within each round
(the cases of a round run back to back), which a busy machine disturbs less
than a ratio of medians.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarmctl.cluster.engine import HEALTHY, Engine, EngineOptions
from swarmctl.cluster.events import EventBus
from swarmctl.scheduler import ContainerRequest, Scheduler, nodes_of

GiB = 1 << 30


def make_engines(count: int, containers: int) -> list[Engine]:
    bus, options = EventBus(), EngineOptions()
    engines = []
    for n in range(count):
        engine = Engine(f"127.{n // 65536}.{n // 256 % 256}.{n % 256}:2375", bus, options)
        engine.info = {
            "Name": f"node{n}",
            "ID": secrets.token_hex(16),
            "NCPU": 8,
            "MemTotal": 64 * GiB,
            "Labels": [f"zone=z{n % 10}", f"disk={'ssd' if n % 2 else 'hdd'}"],
            "Driver": "overlay2",
            "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
            "KernelVersion": "6.1.0-18-amd64",
            "OSType": "linux",
        }
        engine.state = HEALTHY
        for c in range(containers):
            cid = secrets.token_hex(32)
            host_port = str(8000 + (n * containers + c) % 1000)  # each port taken on a few nodes
            ports = {"80/tcp": [{"HostIp": "", "HostPort": host_port}]} if c % 3 == 0 else {}
            labels = {"role": "web" if c % 2 else "db"}
            engine.containers[cid] = {"Id": cid, "Names": [f"/web{n}-{c}"], "Labels": labels, "State": "running"}
            engine.inspects[cid] = {
                "Id": cid,
                "Name": f"/web{n}-{c}",
                "Config": {"Image": "busybox", "Labels": labels},
                "HostConfig": {
                    "Memory": GiB if c % 2 else 0,
                    "CpuShares": 512 if c % 4 == 0 else 0,
                    "PortBindings": ports,
                },
                "NetworkSettings": {"Ports": {}},
            }
        engine.images = [{"Id": f"sha256:{secrets.token_hex(32)}", "RepoTags": [f"img{i}:latest"]} for i in range(3)]
        engines.append(engine)
    return engines


def previous_spread(engines: list[Engine], image: str) -> Engine:
    """The scheduler before this one (kept here for comparison): spread only, image holders first."""
    from swarmctl.cluster.cluster import image_matches

    candidates = [e for e in engines if e.healthy]
    with_image = [e for e in candidates if image and image_matches(e, image)]

    def rank(engine: Engine) -> tuple[int, float, str]:
        cpus, memory = engine.reserved()
        load = max(cpus / engine.ncpu if engine.ncpu else 0.0, memory / engine.memory if engine.memory else 0.0)
        return len(engine.containers), load, engine.name

    return min(with_image or candidates, key=rank)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=10, help="containers per node")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    engines = make_engines(args.nodes, args.containers)
    spread, binpack = Scheduler("spread"), Scheduler("binpack")

    def request(**body: object) -> ContainerRequest:
        return ContainerRequest.from_body({"Image": "img1:latest", **body})

    plain = request()
    memory = request(HostConfig={"Memory": 2 * GiB, "CpuShares": 1024})
    rules = request(Env=["constraint:zone==z7", "constraint:disk!=hdd", "affinity:container!=web7-3"])
    port = request(HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8000"}]}})

    def decide(scheduler: Scheduler, wanted: ContainerRequest) -> Callable[[], object]:
        return lambda: scheduler.select(wanted, nodes_of(engines))[0]

    # The cold cases have engines of their own, so that they leave the warm cases warm.
    churned = make_engines(args.nodes, args.containers)

    def cold(scheduler: Scheduler, wanted: ContainerRequest) -> Callable[[], object]:
        def run() -> object:
            for engine in churned:  # every node's cache changed: every snapshot is rebuilt
                engine.generation += 1
            return scheduler.select(wanted, nodes_of(churned))[0]

        return run

    cases: dict[str, Callable[[], object]] = {
        "baseline: first healthy node": lambda: next(e for e in engines if e.healthy),
        "previous scheduler (spread only)": lambda: previous_spread(engines, "img1:latest"),
        "spread, plain container": decide(spread, plain),
        "binpack, plain container": decide(binpack, plain),
        "spread, -m 2g -c 1024": decide(spread, memory),
        "spread, constraints+affinity": decide(spread, rules),
        "spread, -p 8000:80 (port filter)": decide(spread, port),
        "cold snapshots: spread, plain": cold(spread, plain),
        "cold snapshots: constraints+affinity": cold(spread, rules),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():  # warm up: snapshots built once, as in a running manager
        case()
    for _ in range(args.rounds):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            samples[name].append(time.perf_counter() - start)

    base = samples["baseline: first healthy node"]
    old = samples["previous scheduler (spread only)"]
    print(f"scheduling decision among {args.nodes} nodes ({args.containers} containers each), {args.rounds} rounds")
    print(f"{'case':<36} {'median':>12} {'p95':>12} {'x first node':>13} {'x previous':>11}")
    for name, times in samples.items():
        median = statistics.median(times)
        p95 = sorted(times)[int(len(times) * 0.95) - 1]
        to_base = statistics.median(t / b for t, b in zip(times, base, strict=True))
        to_old = statistics.median(t / o for t, o in zip(times, old, strict=True))
        print(f"{name:<36} {median * 1e3:>9.3f} ms {p95 * 1e3:>9.3f} ms {to_base:>12.0f}x {to_old:>10.2f}x")


if __name__ == "__main__":
    main()
