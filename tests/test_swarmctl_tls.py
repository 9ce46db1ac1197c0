"""``join``/``list`` against stores that demand client certificates (``--discovery-opt kv.*``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.swarm import Join, run_swarmctl, wait_listed

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def etcd_store(workdir: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    from tests.support.etcd import tls_etcd

    with tls_etcd(workdir) as cluster:
        assert cluster.tls is not None
        yield f"{cluster.url}/swarm", cluster.tls.ca_file, cluster.tls.client.cert, cluster.tls.client.key


@contextlib.contextmanager
def consul_store(workdir: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    from tests.support.consul import running_consul

    with running_consul(workdir, tls=True) as server:
        assert server.tls is not None
        client = server.tls.client
        yield f"{server.url}/swarm", client.ca, client.cert, client.key


@contextlib.contextmanager
def zk_store(workdir: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    from tests.support.zookeeper import tls_standalone

    with tls_standalone(workdir) as server:
        assert server.tls is not None
        yield f"zk://{server.address}/swarm", server.tls.ca, server.tls.client.cert, server.tls.client.key


STORES = {"etcd": etcd_store, "consul": consul_store, "zk": zk_store}


@pytest.mark.parametrize("scheme", sorted(STORES))
def test_join_and_list_over_tls(scheme: str, tmp_path: Path) -> None:
    with STORES[scheme](tmp_path) as (url, ca, cert, key):
        options = [
            "--discovery-opt",
            f"kv.cacertfile={ca}",
            "--discovery-opt",
            f"kv.certfile={cert}",
            "--discovery-opt",
            f"kv.keyfile={key}",
        ]
        join = Join(tmp_path, "127.0.0.5:2375", url, *options).start()
        try:
            wait_listed(url, {"127.0.0.5:2375"}, *options)
        finally:
            join.kill()
        plain = run_swarmctl("list", "--timeout", "3s", url, timeout=60)
        assert plain.returncode == 1
        lines = plain.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("swarmctl list: cannot read"), plain.stderr
        assert "Traceback" not in plain.stderr
