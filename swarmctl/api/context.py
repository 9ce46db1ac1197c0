"""What every API handler needs: the cluster, the scheduler's settings, the manager's identity."""

from __future__ import annotations

import socket
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ..cluster.cluster import Cluster
from ..cluster.engine import Engine
from ..replication import Role
from ..scheduler import Scheduler
from ..scheduler.placement import Placer

DEFAULT_API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


@dataclass
class RunningBuild:
    """A build in progress, findable by its build ID while it runs."""

    engine: Engine
    upstream: aiohttp.ClientResponse | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """End the build's request to the engine: the classic builder stops a build whose client went away."""
        self.cancelled = True
        if self.upstream is not None:
            self.upstream.close()


@dataclass
class Manager:
    """The manager's state shared by the handlers (stored in the aiohttp app)."""

    cluster: Cluster
    strategy: str = "spread"
    #: Only what the scheduler applies: new containers go to Healthy nodes only.
    filters: list[str] = field(default_factory=lambda: ["health"])
    name: str = field(default_factory=socket.gethostname)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Replication: whether this manager takes part, and its current role.
    replicated: bool = False
    role: Role = field(default_factory=lambda: Role(True, None))
    advertise: str = ""
    #: The primary's lock TTL: a dead primary is replaced within it (a replica's request waits that long).
    replication_ttl: float = 0.0
    #: TLS used to reach the primary (the same client identity as towards the engines).
    peer_ssl: ssl.SSLContext | None = None
    #: Pre-serialised answers keyed by the cluster's generation (see ``cached``).
    answers: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: ``(specs version, API version)``: worked out once per change of the nodes (every answer says it).
    _api: tuple[int, str] = (-1, "")
    #: Builds running through this manager, by the client's build ID (``/build/cancel`` finds them here).
    builds: dict[str, RunningBuild] = field(default_factory=dict)
    #: ``((strategy, filters), scheduler)``: made once, not per create (see ``scheduler``).
    _scheduler: tuple[tuple[str, tuple[str, ...]], Scheduler] | None = None
    #: Every create this manager makes goes through it (the rescheduler's too: ``manage`` hands it over).
    placer: Placer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.placer = Placer(self.cluster)

    def is_primary(self) -> bool:
        """Whether this manager may do what only one manager of the cluster does (reschedule).

        True for the primary, and for a manager that is not replicated.
        """
        return not self.replicated or self.role.primary

    def api_version(self) -> str:
        """The newest API version every healthy node speaks; the docker CLI negotiates down to it.

        Every response carries it (``Api-Version``), so it is worked out once
        per change of the nodes (not of their containers), not once per request
        over every engine.
        """
        generation = self.cluster.specs_version
        if self._api[0] == generation:
            return self._api[1]
        versions = [e.api_version for e in self.cluster.healthy() if e.api_version]
        found = min(versions, key=lambda v: tuple(int(p) for p in v.split("."))) if versions else DEFAULT_API_VERSION
        self._api = (generation, found)
        return found

    def scheduler(self) -> Scheduler:
        """The manager's strategy and filters, as a scheduler (made again only if they are changed)."""
        wanted = (self.strategy, tuple(self.filters))
        if self._scheduler is None or self._scheduler[0] != wanted:
            self._scheduler = (wanted, Scheduler(self.strategy, self.filters))
        return self._scheduler[1]

    def generation(self) -> int:
        """Changes whenever any engine's cache or state changes, or an engine comes or goes."""
        return self.cluster.version

    def cached(self, key: str, build: Any, *, stamp: int = 0) -> bytes:
        """``build()`` serialised, reused until the cluster changes (or ``stamp`` does: a time, say).

        On the path of every cached answer (``/info`` calls it twice), so a hit
        reads the generation directly and calls nothing.
        """
        valid = (self.cluster.version, stamp)
        body: bytes | None = self.fresh(key, valid)
        if body is None:
            body = self.kept(key, valid, build)
        return body

    def kept(self, key: str, valid: Any, build: Any) -> Any:
        """``build()``, reused while ``valid`` stays equal (``cluster.specs_version``: until the nodes change)."""
        value = self.fresh(key, valid)
        if value is None:
            value = build()
            self.answers[key] = (valid, value)
        return value

    def fresh(self, key: str, valid: Any) -> Any:
        """What is kept under ``key`` if it is still ``valid``, else None.

        The hot paths (``/info``, ``docker ps``, every answer's headers) ask
        this first, so a hit makes no closure for ``kept`` to call.
        """
        hit = self.answers.get(key)
        return hit[1] if hit is not None and hit[0] == valid else None

    def keep(self, key: str, valid: Any, value: Any) -> Any:
        """``value`` kept under ``key`` while ``valid`` stays equal (see :meth:`fresh`)."""
        self.answers[key] = (valid, value)
        return value


MANAGER: web.AppKey[Manager] = web.AppKey("manager", Manager)


def manager_of(request: web.Request) -> Manager:
    return request.app[MANAGER]
