"""Store leader kills during a ``swarmctl join`` storm, on etcd (3 members) and ZooKeeper (3 servers).

    .venv/bin/python bench/chaos_store.py                        # 60 joins, 2 leader kills, both stores
    .venv/bin/python bench/chaos_store.py --nodes 20 --kills 1 --store etcd

``--nodes`` real ``swarmctl join`` processes register on a fresh cluster
with ``--delay`` (so they arrive spread out), ``--heartbeat`` and ``--ttl``.
While they run, the listing is polled every quarter second on another
connection, and the store's leader is killed (SIGKILL) ``--kills`` times;
after each kill the dead member is restarted once the listing is complete
again, so the next kill hits a whole cluster. Counted, per kill:

- convergence: from the kill until a poll lists again every node that was
  listed at the kill (the store readable, nothing it held missing); the
  first kill comes while the storm is still arriving, and the nodes that
  join after it are waited for, but not counted in its convergence;
- expiries: nodes that vanished from a listing while their ``join`` ran
  (an entry that expired or was deleted, even if written again later);
- the longest gap between two writes of one node seen by the polls (each
  write gives the entry a new index), from the kill until the next kill or
  the end: it must stay under the TTL, or the entry would expire;
- failed polls: listings that could not be read at all.

At the end, lost registrations: joined nodes not listed (goal 0). The
machine is shared (2 cores): times measured while other work runs are
slower than on an idle machine; counts are what matters.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kvstore
from kvstore import Config
from tests.support.etcd import EtcdCluster
from tests.support.process import wait_for
from tests.support.swarm import Join
from tests.support.zookeeper import Ensemble

NODES_PATH = "docker/swarm/nodes"
POLL = 0.25


@dataclass
class KillResult:
    """What one leader kill cost."""

    convergence: float
    expiries: int
    failed_polls: int
    longest_gap: float


@dataclass
class StormResult:
    """One store's run: the joins, each kill, and what was listed at the end."""

    store: str
    nodes: int
    registered_in: float
    kills: list[KillResult] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    expiries_total: int = 0
    joins: list[Join] = field(default_factory=list, repr=False)


class Poller:
    """Lists the nodes every :data:`POLL` seconds; remembers who vanished and when a listing was complete."""

    def __init__(self, store: kvstore.Store, expected: set[str]) -> None:
        self.store = store
        self.expected = expected
        self.present: set[str] = set()
        self.expiries = 0
        self.failed = 0
        self.complete_at: float | None = None  # last poll that listed everyone
        self.history: list[tuple[float, frozenset[str]]] = []  # every poll that could be read
        self._written: dict[str, tuple[int, float]] = {}  # node -> (index, when a poll first saw it)
        self.longest_gap = 0.0  # seconds; the bench resets it at each kill
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-poller", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def poll(self) -> set[str] | None:
        try:
            pairs = self.store.list(NODES_PATH)
        except kvstore.KeyNotFoundError:
            return set()
        except kvstore.KVStoreError:
            return None
        now = time.monotonic()
        for pair in pairs:
            node = pair.key.rsplit("/", 1)[-1]
            index, seen_at = self._written.get(node, (-1, now))
            if pair.last_index != index:
                if index >= 0:
                    self.longest_gap = max(self.longest_gap, now - seen_at)
                self._written[node] = (pair.last_index, now)
        return {p.key.rsplit("/", 1)[-1] for p in pairs}

    def back_after(self, since: float, nodes: set[str]) -> float | None:
        """When the first poll after ``since`` listed all of ``nodes``, if one did."""
        for at, listed in list(self.history):
            if at > since and nodes <= listed:
                return at
        return None

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            listed = self.poll()
            if listed is None:
                self.failed += 1
                continue
            self.history.append((time.monotonic(), frozenset(listed)))
            self.expiries += len(self.present - listed)
            self.present = listed
            if self.expected <= listed:
                self.complete_at = time.monotonic()


class Cluster:
    """The store under test: its URL, how to kill its leader, how to bring the dead member back."""

    def __init__(
        self,
        name: str,
        addrs: list[str],
        kill_leader: Callable[[], None],
        heal: Callable[[], None],
    ) -> None:
        self.name = name
        self.addrs = addrs
        self.kill_leader = kill_leader
        self.heal = heal

    @property
    def url(self) -> str:
        scheme = "etcd" if self.name == "etcd" else "zk"
        return f"{scheme}://{','.join(self.addrs)}/chaos"


@contextlib.contextmanager
def etcd(workdir: Path) -> Iterator[Cluster]:
    with EtcdCluster(workdir, size=3) as cluster:
        cluster.start()

        def kill_leader() -> None:
            cluster.kill_member(cluster.wait_for_leader())

        yield Cluster("etcd", cluster.endpoints, kill_leader, cluster.restart_stopped)


@contextlib.contextmanager
def zookeeper(workdir: Path) -> Iterator[Cluster]:
    group = Ensemble(workdir, size=3)
    try:
        group.start()

        def kill_leader() -> None:
            group.wait_quorum().kill()

        def heal() -> None:
            for server in group.servers:
                if not server.running:
                    server.start(wait=False)
            group.wait_quorum()

        yield Cluster("zookeeper", group.addrs, kill_leader, heal)
    finally:
        group.stop()


