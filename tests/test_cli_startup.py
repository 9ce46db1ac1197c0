"""What ``swarmctl`` loads to start: each command only what it uses.

``list`` and ``join`` load the one store client their URL names, no aiohttp,
no server code (API, cluster, scheduler, manager, token server) and no
pydantic (typer's parameter conversion is replaced, see
``swarmctl.cli_coercion``); ``--help`` loads no store at all. The modules are
read from the real command's interpreter when it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

import kvstore
from swarmctl.cli import app
from swarmctl.cli_coercion import install_plain_conversion
from tests.support.etcd import EtcdCluster, single_etcd
from tests.support.process import wait_for
from tests.support.swarm import listed

#: Runs ``swarmctl ARGS...`` as the console script does, then writes every loaded module's name to $MODULES_OUT.
RUN_AND_RECORD = """
import atexit, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "swarmctl"
from swarmctl.cli import main
main()
"""
NEVER = ("pydantic", "rich", "aiohttp", "uvloop", "multidict", "cryptography", "docker")
SERVER_CODE = ("swarmctl.api", "swarmctl.cluster", "swarmctl.scheduler", "swarmctl.net", "swarmctl.manage")
SERVER_CODE += ("swarmctl.tokenserver", "swarmctl.replication", "swarmctl.certs")
CLIENTS = {"etcd": "etcd3", "zk": "kazoo", "consul": "consul", "grpc": "grpc"}


def command(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", RUN_AND_RECORD, *args]


def loaded(out: Path) -> set[str]:
    return set(out.read_text().split())


def unwanted(modules: set[str], *also: str) -> list[str]:
    """The loaded modules a command must not load: ``NEVER``, server code and the named clients."""
    banned = (*NEVER, *SERVER_CODE, *also)
    return sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))


def run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(out, *args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MODULES_OUT": str(out)},
        check=False,
    )


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


def test_help_loads_no_store(tmp_path: Path) -> None:
    result = run(tmp_path / "modules", "--help")
    assert result.returncode == 0 and "list" in result.stdout, result.stderr
    modules = loaded(tmp_path / "modules")
    assert unwanted(modules, *CLIENTS.values(), "kvstore.backends", "sqlite3") == []


def test_list_on_etcd_loads_the_etcd_client_only(etcd: EtcdCluster, tmp_path: Path) -> None:
    url = f"{etcd.url}/startup"
    with kvstore.from_url(url) as store:
        for n in (1, 2, 3):
            store.put(f"docker/swarm/nodes/127.0.0.{n}:2375", f"127.0.0.{n}:2375".encode())
    result = run(tmp_path / "modules", "list", "--timeout", "10s", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.1:2375", "127.0.0.2:2375", "127.0.0.3:2375"]
    modules = loaded(tmp_path / "modules")
    assert "etcd3" in modules  # the check below looks at a real listing's modules
    assert unwanted(modules, CLIENTS["zk"], CLIENTS["consul"]) == []


def test_join_on_sqlite_loads_no_store_client(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/kv.db"
    out = tmp_path / "modules"
    process = subprocess.Popen(
        command(out, "join", "--advertise", "127.0.0.1:2375", "--heartbeat", "1s", "--ttl", "3s", url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "MODULES_OUT": str(out)},
    )
    try:
        wait_for(lambda: listed(url) == ["127.0.0.1:2375"], 30, "join registered the node")
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    modules = loaded(out)
    assert "kvstore.backends.sqlite" in modules
    assert unwanted(modules, *CLIENTS.values()) == []


def test_every_parameter_converts_without_pydantic() -> None:
    """If a typer release moves the internals cli_coercion replaces, this says so (the CLI still works)."""
    group = typer.main.get_command(app)
    params = len(group.params) + sum(len(c.params) for c in group.commands.values())  # type: ignore[attr-defined]
    fresh = typer.main.get_command(app)  # the first one's parameters were converted when it was made
    for param in [*fresh.params, *(p for c in fresh.commands.values() for p in c.params)]:  # type: ignore[attr-defined]
        param._runtime_param = None  # type: ignore[attr-defined]
    assert install_plain_conversion(fresh) == params


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["manage", "--strategy", "nope", "nodes://127.0.0.1:2375"], "'nope' is not one of 'spread', 'binpack'"),
        (["manage", "--filter", "health", "--filter", "x", "nodes://127.0.0.1:2375"], "'x' is not one of 'health'"),
        (["manage", "--engine-failure-retry", "0", "nodes://127.0.0.1:2375"], "smaller than the minimum of 1"),
        (["manage", "--engine-failure-retry", "two", "nodes://127.0.0.1:2375"], "'two' is not a valid integer"),
        (["--log-level", "loud", "list", "nodes://127.0.0.1:2375"], "'loud' is not one of 'debug'"),
    ],
)
def test_bad_values_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = run(tmp_path / "modules", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert unwanted(loaded(tmp_path / "modules"), *CLIENTS.values()) == []
