"""Keep the garbage collector's pauses short while the manager holds a large, long-lived cache.

With 30,000 containers cached the manager holds a few hundred thousand
objects that live for hours (each container's list line). CPython's
collector now and then walks every object it tracks, and one such pass over
that cache takes some 200 ms, during which no request is answered: it is
what a client sees as the 99th percentile.

So, once a minute (the first time 15 s after the start, when the first
engines are read), the objects alive at that moment are collected and then
*frozen* (``gc.freeze``): moved where the collector no longer looks, so its
passes only walk what is newer. Frozen objects that are dropped later are
still freed (by reference counting, which is how a replaced cache entry
goes); only garbage made of reference cycles among frozen objects would stay.
To bound that, every tenth time everything is unfrozen and collected once,
a single long pass every ten minutes instead of many.
"""

from __future__ import annotations

import asyncio
import gc
import logging

log = logging.getLogger("swarmctl.manage")

#: Seconds before the first freeze and between two, and how many freezes before a whole collection.
FIRST = 15.0
EVERY = 60.0
WHOLE_EVERY = 10


def freeze_now(whole: bool = False) -> None:
    """Collect, then freeze what is alive (first unfreezing everything with ``whole``)."""
    if whole:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_collections_short(first: float = FIRST, every: float = EVERY) -> None:
    """Freeze the long-lived objects every ``every`` seconds, for as long as the manager runs."""
    rounds = 0
    await asyncio.sleep(first)
    while True:
        if rounds:
            await asyncio.sleep(every)
        rounds += 1
        freeze_now(whole=rounds % WHOLE_EVERY == 0)
        log.debug("heap: %d objects frozen", gc.get_freeze_count())
