"""The manager at scale: 1,000 simulated engines x 30 containers, against Docker Swarm's figures and a ceiling.

Run: .venv/bin/python -m bench.bench_scale [--engines 1000] [--containers 30] [--settle 30] [--seconds 60]
                                           [--requests 100] [--budget 120] [--deadline 300] [--quick] [--keep]
                                           [--swarmctl PATH]

Starts ``bench.enginesim`` (the engines, in a process of their own) and a
``swarmctl manage`` on a file discovery of them, each pinned to a core of its
own when the machine has two (the benchmark's client shares the simulator's:
the simulator has little to do once the manager has read it), then measures:

- the time from the manager's start until every engine is Healthy (``└ Status``
  in ``/info``'s SystemStatus) and all engines x containers are listed by
  ``GET /containers/json?all=1``; and how busy the simulator was meanwhile, to
  show whether it, not the manager, held the start-up back;
- the manager's CPU (% of one core, from /proc/PID/stat) while nobody asks it
  anything, over ``--seconds`` (60: the manager's default
  ``--engine-refresh-max-interval``, so every engine's periodic refresh falls
  in it) starting ``--settle`` seconds after that (30: the default
  ``--engine-refresh-min-interval``), and its RSS. Right after start-up no
  periodic refresh has begun yet, and a window there reads 0.2 % in one run
  and 7 % in the next, depending on whether it reaches the first refreshes;
  settled, the window sees the steady state the manager then stays in, and
  so do the requests measured after it;
- ``GET /info``, ``GET /containers/json?all=1`` and ``create + start`` (POST
  /containers/create of a small busybox container, then POST start, timed
  together): ``--requests`` each (or as many as ``--budget`` seconds allow),
  one after the other on ONE keep-alive connection, p50 / p90 / p99;
- in the same run, once the manager is stopped, the same requests against a
  trivial aiohttp server on the manager's core that answers, as fixed bodies,
  the very bytes the manager answered last (the ceiling of the Python stack:
  what the manager would cost if computing the answer were free), as ratios
  manager / ceiling.

Docker Swarm's Go manager, measured at 1,000 x 30 on this machine in 2026-11,
is printed beside, with the targets of issue 13. If the cluster is not all
Healthy and listed within ``--deadline`` seconds the benchmark says so, goes
on measuring what it can (marked), and exits 1. Both processes are always
torn down.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.process import ManagedProcess, free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parent.parent

SWARMCTL = str(Path(sys.executable).with_name("swarmctl"))
CREATE_BODY = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1000"]}).encode()

#: Docker Swarm (Go), measured 2026-11 on this machine at 1,000 engines x 30 containers.
GO_LABEL = "Go Docker Swarm, measured 2026-11 on this machine"
GO_READY_S = 12.8
GO_INFO_MS = (59.0, 104.0, 155.0)
GO_LIST_MS = (370.0, 424.0, 508.0)
GO_CREATE_MS = (188.0, 228.0, 443.0)
GO_IDLE_CPU_PCT = 9.0
GO_RSS_MIB = 603.0
#: Issue 13's targets at 1,000 x 30.
TARGET_READY_S = 10.0
TARGET_IDLE_CPU_PCT = 5.0
TARGET_INFO_P99_MS = 50.0
TARGET_LIST_P99_MS = 250.0
TARGET_CREATE_P99_MS = 100.0
TARGET_RSS_MIB = 400.0


# -- processes -------------------------------------------------------------------


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` on one CPU (``taskset``, so every thread it ever starts stays there), or as is."""
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def cpus() -> tuple[int | None, int | None]:
    """The manager's CPU and the simulator's (and this client's): two different ones, when there are two."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (clock ticks of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pid_of(process: ManagedProcess) -> int:
    """The real process's PID: under ``taskset``, which execs it, that is the PID we started."""
    assert process.proc is not None
    return process.proc.pid


def stop(process: ManagedProcess | None, notes: list[str]) -> None:
    """SIGTERM, and SIGKILL after 10 s, noting it: a manager that does not stop when told is worth knowing about."""
    if process is None or not process.running:
        if process is not None:
            process.stop()
        return
    assert process.proc is not None
    process.signal(signal.SIGTERM)
    try:
        process.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        notes.append(f"{process.name} did not exit within 10 s of SIGTERM; killed")
    process.stop(timeout=1)


