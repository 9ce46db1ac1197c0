"""Creating a container where the scheduler says, falling back to the next candidate when that fails.

The scheduler decides from cached state, which can be a moment behind: the
chosen node may have just died, or lost the image, or lack something only
the engine checks (a runtime, a device). So the create is tried on the
candidates in order, at most :data:`CREATE_TRIES` of them:

- a node that cannot be reached (the connection refused, or not made within
  ``--engine-timeout``: nothing was sent) is reported to its engine (which
  checks it at once) and the next candidate is tried; but a node that takes
  the request and then fails to answer (or says nothing for
  ``--engine-timeout`` and then fails the check this starts: a hung dockerd,
  whose kernel still accepts connections) is not replaced, as the container
  may exist there, or appear when it resumes, and a second node would make a
  twin: the client hears so, naming the node, instead of waiting for the node
  (a node that answers its check is only slow, and is waited for);
- a node whose last check failed (not yet Unhealthy, but maybe dead or hung)
  is tried after the other candidates;
- a node without the image (Docker's 404 "No such image") sends the create
  to the next candidates that have the image; when none does but a node the
  container may not go to has it (built or committed there, while the
  container's network, volume or constraint is elsewhere), the image is
  copied from there to the chosen node, as if pulled; when no node has it,
  the 404 goes back to the client, and the docker CLI pulls (on every node,
  through the manager) and creates again, as it does with one engine, unless
  the user said ``--pull never``;
- any other refusal that says the request itself is wrong (a 4xx: a name
  already taken, an unknown log driver, a malformed configuration) is
  answered at once: every node would say the same;
- any other failure (a 5xx: a device the node lacks, a node in trouble)
  tries the next candidate, and the first failure is returned if none
  accepts. (A runtime the node lacks is not tried at all: the scheduler
  knows each engine's runtimes from its ``/info``.)

A local network is on one node, so its containers go there. But a network
the scheduler placed (``docker network create`` with a plain name, as
docker-compose makes its project network) is only where it is because the
scheduler had to put it somewhere: while no container uses it, it follows
its first container when that container's own rules rule its node out
(``-e constraint:node==node2`` on the first service of a compose project).
Creates that may move a network are serialised per network, so the
second container sees where the first one went.

The manager keeps one :class:`Placer` for its cluster and gives the same one
to the rescheduler, so that the API's creates and the rescheduler's see each
other's containers in flight (:attr:`Placer.pending`): two ``docker run`` at
once cannot both take the last slot, port or gigabyte of a node, nor the
same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from .. import jsontext
from ..cluster.engine import EngineError, image_matches
from ..cluster.resources import LookupError_, copy_network, copy_volume, find_network, move_network
from ..cluster.transfer import copy_image
from ..counters import Counts
from ..errors import in_words
from . import NoNodeError, Scheduler, Why, nodes_of
from .request import ContainerRequest

if TYPE_CHECKING:
    from ..cluster.cluster import Cluster
    from ..cluster.engine import Engine

log = logging.getLogger("swarmctl.scheduler")

#: Nodes tried for one create before giving up (Swarm tried one, and one more with image affinity).
CREATE_TRIES = 3
#: Placement reasons kept (the dashboard shows them); the oldest go first.
PLACEMENTS_KEPT = 100_000
CREATE_RETRIES = Counts("swarmctl_create_retries_total", "Creates tried again on the next candidate node.")


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


@dataclass
class Outcome:
    """The answer to give the client: the engine's own, or ours."""

    status: int
    body: bytes
    engine: Engine | None = None
    container_id: str = ""
    #: No other node may be tried (the create may have happened on this one).
    final: bool = False

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.body).get("message", ""))
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")


def _no_such_image(status: int, body: bytes) -> bool:
    if status != 404:
        return False
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    return "image" in message.lower()


