"""``swarmctl manage``: serve the Docker Engine API for every engine that discovery yields."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from .api.app import make_app
from .api.context import Manager
from .api.dashboard import dashboard_app
from .api.metrics import metrics_app
from .api.server import runner as server_runner
from .cluster.cluster import Cluster
from .cluster.engine import EngineOptions
from .counters import Counts
from .discovery.base import Discovery
from .errors import SwarmctlError
from .heap import keep_collections_short
from .listen import ListenAddress
from .replication import Election, ReplicationSettings, Role
from .scheduler.reschedule import ReschedulePolicy, Rescheduler

log = logging.getLogger("swarmctl.manage")

#: How long a stopping manager lets the requests in hand finish (a stream still open after that is cut).
STOP_GRACE = 5.0

DISCOVERY_UPDATES = Counts("swarmctl_discovery_updates_total", "Node lists discovery handed to the manager.")
LEADER_CHANGES = Counts("swarmctl_replication_leader_changes_total", "Times the primary this manager knows changed.")


def _follow_discovery(
    discovery: Discovery, cluster: Cluster, loop: asyncio.AbstractEventLoop, stop: threading.Event
) -> None:
    """Runs in a thread: discovery sources are blocking iterators."""
    for nodes in discovery.watch(stop):
        log.info("discovery: %d node(s)", len(nodes))
        loop.call_soon_threadsafe(DISCOVERY_UPDATES.add)
        loop.call_soon_threadsafe(cluster.set_addresses, nodes)


@dataclass(frozen=True)
class ManagerSettings:
    """Everything ``manage`` was asked for, checked by the CLI."""

    listens: list[ListenAddress]
    options: EngineOptions
    strategy: str = "spread"
    filters: list[str] = field(default_factory=lambda: ["health"])
    #: TLS on our own API (``--tls``/``--tlsverify``); None for plain HTTP.
    server_ssl: ssl.SSLContext | None = None
    #: With ``--replication``: the election's store, this manager's address, the TTL.
    replication: ReplicationSettings | None = None
    #: ``--metrics-addr``: where ``/metrics`` is served (under ``server_ssl`` too); None for nowhere.
    metrics: ListenAddress | None = None
    #: ``--dashboard``: where the live page is served (under ``server_ssl`` too); None for nowhere.
    dashboard: ListenAddress | None = None


def _set_role(manager: Manager, role: Role) -> None:
    was = manager.role
    manager.role = role
    if role.leader != was.leader:
        LEADER_CHANGES.add()
    if role.primary and not was.primary:
        log.info("this manager is now the primary")
    elif not role.primary and role.leader and role.leader != was.leader:
        log.info("this manager is a replica of %s", role.leader)


def event_loop_factory(*, serves_tls: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed and no ``-H`` serves TLS, else None (asyncio's own).

    uvloop does the socket work of every request in C, which is most of what
    a cached answer costs once the manager's own work is a lookup. Under TLS
    the manager stays on asyncio: hijacked connections (attach, exec) are
    taken over from aiohttp and let half-close through asyncio's own TLS
    protocol (see ``proxy._keep_tls_half_open``); on uvloop's TLS, ``docker
    run`` loses its output (tests/test_manage_tls.py fails).
    """
    if serves_tls:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def serve(settings: ManagerSettings, discovery: Discovery) -> None:
    """Run the manager until SIGINT/SIGTERM, on the event loop :func:`event_loop_factory` picks."""
    with asyncio.Runner(loop_factory=event_loop_factory(serves_tls=settings.server_ssl is not None)) as runner:
        runner.run(run_manager(settings, discovery))


async def run_manager(settings: ManagerSettings, discovery: Discovery) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    cluster = Cluster(settings.options)
    manager = Manager(cluster, strategy=settings.strategy, filters=settings.filters, peer_ssl=settings.options.ssl)
    # Subscribed before discovery adds any engine: a restarted manager or a new primary reschedules too.
    rescheduler = Rescheduler(cluster, ReschedulePolicy(manager.scheduler, manager.placer, manager.is_primary))
    cluster.subscribe(rescheduler.engine_state_changed)
    election: Election | None = None
    if settings.replication is not None:
        manager.replicated, manager.advertise = True, settings.replication.advertise
        manager.role = Role(False, None)
        manager.replication_ttl = settings.replication.ttl

        def on_change(role: Role) -> None:
            loop.call_soon_threadsafe(_set_role, manager, role)

        election = Election(settings.replication, on_change)
    runner = server_runner(make_app(manager), shutdown_timeout=STOP_GRACE)
    await runner.setup()
    extras: list[web.AppRunner] = []
    try:
        for listen in settings.listens:
            await _listen(runner, listen, settings.server_ssl)
            log.info("listening on %s", listen)
        for what, app, extra in (
            ("metrics (/metrics)", metrics_app, settings.metrics),
            ("the dashboard", dashboard_app, settings.dashboard),
        ):
            if extra is not None:
                extras.append(web.AppRunner(app(manager), access_log=None, shutdown_timeout=STOP_GRACE))
                await extras[-1].setup()
                await _listen(extras[-1], extra, settings.server_ssl)
                log.info("%s on %s", what, extra)
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        stop_discovery = threading.Event()
        follower = threading.Thread(
            target=_follow_discovery,
            args=(discovery, cluster, loop, stop_discovery),
            name="discovery",
            daemon=True,
        )
        follower.start()
        if election is not None:
            election.start()
        collections = asyncio.ensure_future(keep_collections_short())
        await stopping.wait()
        collections.cancel()
        log.info("stopping")
        stop_discovery.set()
    finally:
        if election is not None:
            await loop.run_in_executor(None, election.close)
        cluster.bus.close()  # event streams (docker events, the dashboard) end before the server waits for them
        with contextlib.suppress(Exception):
            await cluster.close()
        for started in extras:
            await started.cleanup()
        await runner.cleanup()


async def _listen(runner: web.BaseRunner, listen: ListenAddress, server_ssl: ssl.SSLContext | None) -> None:
    """Serve ``runner`` on ``listen``; :class:`SwarmctlError` saying why if the address cannot be had."""
    try:
        if listen.scheme == "unix":
            site: web.BaseSite = web.UnixSite(runner, listen.path, ssl_context=server_ssl)
        else:
            site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True, ssl_context=server_ssl)
        await site.start()
    except OSError as exc:
        raise SwarmctlError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
