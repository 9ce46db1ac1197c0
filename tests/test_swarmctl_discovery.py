"""swarmctl join/list against each discovery source, with real processes and real stores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.discovery_backends import (
    ConsulBackend,
    DiscoveryBackend,
    EtcdBackend,
    SQLiteBackend,
    TokenBackend,
    ZooKeeperBackend,
)
from tests.support.process import wait_for
from tests.support.swarm import Join, listed, wait_listed

pytestmark = pytest.mark.slow

BACKENDS: dict[str, Callable[[Path], DiscoveryBackend]] = {
    "sqlite": SQLiteBackend,
    "token": TokenBackend,
    "etcd": EtcdBackend,
    "zk": ZooKeeperBackend,
    "consul": ConsulBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DiscoveryBackend]:
    made = BACKENDS[request.param](tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def joins(tmp_path: Path) -> Iterator[list[Join]]:
    started: list[Join] = []
    yield started
    for join in started:
        join.kill()


def start_join(joins: list[Join], tmp_path: Path, backend: DiscoveryBackend, advertise: str, **kwargs: str) -> Join:
    join = Join(tmp_path, advertise, backend.url, *backend.options, **kwargs)
    joins.append(join.start())
    return join


def test_join_list_leave_and_expire(backend: DiscoveryBackend, joins: list[Join], tmp_path: Path) -> None:
    backend.start()
    a = start_join(joins, tmp_path, backend, "127.0.0.1:2375")
    b = start_join(joins, tmp_path, backend, "127.0.0.2:2375")
    wait_listed(backend.url, {"127.0.0.1:2375", "127.0.0.2:2375"}, *backend.options)
    c = start_join(joins, tmp_path, backend, "[::1]:2376")
    wait_listed(backend.url, {"127.0.0.1:2375", "127.0.0.2:2375", "[::1]:2376"}, *backend.options)

    assert a.terminate_and_wait() == 0
    # SIGTERM removes the entry before exiting: gone at once, not after the TTL.
    assert set(listed(backend.url, *backend.options)) == {"127.0.0.2:2375", "[::1]:2376"}
    assert "removed 127.0.0.1:2375" in a.log_path.read_text()

    b.kill()  # SIGKILL: no goodbye; the 3 s TTL removes it
    assert "127.0.0.2:2375" in listed(backend.url, *backend.options)
    wait_listed(backend.url, {"[::1]:2376"}, *backend.options, timeout=3 + 15)
    assert c.running


def test_join_before_the_store_is_up(backend: DiscoveryBackend, joins: list[Join], tmp_path: Path) -> None:
    join = start_join(joins, tmp_path, backend, "127.0.0.9:2375")
    wait_for(lambda: "cannot register" in join.log_path.read_text(), 30, "join to report the store down")
    assert join.running
    backend.start()
    wait_listed(backend.url, {"127.0.0.9:2375"}, *backend.options)
    assert "registered 127.0.0.9:2375" in join.log_path.read_text()


def test_delay_spreads_first_registrations(joins: list[Join], tmp_path: Path) -> None:
    """10 joins with --delay 5s register at random moments across the window, not all at once."""
    import kvstore

    backend = SQLiteBackend(tmp_path)
    backend.start()
    arrivals: dict[str, float] = {}
    import time

    with kvstore.from_url(backend.url) as store, store.watch_tree("docker/swarm/nodes") as watch:
        next(watch)
        started = time.monotonic()
        for n in range(10):
            start_join(joins, tmp_path, backend, f"127.0.1.{n + 1}:2375", delay="5s", heartbeat="30s", ttl="60s")
        while len(arrivals) < 10:
            pairs = watch.next(timeout=30)
            now = time.monotonic() - started
            for pair in pairs:
                arrivals.setdefault(pair.value.decode(), now)
    times = sorted(arrivals.values())
    # Uniform in [0, 5 s] plus process start-up: ten arrivals spanning under 1 s
    # has a probability of about 1e-5; all landing after 5 s + start-up is a bug.
    assert times[-1] - times[0] > 1.0, times
    assert times[-1] < 5.0 + 15, times


@pytest.fixture
def env_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SWARM_DISCOVERY", "SWARM_ADVERTISE", "SWARM_HOST", "SWARM_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)


def test_environment_variables_stand_in(joins: list[Join], tmp_path: Path, env_cleared: None) -> None:
    backend = SQLiteBackend(tmp_path)
    backend.start()
    join = Join(tmp_path, "unused:1", "unused")
    join.argv = [join.argv[0], "join", "--heartbeat", "1s", "--ttl", "3s"]
    join.env = {"SWARM_DISCOVERY": backend.url, "SWARM_ADVERTISE": "127.0.0.7:2375"}
    joins.append(join.start())
    wait_listed(backend.url, {"127.0.0.7:2375"})
    from tests.support.swarm import run_swarmctl

    result = run_swarmctl("list", env={"SWARM_DISCOVERY": backend.url})
    assert result.stdout.split() == ["127.0.0.7:2375"]
    assert os.environ.get("SWARM_DISCOVERY") is None
