"""Chaos under the manager: engines killed and hung, and the replicated primary killed, under a steady load.

Run: .venv/bin/python -m bench.chaos_manager [--workers 4] [--hold 8] [--part all|engines|replication]

(a) Engines. Three real dockerd nodes behind ``swarmctl manage``
(``--engine-failure-retry 2 --engine-timeout 2s``, refreshes every 2-3 s), one
long-running container on each. ``--workers`` threads call the docker CLI through
the manager without pause: ``docker ps -a``, ``docker run -d`` (no constraint:
the scheduler chooses), ``docker inspect`` and ``docker logs`` of a node's
container. Meanwhile one node is killed (SIGKILL of dockerd, its containerd and
containers), held down ``--hold`` seconds after it turns Unhealthy, started again;
then it is hung (SIGSTOP of dockerd: its kernel still accepts connections), held,
resumed (SIGCONT). Every call is classified: *about the faulty node* when it
named that node's container or its error names the node (a create the scheduler
had sent there before it was found out), *unrelated* otherwise. The goal is 0
unrelated failures.

(b) Replication. Two managers with ``--replication`` on one sqlite store (the
nodes ``join`` it), the workers calling ``docker ps -a`` and ``docker inspect``
through the replica (which forwards to the primary); the primary is SIGKILLed.
Measured: the time from the kill until the replica serves as primary (goal:
within the replication TTL plus a heartbeat), and the calls that failed: those
in flight at the kill (sent before it) and those sent after it (goal: none).

Prints one table per part. Figures on a shared 2-core machine are skewed by
whatever else runs there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import docker as dk
from tests.support.manager import Manager, managing
from tests.support.process import wait_for
from tests.support.swarm import Join

#: A hung node is found out in seconds with these (the defaults are for real clusters).
FAST = ("--engine-failure-retry", "2", "--engine-timeout", "2s")
#: The longest a docker CLI call may take before it counts as hung (and failed).
CALL_TIMEOUT = 30.0
REPLICATION_TTL = "3s"


@dataclass
class Call:
    """One docker CLI call: what it was about, when, and how it ended."""

    op: str
    node: str | None  # the node it named (its container), None when the manager chooses
    started: float
    seconds: float
    ok: bool
    error: str = ""

    def about(self, faulty: str) -> bool:
        return self.node == faulty or faulty in self.error


@dataclass
class Load:
    """Worker threads calling the docker CLI on ``host`` until stopped; every call recorded."""

    host: str
    ops: list[tuple[str, Callable[[], tuple[list[str], str | None]]]]
    workers: int
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, args=(random.Random(n),), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CALL_TIMEOUT + 5)

    def _work(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            op, make = rng.choice(self.ops)
            argv, node = make()
            started = time.monotonic()
            try:
                result = subprocess.run(
                    [dk.DOCKER, "-H", self.host, *argv], capture_output=True, timeout=CALL_TIMEOUT, check=False
                )
                ok, error = result.returncode == 0, result.stderr.decode(errors="replace").strip()
            except subprocess.TimeoutExpired:
                ok, error = False, f"no answer within {CALL_TIMEOUT:g}s"
            call = Call(op, node, started, time.monotonic() - started, ok, "" if ok else error)
            with self._lock:
                self.calls.append(call)

    def between(self, start: float, end: float) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if start <= c.started < end]


def keep_loading(seconds: float) -> None:
    """Let the workers run for ``seconds``: a phase of the load, not a wait for a condition."""
    threading.Event().wait(seconds)


# -- (a) engines -----------------------------------------------------------------------------
@dataclass
class FaultRow:
    fault: str
    unhealthy_after: float
    healthy_after: float
    calls: int
    unrelated_failed: int
    about_node: int
    about_node_failed: int
    slowest_unrelated: float
    examples: list[str]


def engine_ops(names: list[str]) -> list[tuple[str, Callable[[], tuple[list[str], str | None]]]]:
    def ps() -> tuple[list[str], str | None]:
        return ["ps", "-a", "--format", "{{.Names}} {{.Status}}"], None

    def run() -> tuple[list[str], str | None]:
        return ["run", "-d", "--label", "chaos=1", dk.IMAGE, "sleep", "120"], None

    def inspect() -> tuple[list[str], str | None]:
        node = random.choice(names)
        return ["inspect", "-f", "{{.State.Status}}", f"steady-{node}"], node

    def logs() -> tuple[list[str], str | None]:
        node = random.choice(names)
        return ["logs", "--tail", "5", f"steady-{node}"], node

    return [("ps -a", ps), ("run -d", run), ("inspect", inspect), ("logs", logs)]


def _fault_row(
    fault: str, load: Load, start: float, end: float, faulty: str, unhealthy: float, back: float
) -> FaultRow:
    calls = load.between(start, end)
    unrelated = [c for c in calls if not c.about(faulty)]
    about = [c for c in calls if c.about(faulty)]
    failed = [c for c in unrelated if not c.ok]
    return FaultRow(
        fault,
        unhealthy,
        back,
        len(calls),
        len(failed),
        len(about),
        sum(not c.ok for c in about),
        max((c.seconds for c in unrelated), default=0.0),
        [f"{c.op}: {c.error[:160]}" for c in failed[:3]],
    )


def status_of(manager: Manager, name: str) -> str:
    with contextlib.suppress(Exception):
        return manager.node_status().get(name, "")
    return ""


def chaos_engines(
    workdir: Path, workers: int, hold: float, faults: tuple[str, ...] = ("kill", "hang")
) -> list[FaultRow]:
    """Part (a): one row per fault (see the module's docstring)."""
    names = ["cnode1", "cnode2", "cnode3"]
    nodes = [dk.DockerNode(name) for name in names]
    rows: list[FaultRow] = []
    for folder in ("image", "manager"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    with dk.running_nodes(nodes, workdir / "image"), managing(workdir / "manager", nodes, *FAST) as manager:
        for name in names:
            manager.ok("run", "-d", "--name", f"steady-{name}", "-e", f"constraint:node=={name}", dk.IMAGE, "sh", "-c",
                       "echo up; exec sleep 3600")  # fmt: skip
        victim = nodes[1]
        load = Load(f"tcp://{manager.addr}", engine_ops(names), workers).start()
        frozen: int | None = None
        try:
            keep_loading(hold / 2)
            for fault in faults:
                start = time.monotonic()
                if fault == "kill":
                    victim.kill()
                else:
                    assert victim.process is not None and victim.process.proc is not None
                    frozen = victim.process.proc.pid
                    os.kill(frozen, signal.SIGSTOP)
                wait_for(lambda: status_of(manager, victim.name) == "Unhealthy", 90, "the node to turn Unhealthy")
                unhealthy = time.monotonic() - start
                keep_loading(hold)
                resumed = time.monotonic()
                if fault == "kill":
                    victim.start()
                elif frozen is not None:
                    os.kill(frozen, signal.SIGCONT)
                    frozen = None
                wait_for(lambda: status_of(manager, victim.name) == "Healthy", 90, "the node to be Healthy again")
                back = time.monotonic() - resumed
                keep_loading(hold / 2)
                rows.append(_fault_row(fault, load, start, time.monotonic(), victim.name, unhealthy, back))
        finally:
            if frozen is not None:
                os.kill(frozen, signal.SIGCONT)
            load.stop()
            if victim.process is None or not victim.process.running:
                victim.start()  # so that running_nodes removes its containers and stops it
    return rows


# -- (b) replication ---------------------------------------------------------------------------
@dataclass
class FailoverRow:
    ttl: str
    serves_after: float
    calls: int
    failed_in_flight: int
    failed_after_kill: int
    examples: list[str]


class Replica(Manager):
    def __init__(self, workdir: Path, discovery: str) -> None:
        super().__init__(workdir, discovery, replication_ttl=REPLICATION_TTL)

    def role(self) -> str:
        with contextlib.suppress(Exception):
            return self.info().get("Role", "")
        return ""


def chaos_replication(workdir: Path, workers: int, hold: float) -> FailoverRow:
    """Part (b): the primary killed under load through the replica (see the module's docstring)."""
    nodes = [dk.DockerNode(f"rcnode{n}") for n in (1, 2)]
    url = f"sqlite://{workdir}/kv.db"
    (workdir / "image").mkdir(parents=True, exist_ok=True)
    with dk.running_nodes(nodes, workdir / "image"):
        joins = [Join(workdir, node.addr, url, heartbeat="1s", ttl="5s").start() for node in nodes]
        managers = [Replica(workdir, url) for _ in range(2)]
        load: Load | None = None
        try:
            wait_for(lambda: sorted(m.role() for m in managers) == ["primary", "replica"], 60, "one primary")
            primary = next(m for m in managers if m.role() == "primary")
            replica = next(m for m in managers if m is not primary)
            replica.wait_nodes({"rcnode1": "Healthy", "rcnode2": "Healthy"})
            replica.ok("run", "-d", "--name", "steady", dk.IMAGE, "sleep", "3600")

            def ps() -> tuple[list[str], str | None]:
                return ["ps", "-a", "--format", "{{.Names}}"], None

            def inspect() -> tuple[list[str], str | None]:
                return ["inspect", "-f", "{{.State.Status}}", "steady"], None

            load = Load(f"tcp://{replica.addr}", [("ps -a", ps), ("inspect", inspect)], workers).start()
            keep_loading(hold / 2)
            killed = time.monotonic()
            primary.process.kill()
            wait_for(lambda: replica.role() == "primary", 60, "the replica to take over", interval=0.1)
            serves = time.monotonic() - killed
            keep_loading(hold / 2)
            load.stop()
            calls = load.between(0, time.monotonic())
            in_flight = [c for c in calls if not c.ok and c.started < killed]
            after = [c for c in calls if not c.ok and c.started >= killed]
            return FailoverRow(
                REPLICATION_TTL,
                serves,
                len(calls),
                len(in_flight),
                len(after),
                [f"{c.op}: {c.error[:160]}" for c in (in_flight + after)[:3]],
            )
        finally:
            if load is not None:
                load.stop()
            for manager in managers:
                manager.process.kill()
            for join in joins:
                join.kill()


# -- the tables --------------------------------------------------------------------------------
def print_faults(rows: list[FaultRow]) -> None:
    head = ("fault", "unhealthy after", "healthy again", "calls", "unrelated failed", "about node", "of them failed",
            "slowest unrelated")  # fmt: skip
    print(" | ".join(head))
    for r in rows:
        cells = (r.fault, f"{r.unhealthy_after:.1f} s", f"{r.healthy_after:.1f} s", str(r.calls),
                 str(r.unrelated_failed), str(r.about_node), str(r.about_node_failed),
                 f"{r.slowest_unrelated:.2f} s")  # fmt: skip
        print(" | ".join(cells))
        for example in r.examples:
            print(f"    unrelated failure: {example}")


def print_failover(row: FailoverRow) -> None:
    print("replication TTL | replica serves after | calls | failed, in flight at the kill | failed, sent after it")
    print(f"{row.ttl} | {row.serves_after:.1f} s | {row.calls} | {row.failed_in_flight} | {row.failed_after_kill}")
    for example in row.examples:
        print(f"    failure: {example}")


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="chaos-", dir="/tmp") as directory:
        yield Path(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each fault lasts once detected")
    parser.add_argument("--part", choices=("all", "engines", "replication"), default="all")
    args = parser.parse_args()
    if (why := dk.available()) is not None:
        sys.exit(f"chaos_manager: {why}")
    if args.part in ("all", "engines"):
        with scratch() as workdir:
            print(f"(a) engine faults, {args.workers} workers of docker CLI calls through the manager")
            print_faults(chaos_engines(workdir / "engines", args.workers, args.hold))
    if args.part in ("all", "replication"):
        with scratch() as workdir:
            print(f"\n(b) replicated primary killed, {args.workers} workers through the replica")
            print_failover(chaos_replication(workdir / "replication", args.workers, args.hold))


if __name__ == "__main__":
    main()
