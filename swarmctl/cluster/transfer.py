"""Images copied from node to node, as ``docker save`` on one and ``docker load`` on the others.

There is no registry between the nodes of a cluster, yet an image name must
mean one image everywhere: an imported image is copied to every node (an
import on each would give each its own ID), and an image built or committed
on one node is copied to the node where a container that uses it must run
(its network or volume is there). The tar streams from the source engine to
the targets through the manager, read once, never held in memory.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import aiohttp

from .engine import Engine
from .fanout import STREAM_TIMEOUT, Reply, on_each

log = logging.getLogger("swarmctl.cluster")


async def copy_image(source: Engine, targets: list[Engine], name: str) -> list[str]:
    """Copy image ``name`` (a ``repo:tag`` or an ID) from ``source`` to ``targets``; why each failed ([] if none)."""
    try:
        async with source.request("GET", f"/images/get?names={quote(name)}", timeout=STREAM_TIMEOUT) as saved:
            if saved.status != 200:
                reason = Reply(source, saved.status, await saved.read()).message
                return [f"{t.name}: cannot save it on {reason}" for t in targets]
            replies = await on_each(
                targets,
                "POST",
                "/images/load?quiet=1",
                body=saved.content.iter_any(),
                headers={"Content-Type": "application/x-tar"},
                timeout=STREAM_TIMEOUT,
            )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        source.report_failure(exc)
        return [f"{t.name}: cannot save it on {source.name}: {exc}" for t in targets]
    failed = [r.stream_error for r in replies if r.stream_error]
    copied = [r.engine.name for r in replies if not r.stream_error]
    if copied:
        log.info("image %s copied from %s to %s", name, source.name, ", ".join(copied))
    return failed
