"""``swarmctl manage``: serve the Docker Engine API for every engine that discovery yields."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading

from aiohttp import web

from .api.app import make_app
from .api.context import Manager
from .cluster.cluster import Cluster
from .cluster.engine import EngineOptions
from .discovery.base import Discovery
from .errors import SwarmctlError
from .listen import ListenAddress

log = logging.getLogger("swarmctl.manage")


def _follow_discovery(
    discovery: Discovery, cluster: Cluster, loop: asyncio.AbstractEventLoop, stop: threading.Event
) -> None:
    """Runs in a thread: discovery sources are blocking iterators."""
    for nodes in discovery.watch(stop):
        log.info("discovery: %d node(s)", len(nodes))
        loop.call_soon_threadsafe(cluster.set_addresses, nodes)


async def run_manager(
    listens: list[ListenAddress],
    discovery: Discovery,
    options: EngineOptions,
    strategy: str,
    filters: list[str],
) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    cluster = Cluster(options)
    manager = Manager(cluster, strategy=strategy, filters=filters)
    runner = web.AppRunner(make_app(manager), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        for listen in listens:
            try:
                if listen.scheme == "unix":
                    site: web.BaseSite = web.UnixSite(runner, listen.path)
                else:
                    site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
                await site.start()
            except OSError as exc:
                raise SwarmctlError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
            log.info("listening on %s", listen)
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
        await stopping.wait()
        log.info("stopping")
        stop_discovery.set()
    finally:
        with contextlib.suppress(Exception):
            await cluster.close()
        await runner.cleanup()
