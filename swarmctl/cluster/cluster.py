"""The set of engines, following discovery, and lookups across them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from .engine import REQUEST_TIMEOUT, Engine, EngineOptions, image_matches
from .events import EventBus
from .resources import LookupError_

__all__ = ["Cluster", "LookupError_", "image_matches"]

log = logging.getLogger("swarmctl.cluster")
#: How many container inspections may be in flight at once, over all engines.
INSPECTIONS = 64


class Cluster:
    """Engines by address; discovery adds and removes them."""

    def __init__(self, options: EngineOptions, bus: EventBus | None = None) -> None:
        self.options = options
        self.bus = bus or EventBus()
        self.engines: dict[str, Engine] = {}
        self.exec_owner: dict[str, Engine] = {}
        self._stopping: set[asyncio.Future[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        #: Bumped on every change of any engine (its cache, its state) and of the set of engines.
        self.version = 0
        #: Bumped when the set of engines changes or an engine's state, ``/info`` or ``/version`` does:
        #: what is derived from the nodes alone (the API version they all speak) is kept until then.
        self.specs_version = 0
        #: Told of every engine's change of state, with its previous state (see :meth:`subscribe`).
        self._state_listeners: list[Callable[[Engine, str], None]] = []
        #: Container inspections in flight across every engine: a manager starting in front of
        #: thousands of containers fills in their details at this pace, not all at once.
        self.inspections = asyncio.Semaphore(INSPECTIONS)

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client every engine shares (made on first use, inside the event loop)."""
        if self._session is None or self._session.closed:
            # Idle connections are kept past the longest refresh interval, so that a thousand engines'
            # periodic rounds reuse their connection instead of opening a new one each time.
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=32,
                ssl=self.options.ssl or False,
                enable_cleanup_closed=True,
                keepalive_timeout=self.options.refresh_max + 15,
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT)
        return self._session

    def subscribe(self, listener: Callable[[Engine, str], None]) -> None:
        """Call ``listener(engine, previous state)`` whenever an engine turns Pending, Healthy or Unhealthy.

        What acts on nodes failing and coming back (the rescheduler) subscribes
        from above, so that the cluster knows nothing of it.
        """
        self._state_listeners.append(listener)

    def _state_changed(self, engine: Engine, previous: str) -> None:
        for listener in self._state_listeners:
            listener(engine, previous)

    def _bump(self, specs: bool = True) -> None:
        self.version += 1
        if specs:
            self.specs_version += 1

    def set_addresses(self, addresses: list[str]) -> None:
        """Make the engines exactly those of ``addresses`` (called on every discovery change)."""
        self._bump()
        wanted = dict.fromkeys(addresses)
        for addr in list(self.engines):
            if addr not in wanted:
                engine = self.engines.pop(addr)
                log.info("engine %s (%s) left discovery", engine.name, addr)
                if engine.healthy:
                    engine.publish_engine_event("engine_disconnect")
                task = asyncio.ensure_future(engine.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
        added = [addr for addr in wanted if addr not in self.engines]
        for addr in added:
            engine = Engine(addr, self.bus, self.options, self.session, self._bump, self.inspections)
            engine.on_state_change = self._state_changed
            self.engines[addr] = engine
            engine.start()
        if added:
            log.info("discovery: %d engine(s) added, %d in all", len(added), len(self.engines))

    async def close(self) -> None:
        await asyncio.gather(*(engine.stop() for engine in self.engines.values()))
        if self._session is not None:
            await self._session.close()

    def healthy(self) -> list[Engine]:
        return [e for e in self.engines.values() if e.healthy]

    def by_name(self, name: str) -> Engine | None:
        for engine in self.engines.values():
            if engine.name == name or engine.addr == name:
                return engine
        return None

    # -- containers ----------------------------------------------------------------
    def find_container(self, ref: str) -> tuple[Engine, str]:
        """The engine and full ID of the container ``ref`` names: ID, name, ``node/name`` or ID prefix.

        Containers of every node are found, an Unhealthy one's too: they still exist there
        (inspect answers from the cache; what needs the node says it is unhealthy). A name on
        a node that answers wins over the same name on one that does not (a container
        rescheduled from a failed node, whose old copy is removed when the node is back);
        the same name on two nodes alike is ambiguous.
        """
        ref = ref.lstrip("/")
        engines = list(self.engines.values())
        if "/" in ref:
            node, _, name = ref.partition("/")
            engine = self.by_name(node)
            if engine is not None:
                engines, ref = [engine], name
        exact = [(e, ref) for e in engines if ref in e.containers]
        if exact:
            return exact[0]
        named = [(e, cid) for e in engines if (cid := e.container_names().get(ref)) is not None]
        if len(named) > 1:
            named = [(e, cid) for e, cid in named if e.healthy] or named
        if len(named) > 1:
            nodes = ", ".join(sorted(e.name for e, _ in named))
            raise LookupError_(
                409, f"Conflict: the name {ref} is ambiguous: it exists on nodes {nodes}; write <node>/<name>"
            )
        if named:
            return named[0]
        prefixed = [(e, cid) for e in engines if ref for cid in e.container_ids_with_prefix(ref)]
        if len(prefixed) > 1:
            raise LookupError_(500, f"Multiple IDs found with provided prefix: {ref}")  # dockerd's words and status
        if prefixed:
            return prefixed[0]
        raise LookupError_(404, f"No such container: {ref}")

    def engine_with_image(self, ref: str) -> list[Engine]:
        """Healthy engines that have image ``ref`` (a name[:tag], ``name@digest``, an ID or an ID prefix)."""
        return [e for e in self.healthy() if image_matches(e, ref)]

    def engines_with_repository(self, name: str) -> list[Engine]:
        """Healthy engines with any tag of repository ``name`` (``docker push name`` pushes them all)."""
        return [e for e in self.healthy() if has_repository(e, name)]


def has_repository(engine: Engine, name: str) -> bool:
    return any(
        str(tag).rsplit(":", 1)[0] == name
        for image in engine.images
        for tag in image.get("RepoTags") or []
        if ":" in str(tag).rsplit("/", 1)[-1]
    )