class Placer:
    """Creates containers on a cluster's nodes, keeping track of the creates in flight."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: Engine address -> requests being created there (counted by the scheduler as if created).
        self.pending: dict[str, list[ContainerRequest]] = {}
        self._names: set[str] = set()
        #: One create at a time may move a given network (see the module's docstring).
        self._moves: dict[str, asyncio.Lock] = {}
        #: Container ID -> why it went where it went (the newest :data:`PLACEMENTS_KEPT`).
        self.placements: OrderedDict[str, str] = OrderedDict()

    def name_taken(self, name: str, exclude: Iterable[str] = ()) -> bool:
        """A name in use on a node of the cluster, or being given right now.

        Unhealthy nodes count: their containers still exist and come back with them, and a
        second container of that name elsewhere would make the name ambiguous then (Swarm
        answered 409 too). Only the nodes in ``exclude`` (addresses) do not: the rescheduler
        recreates a failed node's container under its own name, away from that node.
        """
        name = name.lstrip("/")
        if name in self._names:
            return True
        skip = set(exclude)
        return any(name in e.container_names() for e in self.cluster.engines.values() if e.addr not in skip)

    def candidates(self, scheduler: Scheduler, request: ContainerRequest, exclude: Iterable[str] = ()) -> list[Engine]:
        """The engines that may take ``request``, best first; :class:`NoNodeError` if none."""
        return self._choose(scheduler, request, exclude)[1]

    def _choose(
        self, scheduler: Scheduler, request: ContainerRequest, exclude: Iterable[str]
    ) -> tuple[ContainerRequest, list[Engine], Why]:
        """The candidates, best first, the request as placed (``may_move`` set if it moves networks), and why."""
        skip = set(exclude)
        nodes = nodes_of([e for e in self.cluster.engines.values() if e.addr not in skip], self.pending)
        try:
            ranked, why = scheduler.choose(request, nodes)
            return request, _suspects_last(node.engine for node in ranked), why
        except NoNodeError:
            movable = frozenset(
                need.name
                for need in request.networks
                if need.node is None and any(need.name in n.movable_networks for n in nodes)
            )
            if not movable:
                raise
        moving = replace(request, may_move=movable)
        ranked, why = scheduler.choose(moving, nodes)
        return moving, _suspects_last(node.engine for node in ranked), why

    async def create(
        self,
        scheduler: Scheduler,
        request: ContainerRequest,
        name: str = "",
        *,
        path: str = "/containers/create",
        query: str | None = None,
        exclude: Iterable[str] = (),
    ) -> Outcome:
        """Choose the node and create the container there (or on the next candidate)."""
        name = name.lstrip("/")
        if name and self.name_taken(name, exclude):
            return Outcome(409, _message(f'Conflict. The container name "/{name}" is already in use.'))
        if query is None:
            query = f"name={quote(name)}" if name else ""
        url = f"{path}?{query}" if query else path
        if name:
            self._names.add(name)
        try:
            placed, candidates, why = self._choose(scheduler, request, exclude)
            if not placed.may_move:
                return self._noted(await self._try(candidates, placed, url), candidates, why)
            async with contextlib.AsyncExitStack() as held:
                for network in sorted(placed.may_move):
                    await held.enter_async_context(self._moves.setdefault(network, asyncio.Lock()))
                # Again: a create that held the lock before may have taken the network somewhere.
                placed, candidates, why = self._choose(scheduler, request, exclude)
                return self._noted(await self._try(candidates, placed, url), candidates, why)
        except NoNodeError as exc:
            return Outcome(500, _message(str(exc)))
        finally:
            self._names.discard(name)

    async def create_global(
        self,
        scheduler: Scheduler,
        request: ContainerRequest,
        name: str,
        *,
        path: str = "/containers/create",
        query: str | None = None,
    ) -> Outcome:
        """A copy on every node that passes the filters (see :mod:`.globals`); the first copy's answer.

        Copies the nodes refuse are logged, naming the node; only when none is made is the
        refusal the client's answer.
        """
        name = name.lstrip("/")
        if not name:
            return Outcome(400, _message("a global container needs a name (--name): its copies answer to it"))
        if self.name_taken(name):
            return Outcome(409, _message(f'Conflict. The container name "/{name}" is already in use.'))
        try:
            targets = self.candidates(scheduler, request)
        except NoNodeError as exc:
            return Outcome(500, _message(str(exc)))
        made: list[Outcome] = []
        refused: list[Outcome] = []
        for engine in sorted(targets, key=lambda e: e.name):
            outcome = await self.create_on(scheduler, request.copy(), name, engine, path=path, query=query)
            (made if outcome.status == 201 else refused).append(outcome)
        for outcome in refused:
            where = outcome.engine.name if outcome.engine else "a node"
            log.warning("global container %s: no copy on %s: %s", name, where, outcome.message)
        return (made or refused)[0]

    async def create_on(
        self,
        scheduler: Scheduler,
        request: ContainerRequest,
        name: str,
        engine: Engine,
        *,
        path: str = "/containers/create",
        query: str | None = None,
    ) -> Outcome:
        """:meth:`create` on ``engine`` only, if it passes the filters (a copy of a global container)."""
        others = [addr for addr in self.cluster.engines if addr != engine.addr]
        return await self.create(scheduler, request, name, path=path, query=query, exclude=others)

    def _noted(self, outcome: Outcome, candidates: list[Engine], why: Why) -> Outcome:
        """``outcome``, its placement's reason kept (see :attr:`placements`) if it created a container."""
        if outcome.status == 201 and outcome.container_id and outcome.engine in candidates:
            engine = outcome.engine
            self.placements[outcome.container_id] = why.text(engine.name, candidates.index(engine) + 1, len(candidates))
            while len(self.placements) > PLACEMENTS_KEPT:
                self.placements.popitem(last=False)
        return outcome

    async def _try(self, candidates: list[Engine], request: ContainerRequest, url: str) -> Outcome:
        refused: Outcome | None = None
        image_missing: Outcome | None = None
        copied = False
        queue = list(candidates)
        for attempt in range(CREATE_TRIES):
            if not queue:
                break
            engine = queue.pop(0)
            if attempt:
                CREATE_RETRIES.add()
            outcome = await self._bring_networks(engine, request)
            if outcome is None:
                outcome = await self._create_on(engine, request, url)
            if outcome.status == 201:
                return outcome
            log.info("create on %s (%s) failed (%d: %s)", engine.name, engine.addr, outcome.status, outcome.message)
            if _no_such_image(outcome.status, outcome.body):
                image_missing = image_missing or outcome
                queue = [e for e in queue if _has_image(e, request.image)]
                if not queue and not copied and await self._copy_image_to(engine, request.image):
                    copied, queue = True, [engine]
                continue
            if outcome.final or 400 <= outcome.status < 500:
                return outcome
            refused = refused or outcome
        result = image_missing or refused
        assert result is not None, "no candidate was tried"
        return result

    async def _copy_image_to(self, engine: Engine, image: str) -> bool:
        """Copy ``image`` to ``engine`` from a node outside the candidates that has it; whether it came."""
        source = next((e for e in self.cluster.healthy() if e is not engine and _has_image(e, image)), None)
        if source is None:
            return False
        failed = await copy_image(source, [engine], image)
        with contextlib.suppress(Exception):
            await engine.refresh_images()
        if failed:
            log.warning("cannot copy image %s to %s for a container placed there: %s", image, engine.name, failed[0])
        return not failed

    async def _bring_networks(self, engine: Engine, request: ContainerRequest) -> Outcome | None:
        """Move to ``engine`` the networks ``request`` may move that it lacks; an Outcome if one cannot come."""
        made = await self._make_missing(engine, request)
        if made is not None:
            return made
        copied = {str(data["Name"]) for kind, data in request.missing if kind == "network"}
        for name in sorted(request.may_move - copied):
            try:
                network = find_network(self.cluster.healthy(), name)
                if engine not in network.holders:
                    await move_network(network, engine)
            except LookupError_ as exc:
                return Outcome(exc.status, _message(exc.message), engine)
            except (EngineError, TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                reason = f"cannot move the network {name} to node {engine.name}: {in_words(exc)}"
                return Outcome(500, _message(reason), engine)
        return None

    async def _make_missing(self, engine: Engine, request: ContainerRequest) -> Outcome | None:
        """Make on ``engine`` the networks and volumes of a failed node that the container needs and it lacks."""
        for kind, data in request.missing:
            name = str(data["Name"])
            known = engine.networks if kind == "network" else engine.volumes
            if any(str(record.get("Name")) == name for record in known):
                continue
            try:
                await (copy_network if kind == "network" else copy_volume)(data, engine)
            except (EngineError, TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                reason = f"cannot make the {kind} {name} on node {engine.name}: {in_words(exc)}"
                return Outcome(500, _message(reason), engine)
            log.info("%s %s made on %s for a container rescheduled there", kind, name, engine.name)
        return None

    @contextlib.contextmanager
    def holding(self, engine: Engine, request: ContainerRequest) -> Iterator[None]:
        """Count ``request`` on ``engine`` while the block runs (a create in flight, or a build running there)."""
        held = self.pending.setdefault(engine.addr, [])
        held.append(request)
        try:
            yield
        finally:
            held.remove(request)
            if not held:
                self.pending.pop(engine.addr, None)

    async def _create_on(self, engine: Engine, request: ContainerRequest, url: str) -> Outcome:
        with self.holding(engine, request):
            try:
                answer = await _answer_or_hang(engine, url, jsontext.dumps(request.body).encode())
                if answer is None:
                    reason = (
                        f"node {engine.name} ({engine.addr}) did not answer the create within "
                        f"{engine.options.timeout:g}s, nor its check since; the container may still appear there"
                    )
                    return Outcome(500, _message(reason), engine, final=True)
                status, body = answer
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, ConnectionRefusedError) as exc:
                # Not connected, so nothing was sent: the next candidate may take it.
                engine.report_failure(exc)
                reason = f"cannot reach node {engine.name} ({engine.addr}): {in_words(exc)}"
                return Outcome(500, _message(reason), engine)
            except (aiohttp.ClientError, OSError) as exc:
                # The create was sent: it may have happened. Another node would make a twin.
                engine.report_failure(exc)
                reason = (
                    f"node {engine.name} ({engine.addr}) did not answer the create, "
                    f"which may have happened there: {in_words(exc)}"
                )
                return Outcome(500, _message(reason), engine, final=True)
            if status != 201:
                return Outcome(status, body, engine)
            try:
                container_id = str(json.loads(body)["Id"])
            except (ValueError, KeyError, TypeError):
                return Outcome(status, body, engine)  # created, but we cannot tell which: pass it on as is
            # Into the cache before answering: `docker run` inspects it next, and the
            # scheduler must count it before the pending entry goes. So must a volume the
            # engine has just made for it: the next container that mounts it goes here.
            with contextlib.suppress(Exception):
                await engine.refresh_container(container_id)
                known = {str(volume["Name"]) for volume in engine.volumes}
                if any(need.name not in known for need in request.volumes):
                    await engine.refresh_volumes()
            return Outcome(201, body, engine, container_id)


async def _answer_or_hang(engine: Engine, url: str, body: bytes) -> tuple[int, bytes] | None:
    """The engine's answer to the create; None if it says nothing and then fails a check.

    No deadline on the answer itself: dockerd may take long and still answer (looking up
    a log or volume plugin it does not have takes it 15 s). After ``--engine-timeout``
    without an answer the node is checked at once, and a node that does not answer its
    check either is hung: the create is given up (it was sent: it may still happen there).
    Connection errors propagate (the caller tells those that sent nothing apart).
    """

    async def send() -> tuple[int, bytes]:
        async with engine.request(
            "POST",
            url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=min(5.0, engine.options.timeout)),
        ) as response:
            return response.status, await response.read()

    sending = asyncio.ensure_future(send())
    failure: asyncio.Future[None] | None = None
    try:
        done, _ = await asyncio.wait({sending}, timeout=engine.options.timeout)
        if not done:
            failure = engine.next_failure()
            engine.check_now()
            either: list[asyncio.Future[Any]] = [sending, failure]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            return None
        return sending.result()
    finally:
        if failure is not None:
            failure.cancel()
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sending


def _suspects_last(engines: Iterable[Engine]) -> list[Engine]:
    """The candidates in the scheduler's order, but a node whose last check failed after the others.

    Such a node is still Healthy (fewer than ``--engine-failure-retry`` failures) but may be dead
    or hung; a create sent to a hung node cannot be moved elsewhere, so it is tried only when no
    node that answered its last check may take the container.
    """
    ordered = list(engines)
    return [e for e in ordered if not e.failures] + [e for e in ordered if e.failures]


def _has_image(engine: Engine, image: str) -> bool:
    return bool(image) and image_matches(engine, image)
