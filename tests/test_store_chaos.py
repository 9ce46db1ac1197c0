"""The store chaos suite, small: leader kills during a ``swarmctl join`` storm lose no registration.

A dozen real ``swarmctl join`` processes (``--delay 2s --heartbeat 2s
--ttl 6s``) register on a 3-member etcd and on a 3-server ZooKeeper
ensemble; the leader is killed (SIGKILL) while they arrive, and again once
the cluster healed. Every node must be listed at the end, a TTL after the
last heal (``bench/chaos_store.py`` runs the same with 60 joins and prints
the convergence times and expiries).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos_store import STORES, storm
from tests.support.zookeeper import zookeeper_installed

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", sorted(STORES))
def test_leader_kills_during_a_join_storm_lose_no_registration(store: str, tmp_path: Path) -> None:
    if store == "zookeeper" and not zookeeper_installed():
        pytest.skip("ZooKeeper is not installed")
    with STORES[store](tmp_path / "cluster") as cluster:
        result = storm(cluster, tmp_path, nodes=12, kills=2, delay="2s")
    assert len(result.kills) == 2
    assert result.lost == [], f"{len(result.lost)} of 12 registrations lost: {result.lost} ({result})"
