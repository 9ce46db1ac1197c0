"""``swarmctl join``: keep one node's address registered in discovery.

Waits a random time in ``[0, delay]`` (so a thousand nodes restarted by one
script do not hit the store in the same second), then writes the address with
the TTL every heartbeat. A failed write is logged and retried sooner. While
the last written entry is still alive (less than a TTL ago) the retry comes
after :data:`RETRY_WHILE_ALIVE`: during a store leader election every write
fails for a second or two, and the node must be written again before its
entry expires, not a doubling backoff later. Once the entry is gone (or was
never written) retries back off (1 s, doubling up to the heartbeat), so a
node whose store is down appears as soon as the store is back without
hammering it. On stop it removes its own entry.

Each write is bounded by the store's budget (``min(heartbeat, 10 s)``, set
by the CLI), which the store divides among its members: a member that hangs
costs a share of it, and the others are tried within the same write.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from .discovery.base import Discovery
from .durations import format_duration
from .errors import DiscoveryError, SwarmctlError

log = logging.getLogger("swarmctl.join")

#: Pause before retrying a failed write while the entry written last is still alive.
RETRY_WHILE_ALIVE = 0.5


def check_timing(heartbeat: float, ttl: float, delay: float) -> None:
    """The contract's checks: heartbeat >= 1s, ttl > heartbeat, delay >= 0."""
    if heartbeat < 1:
        raise SwarmctlError(f"--heartbeat must be at least 1s, not {format_duration(heartbeat)}")
    if ttl <= heartbeat:
        raise SwarmctlError(
            f"--ttl ({format_duration(ttl)}) must be longer than --heartbeat ({format_duration(heartbeat)})"
        )
    if delay < 0:
        raise SwarmctlError("--delay must not be negative")


def run_join(
    discovery: Discovery,
    advertise: str,
    *,
    delay: float,
    heartbeat: float,
    ttl: float,
    stop: threading.Event,
) -> None:
    """Register until ``stop`` is set, then deregister."""
    if not discovery.can_register:
        raise SwarmctlError(f"{discovery.url}: a static list cannot be joined; add the node to it instead")
    wait = random.uniform(0, delay) if delay > 0 else 0.0
    if wait:
        log.info(
            "waiting %s before the first registration (--delay %s)",
            format_duration(round(wait, 3)),
            format_duration(delay),
        )
        if stop.wait(wait):
            return
    log.info(
        "registering %s on %s every %s (ttl %s)",
        advertise,
        discovery.url,
        format_duration(heartbeat),
        format_duration(ttl),
    )
    retry = 1.0
    registered = False
    written: float | None = None  # when the last successful write began: its entry lives a TTL from then
    while not stop.is_set():
        started = time.monotonic()
        try:
            discovery.register(advertise, ttl)
        except DiscoveryError as exc:
            left = None if written is None else written + ttl - time.monotonic()
            if left is not None and left > RETRY_WHILE_ALIVE:
                log.warning(
                    "cannot refresh %s (its entry expires in %s): %s; retrying in %s",
                    advertise,
                    format_duration(round(left, 1)),
                    exc,
                    format_duration(RETRY_WHILE_ALIVE),
                )
                stop.wait(RETRY_WHILE_ALIVE)
                continue
            log.warning("cannot register %s: %s; retrying in %s", advertise, exc, format_duration(retry))
            registered = False
            written = None
            stop.wait(retry)
            retry = min(retry * 2, heartbeat)
            continue
        if not registered:
            log.info("registered %s", advertise)
        else:
            log.debug("refreshed %s", advertise)
        registered = True
        written = started
        retry = 1.0
        stop.wait(heartbeat)
    _leave(discovery, advertise)


def _leave(discovery: Discovery, advertise: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            discovery.deregister(advertise)
            log.info("removed %s from %s", advertise, discovery.url)
            return
        except DiscoveryError as exc:
            if time.monotonic() > deadline:
                log.warning("could not remove %s (%s); it expires with its TTL", advertise, exc)
                return
            time.sleep(0.2)
