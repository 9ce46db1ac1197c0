"""``python -m kvstore``, the operator's command, against every backend's real server.

Each backend gets the same session: put (with and without a TTL, from an
argument and from stdin), get, ls, rm, rm -r, watch and watch-tree (the
command's output read while the test changes the store through kvstore);
then TLS (etcd with client-certificate auth, a certificate from another CA
refused), etcd auth, and bad input, always one line and exit 1.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvstore
from tests.support.consul import running_consul
from tests.support.etcd import EtcdCluster, auth_etcd, make_tls, single_etcd, tls_etcd
from tests.support.process import wait_for
from tests.support.zookeeper import standalone, zookeeper_installed

#: The command must not need these (kvstore alone is installed without them).
FOREIGN = ("swarmctl", "typer", "aiohttp", "click")
LINE_TIMEOUT = 30.0


def kv(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvstore", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        check=False,
    )


def ok(*args: str, stdin: str | None = None) -> str:
    result = kv(*args, stdin=stdin)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("python -m kvstore"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


class Follow:
    """A long-running ``python -m kvstore`` whose output lines are read with a deadline."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kvstore", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self) -> str | None:
        """The next line (None at the end of the output); fails the test after LINE_TIMEOUT."""
        try:
            return self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no output within {LINE_TIMEOUT} s")

    def block(self) -> list[str]:
        """One watch-tree state: its ``--- N keys under DIR`` header, then N lines."""
        header = self.line()
        assert header is not None and header.startswith("--- "), header
        count = int(header.split()[1])
        return [header, *(str(self.line()) for _ in range(count))]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture(scope="module", params=["sqlite", "etcd", "zk", "consul"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store URL of each backend, on its own prefix."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite://{tmp_path_factory.mktemp('sqlite')}/kv.db"
    elif backend == "etcd":
        yield f"{request.getfixturevalue('etcd').url}/ops"
    elif backend == "zk":
        if not zookeeper_installed():
            pytest.skip("ZooKeeper (and Java) not installed")
        with standalone(tmp_path_factory.mktemp("zk")) as server:
            yield f"zk://{server.address}/ops"
    else:
        with running_consul(tmp_path_factory.mktemp("consul")) as server:
            yield f"{server.url}/ops"


def test_put_get_ls_rm(url: str) -> None:
    ok(url, "put", "nodes/10.0.0.1:2375", "10.0.0.1:2375")
    ok(url, "put", "nodes/10.0.0.2:2375", "-", stdin="from stdin")
    if url.startswith("zk://"):  # an ephemeral node, gone when the command exits: refused
        one_line_error(kv(url, "put", "--ttl", "30", "nodes/deep/10.0.0.3:2375", "x"), "put:", "--ttl")
        ok(url, "put", "nodes/deep/10.0.0.3:2375", "with ttl")
    else:
        ok(url, "put", "--ttl", "30", "nodes/deep/10.0.0.3:2375", "with ttl")
    ok(url, "put", "other", "x")
    assert ok(url, "get", "nodes/10.0.0.1:2375") == "10.0.0.1:2375\n"
    assert ok(url, "get", "/nodes/10.0.0.2:2375/") == "from stdin\n"
    assert ok(url, "ls", "nodes") == (
        "nodes/10.0.0.1:2375\t10.0.0.1:2375\nnodes/10.0.0.2:2375\tfrom stdin\nnodes/deep/10.0.0.3:2375\twith ttl\n"
    )
    assert ok(url, "ls", "--keys", "nodes/deep") == "nodes/deep/10.0.0.3:2375\n"
    ok(url, "rm", "nodes/10.0.0.1:2375")
    ok(url, "rm", "nodes/10.0.0.1:2375")  # absent: no error
    one_line_error(kv(url, "get", "nodes/10.0.0.1:2375"), "get:", "nodes/10.0.0.1:2375")
    ok(url, "rm", "-r", "nodes")
    one_line_error(kv(url, "ls", "nodes"), "ls:", "nodes")
    assert ok(url, "get", "other") == "x\n"
    ok(url, "rm", "other")


def test_watch_follows_a_key_until_it_is_deleted(url: str) -> None:
    ok(url, "put", "watched", "one")
    follow = Follow(url, "watch", "watched")
    try:
        assert follow.line() == "one"
        with kvstore.from_url(url) as store:
            store.put("watched", b"two")
            assert follow.line() == "two"
            store.delete("watched")
        assert follow.line() is None  # the watch ends with the key
        assert follow.process.wait(timeout=30) == 0
    finally:
        follow.stop()


def test_watch_tree_prints_the_directory_after_every_change(url: str) -> None:
    follow = Follow(url, "watch-tree", "tree")
    try:
        assert follow.block() == ["--- 0 keys under tree"]
        with kvstore.from_url(url) as store:
            store.put("tree/a", b"1")
            states = [follow.block()]
            while states[-1] != ["--- 1 keys under tree", "tree/a\t1"]:  # a backend may show steps between
                states.append(follow.block())
            store.put("tree/b/c", b"2")
            wait_for(
                lambda: follow.block() == ["--- 2 keys under tree", "tree/a\t1", "tree/b/c\t2"], LINE_TIMEOUT, "2 keys"
            )
            store.delete_tree("tree")
            wait_for(lambda: follow.block() == ["--- 0 keys under tree"], LINE_TIMEOUT, "empty again")
    finally:
        assert follow.stop() in (0, -15)


def test_a_ttl_key_goes_away(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/kv.db"
    ok(url, "put", "short", "v", "--ttl", "0.5s")
    wait_for(lambda: kv(url, "get", "short").returncode == 1, 30, "the key expired")


def test_the_command_imports_kvstore_alone(tmp_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['kvstore', 'sqlite://{tmp_path}/kv.db', 'put', 'k', 'v']\n"
        "try:\n    runpy.run_module('kvstore', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *FOREIGN], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    with tls_etcd(tmp_path / "etcd") as cluster:
        tls = cluster.tls
        assert tls is not None
        url = f"{cluster.url}/ops"
        files = ["--cacert", str(tls.ca_file), "--cert", str(tls.client.cert), "--key", str(tls.client.key)]
        ok(*files, url, "put", "secure", "yes")
        assert ok(url, "get", "secure", *files) == "yes\n"  # the options also go after the command
        rogue = make_tls(tmp_path / "rogue")
        one_line_error(
            kv("--cacert", str(tls.ca_file), "--cert", str(rogue.client.cert), "--key", str(rogue.client.key), url,
               "--timeout", "3", "get", "secure"),
            "get:",
        )  # fmt: skip
        one_line_error(kv("--timeout", "3", url, "get", "secure"), "get:")  # no certificate at all


def test_etcd_auth(tmp_path: Path) -> None:
    with auth_etcd(tmp_path / "etcd", "s3cret", user="ops") as cluster:
        url = f"{cluster.url}/ops"
        ok("--username", "ops", "--password", "s3cret", url, "put", "k", "v")
        result = subprocess.run(
            [sys.executable, "-m", "kvstore", "--user", "ops", url, "get", "k"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "KVSTORE_PASSWORD": "s3cret"},
        )
        assert result.returncode == 0 and result.stdout == "v\n", result.stderr
        one_line_error(kv("--username", "ops", "--password", "wrong", url, "get", "k"), "get:")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["required"]),
        (["sqlite:///tmp/kv.db"], ["COMMAND"]),
        (["sqlite:///tmp/kv.db", "frob"], ["invalid choice: 'frob'"]),
        (["sqlite:///tmp/kv.db", "get"], ["KEY"]),
        (["sqlite:///tmp/kv.db", "get", "a", "b"], ["unrecognized arguments: b"]),
        (["nonsense", "get", "a"], ["malformed store URL 'nonsense'"]),
        (["etcd://", "get", "a"], ["malformed store URL"]),
        (["nosuch://h:1", "get", "a"], ["unknown backend 'nosuch'"]),
        (["etcd://127.0.0.1:99999", "get", "a"], ["99999"]),
        (["sqlite:///tmp/kv.db", "put", "", "v"], ["empty key"]),
        (["sqlite:///tmp/kv.db", "put", "k", "v", "--ttl", "0"], ["--ttl '0' must be a positive"]),
        (["sqlite:///tmp/kv.db", "put", "k", "v", "--ttl", "soon"], ["--ttl 'soon' is not a number"]),
        (["--timeout", "-1", "sqlite:///tmp/kv.db", "get", "k"], ["--timeout '-1'"]),
        (["--cert", "/nonexistent.pem", "--key", "/nonexistent.pem", "etcd://127.0.0.1:2379", "get", "k"], ["no such"]),
        (["--cert", "/etc/hostname", "etcd://127.0.0.1:2379", "get", "k"], ["--cert and --key go together"]),
        (["--cacert", "/etc/hostname", "sqlite:///tmp/kv.db", "get", "k"], ["do not apply"]),
        (["--password", "x", "etcd://127.0.0.1:2379", "get", "k"], ["--password needs --username"]),
        (["-o", "novalue", "etcd://127.0.0.1:2379", "get", "k"], ["expected K=V"]),
        (["--timeout", "1", "etcd://127.0.0.1:1", "get", "k"], ["get:", "127.0.0.1:1"]),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], words: list[str]) -> None:
    one_line_error(kv(*args), *words)
