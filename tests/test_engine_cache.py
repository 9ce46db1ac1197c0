"""The engine cache against a real dockerd: its cost follows changes, and what changes is seen.

A container is inspected when first seen and when something says it
changed: an event, or its line in the engine's list. The reconciliation
(``refresh_containers``) re-reads the cheap list only; a container changed
behind the cache's back (here: while no event stream is followed) is
corrected by it, and the unchanged ones are not inspected again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import docker as dk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dk.DockerNode]:
    with dk.running_nodes([dk.DockerNode("cache1")], tmp_path_factory.mktemp("image")) as made:
        yield made[0]


def _run(node: dk.DockerNode, *args: str) -> str:
    result = node.docker(*args)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode().strip()


class Counting:
    """Counts the GETs an engine sends, by path, wrapping its real ``request`` (the real engine answers)."""

    def __init__(self, engine: Any) -> None:
        self.paths: Counter[str] = Counter()
        real = engine.request

        def request(method: str, path: str, **kwargs: Any) -> Any:
            self.paths[path.split("?")[0]] += 1
            return real(method, path, **kwargs)

        engine.request = request

    def inspects(self) -> int:
        return sum(
            n
            for path, n in self.paths.items()
            if path.startswith("/containers/") and path.endswith("/json") and path != "/containers/json"
        )


def test_reconciliation_inspects_only_what_changed(node: dk.DockerNode) -> None:
    from swarmctl.cluster.cluster import Cluster
    from swarmctl.cluster.engine import Engine, EngineOptions

    ids = [_run(node, "create", "--name", f"c{i}", dk.IMAGE, "sleep", "300") for i in range(4)]
    _run(node, "start", "c0", "c1")

    async def scenario() -> None:
        cluster = Cluster(EngineOptions())
        engine = Engine(node.addr, cluster.bus, cluster.options, cluster.session)
        try:
            counting = Counting(engine)
            await engine.refresh()
            assert set(ids) <= set(engine.inspects)
            assert counting.inspects() == len(engine.containers)  # each inspected once
            counting.paths.clear()

            await engine.refresh_containers()  # nothing changed: the list only
            assert counting.inspects() == 0
            assert counting.paths["/containers/json"] == 1

            # Behind the cache's back (no events are followed here): one stopped, one removed, one new.
            _run(node, "stop", "-t", "0", "c1")
            _run(node, "rm", "c3")
            new = _run(node, "create", "--name", "c4", dk.IMAGE, "true")
            await engine.refresh_containers()
            assert sorted(
                p for p in counting.paths if p.startswith("/containers/") and p != "/containers/json"
            ) == sorted([f"/containers/{ids[1]}/json", f"/containers/{new}/json"])
            assert engine.containers[ids[1]]["State"] == "exited"
            assert engine.inspects[ids[1]]["State"]["Running"] is False
            assert ids[3] not in engine.containers and ids[3] not in engine.inspects
            assert engine.inspects[new]["Name"] == "/c4"
            assert engine.containers[ids[0]]["State"] == "running"
        finally:
            await engine.stop()
            await cluster.close()

    try:
        asyncio.run(scenario())
    finally:
        node.docker("rm", "-f", "c0", "c1", "c2", "c3", "c4")


def test_events_update_the_cache_at_once(node: dk.DockerNode) -> None:
    """Followed live, a change made on the engine is in the cache as soon as its event is, without a refresh."""
    from swarmctl.cluster.cluster import Cluster
    from swarmctl.cluster.engine import HEALTHY, EngineOptions

    async def scenario() -> None:
        # Refreshes an hour apart: only the events can bring the changes below in time.
        cluster = Cluster(EngineOptions(refresh_min=3600, refresh_max=3600))
        try:
            cluster.set_addresses([node.addr])
            engine = cluster.engines[node.addr]
            await _until(lambda: engine.state == HEALTHY, "the engine is healthy")
            seen = cluster.bus.subscribe()
            cid = await asyncio.to_thread(_run, node, "run", "-d", "--name", "live", dk.IMAGE, "sleep", "300")
            await _until(lambda: (engine.inspects.get(cid) or {}).get("State", {}).get("Running") is True, "started")
            await asyncio.to_thread(_run, node, "kill", "live")
            await _until(lambda: engine.containers[cid]["State"] == "exited", "killed")
            await asyncio.to_thread(_run, node, "rm", "live")
            await _until(lambda: cid not in engine.containers, "removed")
            actions = []
            while not seen.empty():
                event = seen.get_nowait()
                if event.get("id") == cid:
                    actions.append(event["Action"])
            assert {"create", "start", "die", "destroy"} <= set(actions)
        finally:
            await cluster.close()

    try:
        asyncio.run(scenario())
    finally:
        node.docker("rm", "-f", "live")


async def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)