# -- one client connection ----------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection, requests one after the other (reconnecting if the server hangs up)."""

    def __init__(self, addr: str, timeout: float = 120) -> None:
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # a kept-alive connection the server closed meanwhile: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass
class Timings:
    """Latencies of one kind of request, in ms, and what the last answer was (for the ceiling to mimic)."""

    what: str
    ms: list[float] = field(default_factory=list)
    failures: int = 0
    last_error: str = ""
    body: bytes = b""
    #: Stopped by the time budget before ``count`` requests.
    cut: bool = False
    #: The uncounted first requests (a slow first one is worth a line of its own).
    warm_ms: list[float] = field(default_factory=list)

    def percentiles(self) -> tuple[float, float, float] | None:
        if not self.ms:
            return None
        if len(self.ms) == 1:
            return self.ms[0], self.ms[0], self.ms[0]
        cuts = statistics.quantiles(self.ms, n=100, method="inclusive")
        return cuts[49], cuts[89], cuts[98]


def timed(what: str, count: int, one: Callable[[], bytes], budget: float, warm_up: int = 2) -> Timings:
    """``count`` calls of ``one`` in a row (after ``warm_up`` uncounted ones), or as many as ``budget`` seconds allow.

    A failed call is counted, not timed. The budget keeps a manager that
    takes seconds per answer from holding the benchmark for an hour; the
    report says how many were made.
    """
    result = Timings(what)
    began_all = last_report = time.monotonic()
    for n in range(warm_up + count):
        began = time.perf_counter()
        try:
            result.body = one()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            result.failures += 1
            result.last_error = f"{type(exc).__name__}: {exc}"
        else:
            (result.ms if n >= warm_up else result.warm_ms).append((time.perf_counter() - began) * 1000)
        now = time.monotonic()
        if now - began_all > budget:
            result.cut = True
            break
        if now - last_report >= 15:
            last_report = now
            print(f"  {what}: {len(result.ms)} of {count} after {now - began_all:.0f} s", flush=True)
    return result


def expect(status: int, body: bytes, wanted: int, what: str) -> bytes:
    if status != wanted:
        raise ValueError(f"{what}: HTTP {status}: {body[:200]!r}")
    return body


def measure(addr: str, requests: int, budget: float) -> list[Timings]:
    """``/info``, ``/containers/json?all=1`` and create + start, ``requests`` each, on one connection."""
    client = Client(addr)
    try:

        def info() -> bytes:
            return expect(*client.request("GET", "/info"), 200, "GET /info")

        def listing() -> bytes:
            return expect(*client.request("GET", "/containers/json?all=1"), 200, "GET /containers/json")

        def create_start() -> bytes:
            created = expect(*client.request("POST", "/containers/create", CREATE_BODY), 201, "create")
            cid = json.loads(created)["Id"]
            expect(*client.request("POST", f"/containers/{cid}/start", b""), 204, "start")
            return created

        return [
            timed("GET /info", requests, info, budget),
            timed("GET /containers/json?all=1", requests, listing, budget),
            timed("create + start", requests, create_start, budget),
        ]
    finally:
        client.close()


# -- the ceiling ------------------------------------------------------------------


