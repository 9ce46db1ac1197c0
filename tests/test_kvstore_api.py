"""The parts of the kvstore API that are not a backend: URLs, the registry, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import kvstore
from kvstore import (
    BackendNotSupportedError,
    Config,
    InvalidArgumentError,
    KVStoreError,
    NotReachableError,
)
from kvstore.addresses import parse_host_port
from kvstore.url import parse


def test_import_pulls_in_no_swarm_or_client_library() -> None:
    code = (
        "import sys, kvstore, kvstore.backends.sqlite, kvstore.backends.memory;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('swarmctl', 'typer', 'aiohttp', 'docker', 'etcd3', 'grpc', 'kazoo', 'consul', 'requests')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "backend", "addrs", "prefix"),
    [
        (
            "etcd://127.0.0.1:2379,127.0.0.1:22379/myapp",
            "etcd",
            ["127.0.0.1:2379", "127.0.0.1:22379"],
            "myapp",
        ),
        ("consul://h:8500", "consul", ["h:8500"], ""),
        ("zk://a:1,b:2/x/y/", "zk", ["a:1", "b:2"], "x/y"),
        ("sqlite:///abs/path/kv.db", "sqlite", ["/abs/path/kv.db"], ""),
        ("memory://", "memory", [], ""),
        ("memory:///scoped", "memory", [], "scoped"),
        ("ETCD://h:1", "etcd", ["h:1"], ""),
    ],
)
def test_url_parsing(url: str, backend: str, addrs: list[str], prefix: str) -> None:
    parsed = parse(url)
    assert (parsed.backend, parsed.addrs, parsed.prefix) == (backend, addrs, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "etcd",
        "etcd:/h:1",
        "://h:1",
        "etcd://",
        "etcd:///prefix",
        "etcd://a,,b",
        "sqlite://relative.db",
        "sqlite://",
        "memory://host",
        "etcd://h 1:2",
        "etcd://h:1/a/../b",
    ],
)
def test_malformed_urls_name_the_url(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        kvstore.from_url(url)
    assert "URL" in str(info.value)


def test_unknown_backend() -> None:
    with pytest.raises(BackendNotSupportedError, match=r"unknown backend 'redis'.*memory"):
        kvstore.new_store("redis", ["127.0.0.1:6379"])
    with pytest.raises(BackendNotSupportedError):
        kvstore.from_url("redis://127.0.0.1:6379")


def test_url_prefix_replaces_config_prefix(tmp_path: Path) -> None:
    store = kvstore.from_url("memory:///from-url", Config(prefix="from-config"))
    assert store.prefix == "from-url"
    assert store.backend == "memory"
    store = kvstore.from_url("memory://", Config(prefix="/from-config/"))
    assert store.prefix == "from-config"


def test_addrs_must_be_a_list() -> None:
    with pytest.raises(InvalidArgumentError, match="list"):
        kvstore.new_store("memory", "127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="Config"):
        kvstore.new_store("memory", [], {"prefix": "x"})  # type: ignore[arg-type]


def test_register_backend_at_run_time() -> None:
    kvstore.register_backend("memory-alias", lambda addrs, config: kvstore.new_store("memory", addrs, config))
    store = kvstore.new_store("memory-alias", [])
    store.put("k", b"v")
    assert store.get("k").value == b"v"
    assert "memory-alias" in kvstore.backend_names()


def test_memory_stores_are_private() -> None:
    one, two = kvstore.new_store("memory", []), kvstore.new_store("memory", [])
    one.put("k", b"v")
    assert not two.exists("k")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [("h", ("h", 99)), ("h:1", ("h", 1)), ("[::1]:5", ("::1", 5)), ("[::1]", ("::1", 99))],
)
def test_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(addr, 99) == expected


@pytest.mark.parametrize("addr", ["", ":1", "h:", "h:0", "h:65536", "h:x", "h:\u00b2", "::1:5", "[::1", "[::1]x"])
def test_bad_host_port(addr: str) -> None:
    with pytest.raises(InvalidArgumentError, match="address"):
        parse_host_port(addr, 99)


# -- sqlite: files that cannot be used ------------------------------------------------------------


def test_sqlite_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotReachableError, match=r"directory .*nope does not exist"):
        kvstore.from_url(f"sqlite://{tmp_path}/nope/kv.db")


def test_sqlite_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotReachableError, match="is a directory"):
        kvstore.new_store("sqlite", [str(tmp_path)])


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(KVStoreError, match=r"junk\.db.*not a database"):
        kvstore.new_store("sqlite", [str(path)])


def test_sqlite_takes_one_path() -> None:
    with pytest.raises(InvalidArgumentError, match="one file path"):
        kvstore.new_store("sqlite", ["/tmp/a.db", "/tmp/b.db"])


def test_sqlite_bad_option(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="poll_interval"):
        kvstore.new_store("sqlite", [str(tmp_path / "kv.db")], Config(options={"poll_interval": "fast"}))


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = kvstore.new_store("sqlite", [str(tmp_path / "kv.db")])
    store.close()
    with pytest.raises(KVStoreError, match="closed"):
        store.get("k")


_UNPRIVILEGED = """
import os, sys
import kvstore, kvstore.backends.sqlite  # imported first: the interpreter's own files may be root's only
os.setgid(65534); os.setuid(65534)
try:
    kvstore.new_store("sqlite", [sys.argv[1]]).put("k", b"v")
except kvstore.KVStoreError as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to an unprivileged user needs root")
@pytest.mark.parametrize("existing_file", [False, True])
def test_sqlite_without_write_permission(existing_file: bool) -> None:
    """As an unprivileged user (root may write anywhere), the error names the file and the cause."""
    directory = Path(tempfile.mkdtemp(prefix="kvstore-ro-"))  # pytest's tmp_path is root's only
    try:
        directory.chmod(0o755)
        path = directory / "kv.db"
        if existing_file:
            kvstore.new_store("sqlite", [str(path)]).close()
            path.chmod(0o644)
        result = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED, str(path)], capture_output=True, text=True, check=False
        )
    finally:
        shutil.rmtree(directory)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("NotReachableError"), result.stdout
    assert "permission denied" in result.stdout and str(path) in result.stdout
    assert "Traceback" not in result.stderr


def _open_and_put(path: str, n: int) -> None:
    with kvstore.new_store("sqlite", [path]) as store:
        store.put(f"k{n}", b"x")


def test_sqlite_new_file_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    """Creating the file and its schema races between processes; none may fail."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for trial in range(5):
        path = str(tmp_path / f"kv{trial}.db")
        processes = [context.Process(target=_open_and_put, args=(path, n)) for n in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert [p.exitcode for p in processes] == [0] * 6
        with kvstore.new_store("sqlite", [path]) as store:
            assert len(store.list("")) == 6


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_closing_the_store_ends_a_held_lock(backend: str, tmp_path: Path) -> None:
    """The holder's monitor thread must end (not spin) and report the lock lost once its store is closed."""
    import threading
    import time

    addrs = [str(tmp_path / "kv.db")] if backend == "sqlite" else []
    store = kvstore.new_store(backend, addrs)
    lost = store.new_lock("held", ttl=3).acquire(timeout=5)
    monitors = [t for t in threading.enumerate() if t.name == "kvstore-lock:held"]
    assert len(monitors) == 1
    store.close()
    assert lost.wait(5), "a closed store holds no lock"
    deadline = time.monotonic() + 5
    while monitors[0].is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not monitors[0].is_alive()
