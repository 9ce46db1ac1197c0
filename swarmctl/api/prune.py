"""``POST /{kind}/prune`` on every healthy node, merged into the one answer an engine gives.

A prune means "remove what is unused", and what is unused is a per-node
fact: a stopped container, a dangling image, a volume no container mounts
live on one node each. So a cluster's prune is every node's prune, with the
request's ``filters`` (``until``, ``label``, ``dangling=false``...) passed on
untouched, since each engine knows how to apply them to its own objects. The
answers are merged as one engine would have written them: the lists of what
was deleted concatenated, ``SpaceReclaimed`` (and any other count) summed.

One generic function does this for every kind, so that containers and images
(here) and networks, volumes and the build cache (elsewhere) prune alike::

    async def volumes_prune(request: web.Request) -> web.Response:
        return await prune_on_every_node(
            request, "volumes", "VolumesDeleted", refresh_volumes, label=lambda engine, name: f"{engine.name}/{name}"
        )

A node that fails does not undo what the others did: their deletions are
real, their caches are refreshed, and the answer is an error that names each
failed node with its engine's message and says what the others pruned (so
``docker container prune`` exits non-zero and the user knows where to look).
When every node refuses with the same message (a filter the engines reject,
``Invalid filter 'foo'``), that message is the answer, exactly as one engine
gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..cluster.engine import Engine
from ..cluster.fanout import SLOW_TIMEOUT, Reply, merge_counts, on_each
from .context import manager_of
from .proxy import error, version_prefix

log = logging.getLogger("swarmctl.api")

#: Re-reads (or corrects) one node's cache after its prune; given what that node deleted.
Refresh = Callable[[Engine, list[Any]], Awaitable[None]]
#: How one node's deleted item is written in the merged answer (default: as the node wrote it).
Label = Callable[[Engine, Any], Any]


async def prune_on_every_node(
    request: web.Request,
    kind: str,
    deleted_key: str,
    refresh: Refresh | None,
    *,
    label: Label | None = None,
    once: bool = False,
) -> web.Response:
    """Prune ``kind`` on every healthy node; answer as one engine would.

    ``kind`` is the path segment before ``/prune`` (``containers``, ``images``,
    ``networks``, ``volumes``, ``build``): the request goes to
    ``[/vX.Y]/{kind}/prune`` on each node with the client's query string
    (its ``filters``) and body. ``deleted_key`` is the list in the engine's
    answer (``ContainersDeleted``, ``ImagesDeleted``, ``NetworksDeleted``,
    ``VolumesDeleted``, ``CachesDeleted``); the merged answer has it
    (``null`` when no node deleted anything, as an engine writes an empty
    one) and the sum of every number the engines answer (``SpaceReclaimed``,
    absent when they do not send it, as for networks). ``refresh`` is awaited
    for each node whose prune succeeded, with that node's deleted items,
    before the answer goes out, so a ``ps``/``images``/``volume ls`` right
    after never shows what is gone; ``None`` when the cache needs nothing.
    A failing refresh is logged, not fatal: the periodic refresh repairs it.
    ``label`` rewrites each node's deleted items for the merged answer (for
    names that this manager shows as ``<node>/<name>``). ``once`` lists an
    item deleted on several nodes once: a volume name or a multi-host network
    is one thing in the cluster, whatever number of nodes held it.

    Errors: 500 when no node is healthy; when every node refused with one
    status and message, that status and message unchanged; otherwise the
    failed nodes' status (500 if they differ) with each failed node's
    engine message and a summary of what the other nodes pruned.
    """
    engines = manager_of(request).cluster.healthy()
    if not engines:
        return error(500, "No healthy node available in the cluster")
    query = request.rel_url.raw_query_string
    path = f"{version_prefix(request)}/{kind}/prune" + (f"?{query}" if query else "")
    replies = await on_each(engines, "POST", path, body=await request.read() or None, timeout=SLOW_TIMEOUT)
    pruned = [(reply, _answer(reply)) for reply in replies]
    good = [(reply, answer) for reply, answer in pruned if answer is not None]
    await asyncio.gather(
        *(_refresh(refresh, reply.engine, answer.get(deleted_key) or [], kind) for reply, answer in good)
    )
    merged = _merge([(reply.engine, answer) for reply, answer in good], deleted_key, label)
    if once and merged.get(deleted_key):
        merged[deleted_key] = list(dict.fromkeys(merged[deleted_key]))
    failed = [reply for reply, answer in pruned if answer is None]
    if not failed:
        return web.json_response(merged)
    return _failure(failed, [reply.engine for reply, _ in good], merged, kind, deleted_key)


def _answer(reply: Reply) -> dict[str, Any] | None:
    """The node's decoded answer if it pruned, else None."""
    if not reply.ok:
        return None
    with contextlib.suppress(ValueError):
        answer = reply.json()
        if isinstance(answer, dict):
            return answer
    return None