def serve_ceiling(port: int, directory: Path) -> None:
    """A trivial aiohttp server answering fixed bodies: the Python stack's own cost, with nothing computed."""
    from aiohttp import web

    info = (directory / "info.json").read_bytes()
    listing = (directory / "list.json").read_bytes()
    created = (directory / "create.json").read_bytes()

    async def get_info(request: web.Request) -> web.Response:
        return web.Response(body=info, content_type="application/json")

    async def get_list(request: web.Request) -> web.Response:
        return web.Response(body=listing, content_type="application/json")

    async def create(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=201, body=created, content_type="application/json")

    async def start(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/info", get_info)
    app.router.add_get("/containers/json", get_list)
    app.router.add_post("/containers/create", create)
    app.router.add_post("/containers/{id}/start", start)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- waiting for the cluster --------------------------------------------------------


@dataclass
class Progress:
    healthy: int = 0
    listed: int = 0
    healthy_at: float | None = None
    ready_at: float | None = None


def node_states(info: dict[str, object]) -> int:
    """How many nodes ``/info``'s SystemStatus says are Healthy."""
    status = info.get("SystemStatus") or []
    assert isinstance(status, list)
    return sum(1 for key, value in status if str(key).strip() == "└ Status" and value == "Healthy")


def wait_ready(addr: str, manager: ManagedProcess, engines: int, total: int, began: float, deadline: float) -> Progress:
    """Poll until every engine is Healthy and all ``total`` containers are listed, or the deadline passes.

    ``/info`` (cheap) is polled until it shows every node Healthy and the
    cluster's container count at ``total``; only then is the whole listing
    fetched and counted, so the polling itself costs the manager little.
    """
    progress = Progress()
    client = Client(addr, timeout=60)
    last_report = time.monotonic()
    try:
        while time.monotonic() - began < deadline:
            if not manager.running:
                raise RuntimeError(f"the manager exited:\n{manager.log_tail()}")
            try:
                status, body = client.request("GET", "/info")
                info = json.loads(body) if status == 200 else {}
                progress.healthy = node_states(info)
                counted = int(info.get("Containers") or 0)
                if progress.healthy == engines and progress.healthy_at is None:
                    progress.healthy_at = time.monotonic() - began
                if progress.healthy == engines and counted >= total:
                    status, body = client.request("GET", "/containers/json?all=1")
                    progress.listed = len(json.loads(body)) if status == 200 else 0
                    if progress.listed >= total:
                        progress.ready_at = time.monotonic() - began
                        return progress
                else:
                    progress.listed = counted
            except (OSError, http.client.HTTPException, ValueError) as exc:
                client.close()
                progress_note = f"{type(exc).__name__}: {exc}"
                print(f"  ({time.monotonic() - began:5.1f} s: the manager did not answer: {progress_note})")
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(
                    f"  {last_report - began:5.1f} s: {progress.healthy}/{engines} Healthy, "
                    f"{progress.listed:,} of {total:,} containers counted",
                    flush=True,
                )
            time.sleep(0.25)  # the polling period; the deadline is checked on every round
        return progress
    finally:
        client.close()


# -- the report -------------------------------------------------------------------


def ms3(values: Sequence[float] | None) -> str:
    if values is None:
        return "-"
    return " / ".join(f"{v:.1f}" if v < 10 else f"{v:.0f}" for v in values)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def row(what: str, ours: str, go: str = "", target: str = "", met: bool | None = None) -> None:
    print(f"{what:42} {ours:>20} {go:>20}   {target:16} {verdict(met)}".rstrip())


def report(
    args: argparse.Namespace,
    progress: Progress,
    idle_cpu: float | None,
    rss: float | None,
    manager_rows: list[Timings],
    ceiling_rows: list[Timings],
    sim_busy: float | None,
    manager_busy: float | None,
    healthy_after: int | None,
) -> None:
    total = args.engines * args.containers
    print()
    print(f"swarmctl manage, {args.engines} engines x {args.containers} containers each (bench/enginesim.py)")
    if (args.engines, args.containers) != (1000, 30):
        print("(the Go figures and the targets are for 1000 x 30)")
    row("", "swarmctl", "Go Docker Swarm *", "target")
    ready = progress.ready_at
    row(
        f"all Healthy and {total:,} listed",
        f"{ready:.1f} s" if ready is not None else f"not in {args.deadline:.0f} s",
        f"{GO_READY_S:.1f} s",
        f"<= {TARGET_READY_S:.0f} s",
        ready is not None and ready <= TARGET_READY_S,
    )
    if progress.ready_at is None:
        row("  reached by the deadline", f"{progress.healthy} Healthy, {progress.listed:,} counted")
    if progress.healthy_at is not None:
        row("  all Healthy (listing aside) at", f"{progress.healthy_at:.1f} s")
    if sim_busy is not None and manager_busy is not None:
        row("  manager / simulator CPU meanwhile", f"{manager_busy:.0f} % / {sim_busy:.0f} %", "(of a core each)")
    targets = {
        "GET /info": (GO_INFO_MS, TARGET_INFO_P99_MS),
        "GET /containers/json?all=1": (GO_LIST_MS, TARGET_LIST_P99_MS),
        "create + start": (GO_CREATE_MS, TARGET_CREATE_P99_MS),
    }
    for timing in manager_rows:
        go, target = targets[timing.what]
        ours = timing.percentiles()
        row(
            f"{timing.what} p50/p90/p99 ms",
            ms3(ours),
            ms3(go),
            f"p99 <= {target:.0f} ms",
            ours is not None and ours[2] <= target,
        )
        if timing.cut:
            row("  (the time budget allowed)", f"{len(timing.ms)} of {args.requests}")
        if ours is not None and timing.warm_ms and max(timing.warm_ms) > ours[2]:
            row("  the first ones (not counted) took", ms3(timing.warm_ms))
        if timing.failures:
            row("  failed", f"{timing.failures} of {timing.failures + len(timing.ms)}: {timing.last_error}")
    if healthy_after is not None:
        row("  Healthy after these requests", f"{healthy_after} of {args.engines}")
    listing = next((t for t in manager_rows if t.what.startswith("GET /containers/json")), None)
    if listing is not None and listing.body:
        with contextlib.suppress(ValueError):
            row("  containers in the last listing", f"{len(json.loads(listing.body)):,} of {total:,}")
    row(
        f"idle CPU, % of one core ({args.seconds:.0f} s)",
        f"{idle_cpu:.1f} %" if idle_cpu is not None else "-",
        f"{GO_IDLE_CPU_PCT:.0f} %",
        f"<= {TARGET_IDLE_CPU_PCT:.0f} %",
        None if idle_cpu is None else idle_cpu <= TARGET_IDLE_CPU_PCT,
    )
    row(
        "RSS",
        f"{rss:.0f} MiB" if rss is not None else "-",
        f"{GO_RSS_MIB:.0f} MiB",
        f"<= {TARGET_RSS_MIB:.0f} MiB",
        None if rss is None else rss <= TARGET_RSS_MIB,
    )
    print(f"* {GO_LABEL}, at 1000 x 30")
    if ceiling_rows:
        print()
        print("the ceiling: a trivial aiohttp server answering fixed bodies of the manager's sizes, the same client")
        row("", "ceiling", "answer size", "manager/ceiling p50 / p99")
        for managed, ceiling in zip(manager_rows, ceiling_rows, strict=True):
            mine, theirs = managed.percentiles(), ceiling.percentiles()
            ratios = f"{mine[0] / theirs[0]:.1f} / {mine[2] / theirs[2]:.1f}" if mine and theirs else "-"
            row(f"{ceiling.what} p50/p90/p99 ms", ms3(theirs), f"{len(managed.body):,} B", ratios)


# -- the run ----------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    manager_cpu, sim_cpu = cpus()
    if sim_cpu is not None:
        os.sched_setaffinity(0, {sim_cpu})  # the client beside the simulator, off the manager's core
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    discovery = work / "engines"
    notes: list[str] = []
    simulator: ManagedProcess | None = None
    manager: ManagedProcess | None = None
    ceiling: ManagedProcess | None = None
    progress = Progress()
    idle_cpu: float | None = None
    rss: float | None = None
    sim_busy: float | None = None
    manager_busy: float | None = None
    healthy_after: int | None = None
    manager_rows: list[Timings] = []
    ceiling_rows: list[Timings] = []
    total = args.engines * args.containers
    env = {"PYTHONPATH": str(ROOT)}
    try:
        print(f"starting {args.engines} simulated engines x {args.containers} containers...", flush=True)
        simulator = ManagedProcess(
            "enginesim",
            pinned(
                [
                    sys.executable,
                    "-m",
                    "bench.enginesim",
                    "--engines",
                    str(args.engines),
                    "--containers",
                    str(args.containers),
                    "--discovery-file",
                    str(discovery),
                ],
                sim_cpu,
            ),
            work,
            env=env,
        ).start()
        wait_for(lambda: discovery.exists() or not simulator.running, 60 + args.engines * 0.05, "the simulator")
        if not simulator.running:
            raise RuntimeError(f"the simulator exited:\n{simulator.log_tail()}")
        print(f"  {simulator.log_tail(1)}", flush=True)

        port = free_port()
        sim_before = cpu_seconds(pid_of(simulator))
        began = time.monotonic()
        manager = ManagedProcess(
            f"manage-{port}",
            pinned(
                [
                    args.swarmctl,
                    "--log-level",
                    "warning",
                    "manage",
                    "-H",
                    f"tcp://127.0.0.1:{port}",
                    f"file://{discovery}",
                ],
                manager_cpu,
            ),
            work,
        ).start()
        addr = f"127.0.0.1:{port}"
        wait_for(lambda: port_open("127.0.0.1", port) or not manager.running, 60, "the manager to listen")
        print(f"manager started; waiting for {args.engines} Healthy and {total:,} listed...", flush=True)
        progress = wait_ready(addr, manager, args.engines, total, began, args.deadline)
        wall = time.monotonic() - began
        sim_busy = (cpu_seconds(pid_of(simulator)) - sim_before) / wall * 100
        manager_busy = cpu_seconds(pid_of(manager)) / wall * 100
        if progress.ready_at is None:
            notes.append(
                f"gave up after {args.deadline:.0f} s: {progress.healthy}/{args.engines} Healthy, "
                f"{progress.listed:,} of {total:,} containers counted; measuring the rest anyway"
            )
            print(f"  {notes[-1]}", flush=True)
        else:
            print(f"  ready after {progress.ready_at:.1f} s", flush=True)

        print(f"settling for {args.settle:.0f} s, then idle for {args.seconds:.0f} s...", flush=True)
        time.sleep(args.settle)  # until the periodic refreshes run, as they will from then on; no condition to wait on
        pid = pid_of(manager)
        before = cpu_seconds(pid)
        time.sleep(args.seconds)  # the measuring window itself, not a wait for a condition
        idle_cpu = (cpu_seconds(pid) - before) / args.seconds * 100
        rss = rss_mib(pid)

        print(f"{args.requests} requests each on one connection...", flush=True)
        manager_rows = measure(addr, args.requests, args.budget)
        probe = Client(addr, timeout=60)
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            healthy_after = node_states(json.loads(probe.request("GET", "/info")[1]))
        probe.close()
        stop(manager, notes)

        bodies = work / "bodies"
        bodies.mkdir()
        for name, row in zip(("info", "list", "create"), manager_rows, strict=True):
            (bodies / f"{name}.json").write_bytes(row.body or b"{}")
        ceiling_port = free_port()
        ceiling = ManagedProcess(
            "ceiling",
            pinned(
                [sys.executable, "-m", "bench.bench_scale", "--serve-ceiling", str(ceiling_port), str(bodies)],
                manager_cpu,
            ),
            work,
            env=env,
        ).start()
        wait_for(lambda: port_open("127.0.0.1", ceiling_port) or not ceiling.running, 30, "the ceiling server")
        print("the same against the ceiling...", flush=True)
        ceiling_rows = measure(f"127.0.0.1:{ceiling_port}", args.requests, args.budget)
    finally:
        for process in (manager, ceiling, simulator):
            stop(process, notes)
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, progress, idle_cpu, rss, manager_rows, ceiling_rows, sim_busy, manager_busy, healthy_after)
    for note in notes:
        print(f"note: {note}")
    return 0 if progress.ready_at is not None else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30, help="containers on each engine at the start")
    parser.add_argument("--settle", type=float, default=30, help="seconds after ready before the idle window")
    parser.add_argument("--seconds", type=float, default=60, help="the idle window for the manager's CPU")
    parser.add_argument("--requests", type=int, default=100, help="requests of each kind, one after the other")
    parser.add_argument("--budget", type=float, default=120, help="at most this many seconds for each kind of request")
    parser.add_argument("--deadline", type=float, default=300, help="seconds to wait for Healthy and listed")
    parser.add_argument("--quick", action="store_true", help="50 x 10, 5 s to settle, 5 s idle, 30 requests")
    parser.add_argument("--swarmctl", default=SWARMCTL, help="the swarmctl to measure (another build, say)")
    parser.add_argument("--keep", action="store_true", help="keep the logs (work directory) afterwards")
    parser.add_argument("--serve-ceiling", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ceiling:
        serve_ceiling(int(args.serve_ceiling[0]), Path(args.serve_ceiling[1]))
        return
    if args.quick:
        args.engines, args.containers, args.settle, args.seconds, args.requests = 50, 10, 5.0, 5.0, 30
    # SIGTERM (a CI timeout, ``timeout``) unwinds like Ctrl-C, so run()'s teardown stops both processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(run(args))
    sys.exit(130)


if __name__ == "__main__":
    main()