STORES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Cluster]]] = {
    "etcd": etcd,
    "zookeeper": zookeeper,
}


def storm(
    cluster: Cluster,
    workdir: Path,
    *,
    nodes: int,
    kills: int,
    heartbeat: str = "2s",
    ttl: str = "6s",
    delay: str = "5s",
    deadline: float = 120.0,
) -> StormResult:
    """Run ``nodes`` joins on ``cluster``, kill its leader ``kills`` times, and count what was lost."""
    addresses = [f"127.0.{10 + n // 250}.{1 + n % 250}:2375" for n in range(nodes)]
    expected = set(addresses)
    joins = [
        Join(workdir / "joins", addr, cluster.url, heartbeat=heartbeat, ttl=ttl, delay=delay) for addr in addresses
    ]
    config = Config(connection_timeout=5.0)
    ttl_s = float(ttl.rstrip("s"))
    with kvstore.from_url(cluster.url, config) as store:
        poller = Poller(store, expected)
        started = time.monotonic()
        result = StormResult(cluster.name, nodes, 0.0)
        try:
            for join in joins:
                join.start()
            result.joins = joins
            poller.start()
            # The first kill comes in the middle of the storm, when half the nodes are listed.
            wait_for(lambda: len(poller.present) >= nodes // 2, deadline, f"{nodes // 2} nodes listed", interval=0.05)
            for _ in range(kills):
                expiries, failed = poller.expiries, poller.failed
                poller.longest_gap = 0.0
                at_kill = set(poller.present)
                killed_at = time.monotonic()
                cluster.kill_leader()
                convergence = float("inf")  # a node that never came back is counted as lost below
                with contextlib.suppress(TimeoutError):
                    wait_for(
                        lambda killed_at=killed_at, at_kill=at_kill: poller.back_after(killed_at, at_kill) is not None,
                        deadline,
                        "every node listed at the kill listed again",
                        interval=0.05,
                    )
                    convergence = (poller.back_after(killed_at, at_kill) or killed_at) - killed_at
                    wait_for(
                        lambda killed_at=killed_at: poller.complete_at is not None and poller.complete_at > killed_at,
                        deadline,
                        "every node listed",
                        interval=0.05,
                    )
                if not result.registered_in and poller.complete_at is not None:
                    result.registered_in = poller.complete_at - started
                cluster.heal()
                # A whole TTL after the heal: an entry that missed its refreshes would have expired by then.
                healed = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    wait_for(
                        lambda healed=healed: poller.complete_at is not None and poller.complete_at > healed + ttl_s,
                        deadline if convergence < deadline else ttl_s * 2,
                        "a complete listing one TTL after the heal",
                        interval=0.1,
                    )
                result.kills.append(
                    KillResult(convergence, poller.expiries - expiries, poller.failed - failed, poller.longest_gap)
                )
            final = poller.poll()
            result.lost = sorted(expected - (final or set()))
            result.expiries_total = poller.expiries
            return result
        finally:
            poller.stop()
            for join in joins:  # all at once: each deregisters on SIGTERM
                join.signal(signal.SIGTERM)
            for join in joins:
                join.stop()


def table(results: list[StormResult]) -> str:
    rows = [("store", "nodes", "kill", "convergence s", "longest write gap s", "expiries", "failed polls", "lost")]
    for result in results:
        for n, kill in enumerate(result.kills, 1):
            rows.append(
                (
                    result.store,
                    str(result.nodes),
                    f"#{n}",
                    f"{kill.convergence:.2f}",
                    f"{kill.longest_gap:.2f}",
                    str(kill.expiries),
                    str(kill.failed_polls),
                    "",
                )
            )
        rows.append(
            (result.store, str(result.nodes), "end", "", "", str(result.expiries_total), "", str(len(result.lost)))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=[*STORES, "all"], default="all")
    parser.add_argument("--nodes", type=int, default=60)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--heartbeat", default="2s")
    parser.add_argument("--ttl", default="6s")
    parser.add_argument("--delay", default="5s")
    args = parser.parse_args()
    results: list[StormResult] = []
    for name in STORES if args.store == "all" else [args.store]:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as scratch, STORES[name](Path(scratch)) as cluster:
            result = storm(
                cluster,
                Path(scratch),
                nodes=args.nodes,
                kills=args.kills,
                heartbeat=args.heartbeat,
                ttl=args.ttl,
                delay=args.delay,
            )
            results.append(result)
            print(
                f"{name}: all {result.nodes} joins listed {result.registered_in:.1f} s after they started", flush=True
            )
            if result.lost:
                print(f"{name}: lost {', '.join(result.lost)}", flush=True)
                for join in result.joins:
                    if join.argv[join.argv.index("--advertise") + 1] in result.lost[:2]:
                        print(f"--- {join.name}\n{join.log_tail(15)}", flush=True)
    print(
        f"leader killed {args.kills}x during {args.nodes} joins (--delay {args.delay} --heartbeat {args.heartbeat} "
        f"--ttl {args.ttl}):"
    )
    print(table(results))


if __name__ == "__main__":
    main()
