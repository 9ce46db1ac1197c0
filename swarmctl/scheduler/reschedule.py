"""Rescheduling: when a node fails, its containers that asked for it are recreated on healthy nodes.

A container asks with ``-e reschedule:on-node-failure`` (or the label
``com.docker.swarm.reschedule-policies=["on-node-failure"]``). When its
node turns Unhealthy (``--engine-failure-retry`` failures in a row), it is
created again on another node, chosen by the manager's strategy and filters
with the container's own constraints and affinities, from the node's last
cached inspect data: same configuration, same name, same
``com.docker.swarm.id``; and started if it was running.

A node that turns Healthy (joins, or comes back) also gets a copy of each
global container it lacks and whose filters it passes (:mod:`.globals`).

The node may come back (a partition heals, a host reboots) with the old
copy. Two containers with one Swarm ID and one name would make the name
ambiguous, so when a node turns Healthy, of every such pair the older copy
(the original that was replaced) is removed, as Swarm did.

Only the primary manager reschedules (replicas follow the same engines and
would otherwise create every container twice). What the rescheduler needs of
the manager (its strategy and filters, its placer, whether it is the
primary) comes as a :class:`ReschedulePolicy`: the wiring above both
(``manage``) makes it and subscribes the rescheduler to the cluster's
changes of state, so that neither the cluster nor this module knows the
API's manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from ..cluster.cluster import Cluster
from ..cluster.engine import HEALTHY, UNHEALTHY, Engine
from ..cluster.resources import is_multi_host
from . import Scheduler
from .expressions import ExpressionError
from .globals import copies_of, global_names
from .placement import Placer
from .request import ID_LABEL, ON_NODE_FAILURE, RESCHEDULE_LABEL, ContainerRequest, label_list

log = logging.getLogger("swarmctl.reschedule")


@dataclass(frozen=True)
class ReschedulePolicy:
    """What the rescheduler takes from the manager above it, asked afresh at every node failure."""

    #: The manager's strategy and filters, as they are now.
    scheduler: Callable[[], Scheduler]
    #: The manager's placer: the rescheduler's creates and the API's see each other in flight.
    placer: Placer
    #: Whether this manager may reschedule now: it is the primary, or it is not replicated.
    acting: Callable[[], bool]


def _policies(labels: dict[str, str]) -> list[str]:
    with contextlib.suppress(ValueError):
        return label_list(labels, RESCHEDULE_LABEL)
    return []


def wants_rescheduling(inspect: dict[str, Any]) -> bool:
    return _asks_for_it((inspect.get("Config") or {}).get("Labels") or {})


def _asks_for_it(labels: dict[str, str]) -> bool:
    return ON_NODE_FAILURE in _policies(labels)


def rescheduled(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    """The containers on ``engine`` that ask to be rescheduled, with their inspects.

    Picked by the labels of their list lines (the same as their inspect's),
    so that only their inspects are parsed, not every container's.
    """
    wanted = [cid for cid, line in list(engine.containers.items()) if _asks_for_it(line.get("Labels") or {})]
    return [(cid, inspect) for cid in wanted if (inspect := engine.inspects.get(cid)) is not None]


def create_body(inspect: dict[str, Any]) -> dict[str, Any]:
    """A ``POST /containers/create`` body that makes the container ``inspect`` describes again."""
    config = dict(inspect.get("Config") or {})
    host = dict(inspect.get("HostConfig") or {})
    if config.get("Hostname") and str(inspect.get("Id", "")).startswith(str(config["Hostname"])):
        del config["Hostname"]  # the engine's default (the old ID): let the new engine pick its own
    if host.get("Links"):
        # Inspect shows links resolved ("/db:/web/alias"); create takes "db:alias".
        host["Links"] = [
            f"{src.lstrip('/')}:{dst.rsplit('/', 1)[-1]}" if ":" in link else link
            for link in host["Links"]
            for src, _, dst in [link.partition(":")]
        ]
    return {**config, "HostConfig": host}


def _announce(target: Engine, cid: str, name: str, failed: Engine, request: ContainerRequest) -> None:
    """The move, for ``docker events``: a container event ``reschedule`` on its new node, saying where from."""
    now = time.time()
    attributes = {
        "name": name,
        "image": request.image,
        "from": failed.name,
        "node.name": target.name,
        ID_LABEL: request.swarm_id,
    }
    target.bus.publish(
        {
            "status": "reschedule",
            "id": cid,
            "from": request.image,
            "Type": "container",
            "Action": "reschedule",
            "Actor": {"ID": cid, "Attributes": attributes},
            "scope": "local",
            "node": target.node_ref(),
            "time": int(now),
            "timeNano": int(now * 1e9),
        }
    )


def _record(records: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The network or volume called ``name`` (or with that ID) among an engine's records."""
    return next((r for r in records if name in (r.get("Name"), r.get("Id"))), None)


def _created(inspect: dict[str, Any]) -> str:
    """The creation time, comparable as text (Docker trims trailing zeros of the nanoseconds)."""
    stamp = str(inspect.get("Created") or "").rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    return f"{whole}.{fraction.ljust(9, '0')}"


class Rescheduler:
    """Watches the cluster's engines change state; recreates and cleans up containers as they do."""

    def __init__(self, cluster: Cluster, policy: ReschedulePolicy) -> None:
        self.cluster = cluster
        self.policy = policy
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def engine_state_changed(self, engine: Engine, previous: str) -> None:
        """Called by the engine on every change of state (Pending, Healthy, Unhealthy)."""
        if engine.state == UNHEALTHY and previous == HEALTHY:
            work = self._reschedule_from
        elif engine.state == HEALTHY:
            work = self._in_service
        else:
            return
        if not self.policy.acting():
            return
        earlier = self._tasks.get(engine.addr)
        task = asyncio.ensure_future(self._after(earlier, work(engine)))
        self._tasks[engine.addr] = task
        task.add_done_callback(lambda t: self._forget(engine.addr, t))

    def _forget(self, addr: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(addr) is task:
            del self._tasks[addr]

    async def _after(self, earlier: asyncio.Task[None] | None, work: Any) -> None:
        """One piece of work per engine at a time: a node back before its containers moved waits for them."""
        if earlier is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await earlier
        try:
            await work
        except Exception:
            log.exception("rescheduling failed")

    async def wait(self) -> None:
        """Until the work started so far is done (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- a node failed -----------------------------------------------------------------
    async def _reschedule_from(self, engine: Engine) -> None:
        movers = rescheduled(engine)
        if not movers:
            return
        log.info("node %s (%s) failed: rescheduling %d container(s)", engine.name, engine.addr, len(movers))
        scheduler = self.policy.scheduler()
        placer = self.policy.placer
        for cid, inspect in movers:
            if engine.healthy:
                log.info("node %s is back: its containers stay", engine.name)
                return
            name = str(inspect.get("Name") or "").lstrip("/")
            try:
                request = ContainerRequest.from_body(create_body(inspect))
            except ExpressionError as exc:
                log.error("cannot reschedule container %s (%s): %s", name, cid[:12], exc)
                continue
            request = self._with_missing(request, engine)
            elsewhere = self._copy_of(request.swarm_id, engine)
            if elsewhere is not None:  # e.g. by another manager watching the same nodes
                log.info("container %s (%s) is already on %s", name, cid[:12], elsewhere.name)
                continue
            outcome = await placer.create(scheduler, request, name, exclude={engine.addr})
            if outcome.status != 201 or outcome.engine is None:
                log.error(
                    "cannot reschedule container %s (%s) from %s: %s", name, cid[:12], engine.name, outcome.message
                )
                continue
            target = outcome.engine
            log.info(
                "rescheduled container %s (%s) from %s to %s as %s",
                name,
                cid[:12],
                engine.name,
                target.name,
                outcome.container_id[:12],
            )
            _announce(target, outcome.container_id, name, engine, request)
            if (inspect.get("State") or {}).get("Running"):
                await self._start(target, outcome.container_id, name)

    def _with_missing(self, request: ContainerRequest, failed: Engine) -> ContainerRequest:
        """``request`` with the local networks and named volumes it uses that only ``failed`` has:
        the placer makes them on the node it chooses (a network is then not a node's to require)."""
        healthy = [e for e in self.cluster.healthy() if e is not failed]
        missing: list[tuple[str, dict[str, Any]]] = []
        for need in request.networks:
            data = _record(failed.networks, need.name)
            if (
                data is not None
                and not is_multi_host(data)
                and not any(_record(e.networks, need.name) for e in healthy)
            ):
                missing.append(("network", data))
        for need in request.volumes:
            data = _record(failed.volumes, need.name)
            if data is not None and not any(_record(e.volumes, need.name) for e in healthy):
                missing.append(("volume", data))
        if not missing:
            return request
        moved = frozenset(str(data["Name"]) for kind, data in missing if kind == "network")
        return replace(request, may_move=request.may_move | moved, missing=tuple(missing))

    def _copy_of(self, swarm_id: str, failed: Engine) -> Engine | None:
        """A healthy node that already holds a container with this Swarm ID."""
        for other in self.cluster.healthy():
            if other is not failed and any(
                (line.get("Labels") or {}).get(ID_LABEL) == swarm_id for line in other.containers.values()
            ):
                return other
        return None

    async def _start(self, engine: Engine, cid: str, name: str) -> None:
        try:
            async with engine.request("POST", f"/containers/{cid}/start") as response:
                if response.status >= 300:
                    text = (await response.read()).decode(errors="replace")
                    log.error("rescheduled container %s did not start on %s: %s", name, engine.name, text)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.error("rescheduled container %s did not start on %s: %s", name, engine.name, exc)
        with contextlib.suppress(Exception):
            await engine.refresh_container(cid)

    # -- a node is (back) in service -------------------------------------------------------
    async def _in_service(self, engine: Engine) -> None:
        await self._remove_duplicates(engine)
        await self._copy_globals_to(engine)

    async def _copy_globals_to(self, engine: Engine) -> None:
        """A copy on ``engine`` of every global container it lacks and whose filters it passes."""
        others = [e for e in self.cluster.healthy() if e is not engine]
        names = sorted({name for other in others for name in global_names(other)} - set(engine.container_names()))
        for name in names:
            source, cid = copies_of(others, name)[0]
            inspect = source.inspects.get(cid)
            if inspect is None or not engine.healthy:
                continue
            try:
                request = ContainerRequest.from_body(create_body(inspect)).copy()
            except ExpressionError as exc:
                log.error("cannot copy global container %s to %s: %s", name, engine.name, exc)
                continue
            outcome = await self.policy.placer.create_on(self.policy.scheduler(), request, name, engine)
            if outcome.status != 201:
                log.info("global container %s: no copy on %s: %s", name, engine.name, outcome.message)
                continue
            log.info("global container %s: copied to %s as %s", name, engine.name, outcome.container_id[:12])
            if (inspect.get("State") or {}).get("Running"):
                await self._start(engine, outcome.container_id, name)

    async def _remove_duplicates(self, engine: Engine) -> None:
        """Of two copies of one rescheduled container, remove the older (the one replaced)."""
        here = {
            str(inspect["Config"]["Labels"][ID_LABEL]): (cid, inspect)
            for cid, inspect in rescheduled(engine)
            if ID_LABEL in ((inspect.get("Config") or {}).get("Labels") or {})
        }
        if not here:
            return
        for other in self.cluster.healthy():
            if other is engine:
                continue
            for cid, inspect in rescheduled(other):
                swarm_id = ((inspect.get("Config") or {}).get("Labels") or {}).get(ID_LABEL)
                if swarm_id not in here:
                    continue
                mine_id, mine = here[swarm_id]
                if _created(mine) < _created(inspect):
                    await self._remove(engine, mine_id, mine, other)
                else:
                    await self._remove(other, cid, inspect, engine)

    async def _remove(self, engine: Engine, cid: str, inspect: dict[str, Any], kept_on: Engine) -> None:
        name = str(inspect.get("Name") or "").lstrip("/")
        log.info(
            "container %s (%s) on %s was rescheduled to %s: removing this old copy",
            name,
            cid[:12],
            engine.name,
            kept_on.name,
        )
        try:
            async with engine.request("DELETE", f"/containers/{cid}?force=1&v=0") as response:
                if response.status >= 300 and response.status != 404:
                    text = (await response.read()).decode(errors="replace")
                    log.error("could not remove the old copy of %s on %s: %s", name, engine.name, text)
                    return
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.error("could not remove the old copy of %s on %s: %s", name, engine.name, exc)
            return
        engine.forget_container(cid)