async def _refresh(refresh: Refresh | None, engine: Engine, deleted: list[Any], kind: str) -> None:
    if refresh is None:
        return
    try:
        await refresh(engine, deleted)
    except Exception as exc:  # noqa: BLE001 - the prune happened: whatever stops the refresh, the next one catches up
        log.warning("engine %s: could not refresh its %s after a prune: %s", engine.name, kind, exc)


def _merge(answers: list[tuple[Engine, dict[str, Any]]], deleted_key: str, label: Label | None) -> dict[str, Any]:
    labelled = []
    for engine, answer in answers:
        deleted = answer.get(deleted_key)
        if label is not None and isinstance(deleted, list):
            answer = {**answer, deleted_key: [label(engine, item) for item in deleted]}
        labelled.append(answer)
    return {deleted_key: None, **merge_counts(labelled)}


def _failure(
    failed: list[Reply], pruned_on: list[Engine], merged: dict[str, Any], kind: str, deleted_key: str
) -> web.Response:
    statuses = {reply.status if reply.status >= 300 else 500 for reply in failed}  # a 2xx we could not read: 500
    messages = [reply.text for reply in failed]
    if not pruned_on and len(statuses) == 1 and len(set(messages)) == 1 and 0 not in statuses:
        return error(statuses.pop(), messages[0])  # every engine said the same: say it as one engine
    status = statuses.pop() if len(statuses) == 1 and 0 not in statuses else 500
    text = "; ".join(reply.message for reply in failed)
    if pruned_on:
        names = ", ".join(engine.name for engine in pruned_on)
        deleted = len(merged.get(deleted_key) or [])
        space = f", space reclaimed: {_human(merged['SpaceReclaimed'])}" if "SpaceReclaimed" in merged else ""
        text += f" (pruned on {names}: {kind} deleted: {deleted}{space})"
    return error(status, text)


def _human(size: int) -> str:
    """Bytes as the docker CLI writes them (decimal units, 4 significant digits): ``1.982MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.4g}{unit}"
        value /= 1000
    return f"{size}B"


# -- the kinds served here --------------------------------------------------------------------------
async def _forget_containers(engine: Engine, deleted: list[Any]) -> None:
    """The engine's ``destroy`` events do this too, but maybe after the answer: ``prune && ps -a`` must agree."""
    for cid in deleted:
        engine.forget_container(str(cid))


async def _refresh_images(engine: Engine, deleted: list[Any]) -> None:
    """Untagging and deleting change RepoTags and the list: re-read the node's images."""
    await engine.refresh_images()


async def containers_prune(request: web.Request) -> web.Response:
    return await prune_on_every_node(request, "containers", "ContainersDeleted", _forget_containers)


async def images_prune(request: web.Request) -> web.Response:
    return await prune_on_every_node(request, "images", "ImagesDeleted", _refresh_images)


async def _refresh_networks(engine: Engine, deleted: list[Any]) -> None:
    await engine.refresh_networks()


async def _refresh_volumes(engine: Engine, deleted: list[Any]) -> None:
    await engine.refresh_volumes()


async def networks_prune(request: web.Request) -> web.Response:
    """Each node removes its networks no container uses; a multi-host network is listed once."""
    return await prune_on_every_node(request, "networks", "NetworksDeleted", _refresh_networks, once=True)


async def volumes_prune(request: web.Request) -> web.Response:
    """Each node removes its copies of the volumes none of its containers uses; each name listed once."""
    return await prune_on_every_node(request, "volumes", "VolumesDeleted", _refresh_volumes, once=True)
