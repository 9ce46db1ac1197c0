"""Container inspects kept compressed, with the few facts read often beside them.

A dockerd inspect is about 4 KB of JSON and about 19 KB once parsed into
Python objects: 30,000 of them would take 570 MB, more than the whole
manager may use. Kept as compressed JSON they take about 1.6 KB each and are
parsed again when asked for (some tens of microseconds: an inspect request, a
rescheduling, a filter that reads ports). What is read for every node on
every placement and every ``/info`` (the reservations, the volumes whose
data is here) is computed once when an inspect is stored, so reading it
never parses anything.

It is a ``MutableMapping`` of ID -> parsed inspect, so code reading the cache
is written as for a dict; a document read from it is a fresh copy, and
changing it changes nothing in the cache (write the whole document back).
"""

from __future__ import annotations

import datetime
import json
import re
import zlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from .cpusets import lenient_cpuset


@dataclass(frozen=True, slots=True)
class Facts:
    """What the scheduler and ``/info`` read of a container for every decision."""

    #: CPUs reserved (``--cpus``, or ``-c`` shares / 1024; at least the CPUs of ``--cpuset-cpus``)
    #: and memory reserved (``-m``), in bytes.
    cpus: float
    memory: int
    #: Names of the ``local``-driver volumes it mounts (stopped containers too): their data is on its node.
    local_volumes: frozenset[str]
    #: When it was created, in nanoseconds (the listing says seconds: ``before``/``since`` need the order).
    created_ns: int = 0
    #: The CPUs it is pinned to (``--cpuset-cpus``): reserved whole, no other container may be pinned there.
    cpuset: frozenset[int] = frozenset()

    @classmethod
    def of(cls, inspect: dict[str, Any]) -> Facts:
        host = inspect.get("HostConfig") or {}
        cpus = 0.0
        if host.get("NanoCpus"):
            cpus = host["NanoCpus"] / 1e9
        elif host.get("CpuShares"):
            cpus = host["CpuShares"] / 1024
        cpuset = lenient_cpuset(host.get("CpusetCpus"))
        cpus = max(cpus, float(len(cpuset)))
        volumes = frozenset(
            str(mount.get("Name"))
            for mount in inspect.get("Mounts") or []
            if mount.get("Type") == "volume" and mount.get("Driver", "local") == "local"
        )
        created = _nanoseconds(str(inspect.get("Created") or ""))
        return cls(cpus, int(host.get("Memory") or 0), volumes, created, cpuset)


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def _nanoseconds(stamp: str) -> int:
    """Go's RFC 3339 time with nanoseconds (``2026-12-02T04:30:01.1234Z``) as nanoseconds since 1970; 0 if unread."""
    parts = _RFC3339.fullmatch(stamp)
    if parts is None:
        return 0
    seconds = datetime.datetime.fromisoformat(parts[1] + ("+00:00" if parts[3] == "Z" else parts[3]))
    return int(seconds.timestamp()) * 1_000_000_000 + int((parts[2] or "").ljust(9, "0")[:9])


class Inspects(MutableMapping[str, dict[str, Any]]):
    """Container ID -> its inspect, stored compressed; :meth:`facts` without parsing."""

    def __init__(self) -> None:
        self._packed: dict[str, bytes] = {}
        self._facts: dict[str, Facts] = {}

    def store(self, cid: str, raw: bytes, inspect: dict[str, Any]) -> None:
        """Keep ``inspect`` as the engine sent it (``raw``: its JSON text), already parsed by the caller."""
        self._packed[cid] = zlib.compress(raw.strip(), 1)
        self._facts[cid] = Facts.of(inspect)

    def discard(self, cid: str) -> None:
        """Forget ``cid`` if known (``pop`` would parse the document first)."""
        self._packed.pop(cid, None)
        self._facts.pop(cid, None)

    def raw(self, cid: str) -> bytes:
        """The inspect's JSON text, as the engine sent it (``KeyError`` if unknown)."""
        return zlib.decompress(self._packed[cid])

    def facts_of(self, cid: str) -> Facts | None:
        """One container's :class:`Facts` (None if it is not inspected yet)."""
        return self._facts.get(cid)

    def facts(self) -> Iterator[Facts]:
        """Every container's :class:`Facts`."""
        return iter(self._facts.values())

    def __getitem__(self, cid: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.raw(cid))
        return document

    def __setitem__(self, cid: str, inspect: dict[str, Any]) -> None:
        self.store(cid, json.dumps(inspect, separators=(",", ":")).encode(), inspect)

    def __delitem__(self, cid: str) -> None:
        del self._packed[cid]
        del self._facts[cid]

    def __contains__(self, cid: object) -> bool:
        return cid in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)
