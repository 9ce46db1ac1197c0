"""One Docker node: its health, and a cache of its state kept fresh from its event stream.

An engine is *Pending* until it has answered ``/info`` and ``/version``,
*Healthy* while it answers, and *Unhealthy* after ``failure_retry``
consecutive failures; it becomes Healthy again when it answers. Its
containers (with their inspect data), images, networks and volumes are
cached: the API answers listings from here without a round-trip.

The cost of keeping the cache follows changes, not size:

- a container is inspected when it is first seen, and again only when an
  event says it changed or its line in the engine's cheap list
  (``/containers/json``) differs from the one known;
- every ``refresh_min``..``refresh_max`` seconds (a random interval, so a
  thousand engines do not refresh in step) the engine is *reconciled*: its
  list of containers is read and compared with what is known (an unchanged
  answer costs a digest and a comparison), which also tells whether it still
  answers; its lists of images, networks and volumes are read the same way
  every :data:`OTHER_LISTS_EVERY` rounds (their events keep them current
  meanwhile);
- ``/info`` and ``/version`` are read when the engine connects, when its
  event stream had to be re-opened (events may have been missed: everything
  is re-read) and when the daemon reloads its configuration.

Every request of the manager's own (the round's reads, inspections, a create)
must start answering within ``timeout`` (``--engine-timeout``): a hung engine
(a stopped dockerd: the kernel accepts the connection, nothing answers) then
fails its rounds as a dead one does, instead of holding each for minutes, and
turns Unhealthy after ``failure_retry`` rounds, each ending at that deadline
(about ``failure_retry * timeout`` plus the back-off between rounds, 1 s, 2 s...).

A node that turns Unhealthy keeps its cache: its containers stay listed (their
status "Host Down", as Swarm shows them) and their names stay taken, since they
still exist on the node and come back with it.

A node is Healthy, and its containers listed, as soon as its lists are read;
their details (inspects: reservations, ports, volumes) are filled in right
after, and only then is the rescheduler told of the node. The inspections of
a thousand engines share one limit (``inspections``), at most
:data:`INSPECTORS` per engine on its kept-alive connection, so that a manager
starting in front of 30,000 containers lists them all at once and fills in
their details without flooding itself.
Engines that do not answer are retried with exponential back-off, so dead
nodes cost little.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import logging
import random
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ..counters import Counts, Timings
from ..errors import in_words
from ..net.streams import ByteStream, connect
from .events import EventBus
from .packed import Inspects

log = logging.getLogger("swarmctl.cluster")

REFRESHES = Timings(
    "swarmctl_engine_refresh_seconds",
    "Time to read an engine's state: everything (after a start or a lost event stream) or what changed.",
    ("kind",),
)
REFRESH_ERRORS = Counts("swarmctl_engine_refresh_errors_total", "Refreshes an engine did not answer.", ("node",))
EVENT_STREAMS = Counts(
    "swarmctl_engine_event_stream_reconnects_total",
    "Event streams of an engine that ended and were opened again.",
    ("node",),
)

PENDING, HEALTHY, UNHEALTHY = "Pending", "Healthy", "Unhealthy"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)
#: Inspections in flight on one engine (see ``Engine._inspect``).
INSPECTORS = 2
#: The periodic round reads the containers every time, images, networks and volumes every this
#: many rounds (their events keep them current meanwhile; a full round reads them all).
OTHER_LISTS_EVERY = 3
#: Container actions that change what ``ps``/``inspect`` show.
_CONTAINER_CHANGES = {
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "kill",
    "pause",
    "unpause",
    "rename",
    "update",
    "oom",
    "health_status",
    "attach",
    "detach",
    "resize",
}


@dataclass(frozen=True)
class EngineOptions:
    failure_retry: int = 3
    refresh_min: float = 30.0
    refresh_max: float = 60.0
    ssl: ssl.SSLContext | None = None
    #: Seconds a node may stay silent on a request of the manager's own (a refresh, an inspect,
    #: a create) before it counts as not answering (``--engine-timeout``).
    timeout: float = 10.0

    def answer_timeout(self) -> aiohttp.ClientTimeout:
        """A request's deadlines: connected within ``timeout`` (5 s at most), then no silence longer than it.

        ``sock_read`` rather than a total: a long answer that keeps coming (a list of
        thousands of containers) is not cut, only one that does not come at all.
        """
        return aiohttp.ClientTimeout(
            total=REQUEST_TIMEOUT.total, sock_connect=min(5.0, self.timeout), sock_read=self.timeout
        )


class EngineError(Exception):
    """The engine answered, but not as an engine should."""


class Engine:
    """A Docker engine at ``addr`` (``host:port``)."""

    def __init__(
        self,
        addr: str,
        bus: EventBus,
        options: EngineOptions,
        session: Callable[[], aiohttp.ClientSession] | None = None,
        on_change: Callable[[bool], None] | None = None,
        inspections: asyncio.Semaphore | None = None,
    ) -> None:
        self.addr = addr
        self.bus = bus
        self.options = options
        self.state = PENDING
        self.failures = 0
        self.last_error = ""
        self.info: dict[str, Any] = {}
        self.version: dict[str, Any] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        #: Container ID -> inspect, kept compressed (see packed.py); ``containers`` has their list lines.
        self.inspects = Inspects()
        self.images: list[dict[str, Any]] = []
        self.networks: list[dict[str, Any]] = []
        self.volumes: list[dict[str, Any]] = []
        self.updated_at = 0.0
        #: Bumped on every cache change; the API server keys its pre-serialised answers on it.
        self.generation = 0
        #: Bumped when the node's state, ``/info`` or ``/version`` changes (not its containers...).
        self.specs_generation = 0
        scheme = "https" if options.ssl is not None else "http"
        self.base_url = f"{scheme}://{addr}"
        #: The cluster's one HTTP client, shared by every engine: a thousand
        #: engines must not mean a thousand connection pools.
        self._shared_session = session
        self._on_change = on_change
        #: Called with (this engine, its previous state) when its state changes: the rescheduler's hook.
        self.on_state_change: Callable[[Engine, str], None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: One refresh of a container at a time: a refresh that starts later
        #: (e.g. after a "die" event) must also finish later, or it could be
        #: overwritten by an older snapshot taken when the container still ran.
        self._container_locks: dict[str, asyncio.Lock] = {}
        #: When each container was last refreshed alone (a counter, see _read_containers).
        self._touched: dict[str, int] = {}
        self._stamp = 0
        #: How many container inspections may be in flight (shared by every engine of a cluster).
        self._inspections = inspections or asyncio.Semaphore(8)
        #: A digest of the last answer of each list the reconciliation reads: unchanged means nothing to do.
        self._digests: dict[str, bytes] = {}
        #: Whether the next round re-reads everything (``/info`` too): at first, after a failure or
        #: after the event stream ended (events may have been missed).
        self._resync = True
        #: Rounds read since the engine was added (see OTHER_LISTS_EVERY).
        self._rounds = 0
        #: Values derived from the cache, each kept until the next change (see :meth:`memo`).
        self._memo: dict[str, tuple[tuple[int, Any], Any]] = {}
        #: The deadlines of the manager's own requests (see EngineOptions.answer_timeout).
        self._timeout = options.answer_timeout()
        #: Resolved when a check of this engine fails (see :meth:`next_failure`).
        self._failure_waiters: set[asyncio.Future[None]] = set()

    # -- identity ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.info.get("Name") or self.addr)

    @property
    def id(self) -> str:
        return str(self.info.get("ID") or self.addr)

    @property
    def healthy(self) -> bool:
        return self.state == HEALTHY

    @property
    def ip(self) -> str:
        host = self.addr.rsplit(":", 1)[0]
        return host.strip("[]")

    @property
    def labels(self) -> dict[str, str]:
        """Engine labels as Swarm's constraints see them: ``dockerd --label``s plus the system ones."""
        labels: dict[str, str] = {}
        for item in self.info.get("Labels") or []:
            key, _, value = str(item).partition("=")
            labels[key] = value
        labels.update(
            {
                "storagedriver": str(self.info.get("Driver", "")),
                "operatingsystem": str(self.info.get("OperatingSystem", "")),
                "kernelversion": str(self.info.get("KernelVersion", "")),
                "ostype": str(self.info.get("OSType", "")),
            }
        )
        return labels

    @property
    def api_version(self) -> str:
        return str(self.version.get("ApiVersion") or "")

    @property
    def ncpu(self) -> int:
        return int(self.info.get("NCPU") or 0)

    @property
    def memory(self) -> int:
        return int(self.info.get("MemTotal") or 0)

    def memo(self, key: str, build: Callable[[], Any], *, stamp: Any = None) -> Any:
        """``build()``, kept until this engine's cache changes (or ``stamp`` does).

        What is derived from one engine is recomputed for that engine only, so
        one change among a thousand engines costs one engine's work.
        """
        valid = (self.generation, stamp)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == valid:
            return hit[1]
        value = build()
        self._memo[key] = (valid, value)
        return value

    def container_names(self) -> dict[str, str]:
        """Every name a container here answers to (``web``, a link's ``app/db``) -> its ID."""
        names: dict[str, str] = self.memo(
            "names",
            lambda: {str(name).lstrip("/"): cid for cid, c in self.containers.items() for name in c.get("Names") or []},
        )
        return names

    def container_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` container IDs here that start with ``prefix`` (a sorted index, not a scan)."""
        ids: list[str] = self.memo("ids", lambda: sorted(self.containers))
        found: list[str] = []
        for cid in ids[bisect.bisect_left(ids, prefix) :]:
            if not cid.startswith(prefix) or len(found) == limit:
                break
            found.append(cid)
        return found

    def reserved(self) -> tuple[float, int]:
        """CPUs and memory that this node's containers reserve (``-c``/``--cpus``/``--cpuset-cpus``, ``-m``)."""
        result: tuple[float, int] = self.memo("reserved", self._reserved)
        return result

    def _reserved(self) -> tuple[float, int]:
        cpus = 0.0
        memory = 0
        for facts in self.inspects.facts():
            cpus += facts.cpus
            memory += facts.memory
        return cpus, memory

    def pinned_cpus(self) -> frozenset[int]:
        """The CPUs that this node's containers are pinned to (``--cpuset-cpus``), stopped ones too."""
        result: frozenset[int] = self.memo("pinned", self._pinned)
        return result

    def _pinned(self) -> frozenset[int]:
        return frozenset().union(*(facts.cpuset for facts in self.inspects.facts()))

    def node_ref(self) -> dict[str, str]:
        """How events and inspect name this node (Swarm's ``node`` object)."""
        return {"ID": self.id, "Name": self.name, "Addr": self.addr, "IP": self.ip}

    # -- connections -------------------------------------------------------------
    @property
    def session(self) -> aiohttp.ClientSession:
        if self._shared_session is not None:
            return self._shared_session()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=64, ssl=self.options.ssl or False, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT)
        return self._session

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``session.request`` on this engine: ``async with engine.request("GET", "/info") as r``."""
        return self.session.request(method, self.base_url + path, **kwargs)

    async def open_connection(self) -> ByteStream:
        """A raw connection of its own, for hijacked requests."""
        return await connect(self.addr, self.options.ssl)

    async def get_json(self, path: str) -> Any:
        return json.loads(await self.get_raw(path))

    async def get_raw(self, path: str) -> bytes:
        """``path``'s answer as bytes; :class:`EngineError` unless it is a 200."""
        async with self.request("GET", path, timeout=self._timeout) as response:
            if response.status != 200:
                raise EngineError(f"GET {path}: HTTP {response.status}")
            body: bytes = await response.read()
            return body

    async def _get_inspect(self, cid: str) -> tuple[bytes, dict[str, Any]]:
        """A container's inspect, as sent and parsed (``EngineError`` if there is no such container)."""
        raw = await self.get_raw(f"/containers/{cid}/json")
        inspect = json.loads(raw)
        if not isinstance(inspect, dict) or not inspect.get("Id"):
            raise EngineError(f"GET /containers/{cid}/json: not a container")
        return raw, inspect

    # -- life --------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._session is not None:
            await self._session.close()

    def check_now(self) -> None:
        """Start the next round at once (a request waits on this engine longer than it should)."""
        self._wake.set()

    def next_failure(self) -> asyncio.Future[None]:
        """A future resolved when a check of this engine next fails; cancel it when no longer wanted.

        A create waiting long for its answer races it: a node that still answers its checks
        is slow (dockerd looking up a plugin can take 15 s), one that does not is hung.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._failure_waiters.add(waiter)
        waiter.add_done_callback(self._failure_waiters.discard)
        return waiter

    def report_failure(self, exc: BaseException) -> None:
        """A proxied request could not reach the engine: check it now rather than at the next refresh."""
        self.last_error = in_words(exc)
        self._wake.set()

    async def _run(self) -> None:
        backoff = 1.0
        events: asyncio.Task[None] | None = None
        while True:
            # Taken before the round: an event stream that ends meanwhile asks for the next one.
            everything, self._resync = self._resync, False
            began = time.perf_counter()
            try:
                started, unknown = await self._read(everything=everything)
            except (TimeoutError, aiohttp.ClientError, OSError, EngineError, ValueError) as exc:
                REFRESH_ERRORS.add(self.name)
                if events is not None:
                    events.cancel()
                    events = None
                self._resync = True
                self._failed(exc)
                # Jittered, so that many dead nodes registered together are
                # not all retried in the same instant.
                await self._sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, self.options.refresh_max)
                continue
            REFRESHES.observe(time.perf_counter() - began, "full" if everything else "changes")
            backoff = 1.0
            previous = self._answered()
            if events is None or events.done():
                if events is not None:
                    EVENT_STREAMS.add(self.name)  # a stream that ended, followed again
                events = asyncio.ensure_future(self._follow_events())
            # Listed (and Healthy) at once; the details of new containers follow, and only then is the
            # rescheduler told, so that it sees this node's containers whole.
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, EngineError, ValueError):
                await self._inspect(unknown, started)
            if previous is not None:
                self._state_changed(previous)
            await self._sleep(random.uniform(self.options.refresh_min, self.options.refresh_max))

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _answered(self) -> str | None:
        """The engine answered: Healthy now; its previous state if that changed (the caller tells the hook)."""
        self.failures = 0
        if self.state == HEALTHY:
            return None
        previous, self.state = self.state, HEALTHY
        self._changed(specs=True)
        log.info("engine %s (%s) is healthy (was %s)", self.name, self.addr, previous.lower())
        self.publish_engine_event("engine_connect")
        return previous

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = in_words(exc)
        for waiter in list(self._failure_waiters):
            if not waiter.done():
                waiter.set_result(None)
        if self.state == HEALTHY and self.failures >= self.options.failure_retry:
            self.state = UNHEALTHY
            self._changed(specs=True)
            log.warning(
                "engine %s (%s) is unhealthy after %d failures: %s",
                self.name,
                self.addr,
                self.failures,
                self.last_error,
            )
            self.publish_engine_event("engine_disconnect")
            self._state_changed(HEALTHY)
        elif self.failures == 1 or self.state == HEALTHY:
            log.debug("engine %s (%s) did not answer: %s", self.name, self.addr, self.last_error)

    def _state_changed(self, previous: str) -> None:
        if self.on_state_change is not None:
            self.on_state_change(self, previous)

    def publish_engine_event(self, action: str) -> None:
        now = time.time()
        self.bus.publish(
            {
                "status": action,
                "id": self.id,
                "from": "swarm",
                "Type": "engine",
                "Action": action,
                "Actor": {"ID": self.id, "Attributes": {"name": self.name, "addr": self.addr}},
                "node": self.node_ref(),
                "time": int(now),
                "timeNano": int(now * 1e9),
            }
        )

    # -- the cache ---------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read everything (inspecting only what is new or changed); raises if the engine does not answer."""
        started, unknown = await self._read(everything=True)
        await self._inspect(unknown, started)

    async def refresh_specs(self) -> None:
        """Re-read ``/info`` and ``/version`` (at connection, and when the daemon reloads its settings)."""
        info = await self.get_json("/info")
        version = await self.get_json("/version")
        if not isinstance(info, dict) or not isinstance(version, dict):
            raise EngineError("not a Docker engine (bad /info or /version)")
        if info != self.info or version != self.version:
            self.info, self.version = info, version
            self._changed(specs=True)

    async def _read(self, *, everything: bool) -> tuple[int, list[str]]:
        """One round: the lists (and with ``everything``, ``/info`` and ``/version``) read and applied.

        Returns the round's stamp and the containers to inspect (new, or whose line changed).
        """
        if everything:
            self._digests.clear()  # an answer equal to the last one is applied again: nothing is taken on trust
            await self.refresh_specs()
        # One after the other, on one kept-alive connection: a thousand engines read in parallel
        # already, and each extra connection per engine costs a connect and a socket.
        started, unknown = await self._read_containers()
        if everything or self._rounds % OTHER_LISTS_EVERY == 0:
            await self.refresh_images()
            await self.refresh_networks()
            await self.refresh_volumes()
        self._rounds += 1
        self.updated_at = time.time()
        return started, unknown

    def _changed(self, *, specs: bool = False) -> None:
        """The cache changed; ``specs``: what the node is changed too (its state, ``/info``, ``/version``)."""
        self.generation += 1
        if specs:
            self.specs_generation += 1
        if self._on_change is not None:
            self._on_change(specs)

    async def _get_changed(self, path: str) -> Any:
        """``path``'s JSON if its answer differs from the last one read, else None (nothing to apply)."""
        raw = await self.get_raw(path)
        digest = hashlib.blake2b(raw, digest_size=16).digest()  # a thousand lists of 30 kB are not kept
        if self._digests.get(path) == digest:
            return None
        answer = json.loads(raw)
        self._digests[path] = digest
        return answer

    async def refresh_containers(self) -> None:
        """Reconcile the containers with the engine's list, inspecting those new or changed."""
        started, unknown = await self._read_containers()
        await self._inspect(unknown, started)

    async def _read_containers(self) -> tuple[int, list[str]]:
        """Apply the engine's container list; the round's stamp and the IDs that need an inspect.

        A container is listed from its line at once; a line that differs from
        the known one in anything but ``Status`` (the "Up 5 minutes" text)
        means the container changed behind our back, so it is inspected again.
        Entries refreshed one by one meanwhile (``_touched`` after this round
        began) are newer and win.
        """
        self._stamp += 1
        started = self._stamp
        summaries = await self._get_changed("/containers/json?all=1")
        if summaries is None:
            return started, [cid for cid in self.containers if cid not in self.inspects]
        found = {str(c["Id"]): c for c in summaries}
        fresh = {cid for cid, stamp in self._touched.items() if stamp > started}
        changed = False
        for cid in [cid for cid in self.containers if cid not in found and cid not in fresh]:
            self.containers.pop(cid, None)
            self.inspects.discard(cid)
            changed = True
        unknown = []
        for cid, summary in found.items():
            if cid in fresh:
                continue
            known = self.containers.get(cid)
            if known == summary:
                if cid not in self.inspects:
                    unknown.append(cid)
                continue
            if known is None or cid not in self.inspects or not _same_but_status(known, summary):
                unknown.append(cid)
            self.containers[cid] = _shared(summary)
            changed = True
        self._touched = {cid: stamp for cid, stamp in self._touched.items() if stamp > started}
        if changed:
            self._changed()
        return started, unknown

    async def _inspect(self, cids: list[str], started: int) -> None:
        """Inspect ``cids``; one refreshed alone since ``started`` is left as it is.

        At most :data:`INSPECTORS` at a time on this engine (each on a kept-alive
        connection) and within the limit shared by every engine, so that a
        thousand engines' first inspections neither open thousands of
        connections nor starve the manager's other work.
        """
        queue = iter(cids)

        async def inspector() -> None:
            for cid in queue:
                async with self._inspections:
                    if self._touched.get(cid, 0) > started or cid not in self.containers:
                        continue
                    try:
                        found: tuple[bytes, dict[str, Any]] | None = await self._get_inspect(cid)
                    except EngineError:
                        found = None  # removed meanwhile
                if self._touched.get(cid, 0) > started or cid not in self.containers:
                    continue
                if found is None:
                    self.containers.pop(cid, None)
                    self.inspects.discard(cid)
                else:
                    self.inspects.store(cid, *found)
                self._changed()

        await asyncio.gather(*(inspector() for _ in range(min(INSPECTORS, len(cids)))))

    async def refresh_container(self, cid: str) -> None:
        """Re-read one container (after an event, a create, a rename...)."""
        lock = self._container_locks.setdefault(cid, asyncio.Lock())
        async with lock:
            await self._refresh_container(cid)
        if not lock.locked() and cid not in self.containers:
            self._container_locks.pop(cid, None)

    async def _refresh_container(self, cid: str) -> None:
        path = f"/containers/json?all=1&filters={quote(json.dumps({'id': [cid]}))}"
        raw = b""
        inspect: dict[str, Any] | None = None
        try:
            summaries, (raw, inspect) = await asyncio.gather(self.get_json(path), self._get_inspect(cid))
            # dockerd's list is a view updated a moment after the container itself (and after its
            # event): a line that still shows the state before the change is read again.
            for _ in range(_RELISTS):
                if _agrees(summaries, inspect):
                    break
                summaries = await self.get_json(path)
        except EngineError:
            summaries, inspect = [], None
        full_id = inspect["Id"] if inspect else cid
        self._stamp += 1
        self._touched[full_id] = self._stamp
        summary = next((s for s in summaries if s["Id"] == full_id), None)
        if inspect is None or summary is None:
            self.containers.pop(full_id, None)
            self.inspects.discard(full_id)
        else:
            state = (inspect.get("State") or {}).get("Status")
            self.containers[full_id] = _shared({**summary, "State": state} if state else summary)
            self.inspects.store(full_id, raw, inspect)
        self._changed()

    def forget_container(self, cid: str) -> None:
        self._stamp += 1
        self._touched[cid] = self._stamp
        self.containers.pop(cid, None)
        self.inspects.discard(cid)
        self._changed()

    async def refresh_images(self) -> None:
        images = await self._get_changed("/images/json")
        if images is not None:
            self.images = images
            self._changed()

    async def refresh_networks(self) -> None:
        networks = await self._get_changed("/networks")
        if networks is not None:
            self.networks = networks
            self._changed()

    async def refresh_volumes(self) -> None:
        answer = await self._get_changed("/volumes")
        if answer is not None:
            self.volumes = answer.get("Volumes") or []
            self._changed()

    async def _follow_events(self) -> None:
        """Apply the engine's events to the cache and pass them on, tagged with this node."""
        try:
            async with self.request("GET", "/events", timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as r:
                if r.status != 200:
                    raise EngineError(f"GET /events: HTTP {r.status}")
                async for line in r.content:
                    if line.strip():
                        await self._apply(json.loads(line))
        except (TimeoutError, aiohttp.ClientError, OSError, EngineError, ValueError) as exc:
            log.debug("engine %s: event stream ended: %s", self.addr, exc)
        self._resync = True  # events may have been missed: re-read everything
        self._wake.set()  # and now: the engine may be gone

    async def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("Type")
        action = str(event.get("Action") or event.get("status") or "")
        actor = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        try:
            if kind == "container" and actor:
                if action == "destroy":
                    self.forget_container(actor)
                elif action.split(":")[0] in _CONTAINER_CHANGES:
                    await self.refresh_container(actor)
            elif kind == "image":
                await self.refresh_images()
            elif kind == "network":
                await self.refresh_networks()
                # A container joining or leaving a network changes its own inspect too.
                container = str(((event.get("Actor") or {}).get("Attributes") or {}).get("container") or "")
                if action in ("connect", "disconnect") and container in self.containers:
                    await self.refresh_container(container)
            elif kind == "volume":
                await self.refresh_volumes()
            elif kind == "daemon" and action == "reload":
                await self.refresh_specs()
        except (TimeoutError, aiohttp.ClientError, EngineError, OSError) as exc:
            log.debug("engine %s: could not follow %s %s: %s", self.addr, kind, action, exc)
        event["node"] = self.node_ref()
        self.bus.publish(event)


#: How many times a container's list line is read again while it lags behind its inspect.
_RELISTS = 3


def image_matches(engine: Engine, ref: str) -> bool:
    """Whether ``engine``'s cached images hold ``ref``: ``name[:tag]`` (``latest`` if none), ``name@digest``,
    an ID with or without ``sha256:``, or an ID prefix of four characters or more."""
    wanted = ref if ":" in ref.rsplit("/", 1)[-1] or ref.startswith("sha256:") else f"{ref}:latest"
    for image in engine.images:
        image_id = str(image.get("Id", ""))
        if ref in (image_id, image_id.removeprefix("sha256:")) or (
            len(ref) >= 4 and image_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
        ):
            return True
        if wanted in (image.get("RepoTags") or []) or ref in (image.get("RepoTags") or []):
            return True
        if "@" in ref and ref in (image.get("RepoDigests") or []):
            return True
    return False


def _agrees(summaries: list[dict[str, Any]], inspect: dict[str, Any]) -> bool:
    """Whether the list line of the inspected container shows the same state as its inspect."""
    state = (inspect.get("State") or {}).get("Status")
    return any(s.get("Id") == inspect.get("Id") and s.get("State") == state for s in summaries)


def _shared(value: Any) -> Any:
    """``value`` (parsed JSON) with its keys and strings interned: one copy of each in the whole cache.

    A list line of a container is 5.6 kB once parsed, 2.2 kB with its strings
    shared: its keys, image, command, labels and network IDs repeat across
    containers. Interned strings are freed when no longer used.
    """
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    return value


def _same_but_status(known: dict[str, Any], listed: dict[str, Any]) -> bool:
    """Whether two list lines of a container differ at most in ``Status`` (its age, as text)."""
    return known.keys() == listed.keys() and all(known[k] == listed[k] for k in known if k != "Status")
