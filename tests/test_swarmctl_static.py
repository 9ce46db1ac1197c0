"""Static discovery (file://, nodes://, bare lists), ranges, durations, and every malformed input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from swarmctl.discovery import new_discovery
from swarmctl.discovery.ranges import expand
from swarmctl.durations import format_duration, parse_duration
from swarmctl.errors import SwarmctlError
from tests.support.swarm import run_swarmctl


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("1m30s", 90), ("2h", 7200), ("0", 0), ("1.5s", 1.5), ("1h2m3s", 3723)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m30", "-1s", "1s 2s", "ten seconds"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(SwarmctlError, match="invalid"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (90, 0.5, 3600, 0, 180)] == ["1m30s", "500ms", "1h", "0s", "3m"]


def test_ranges_from_the_document() -> None:
    assert expand("10.0.0.[11:100]:2375")[:2] == ["10.0.0.11:2375", "10.0.0.12:2375"]
    assert len(expand("10.0.0.[11:100]:2375")) == 90
    assert expand("192.168.1.2:[2:20]375")[::9] == [
        "192.168.1.2:2375",
        "192.168.1.2:11375",
        "192.168.1.2:20375",
    ]
    assert expand("10.0.[1:2].[5:6]:2375") == [
        "10.0.1.5:2375",
        "10.0.1.6:2375",
        "10.0.2.5:2375",
        "10.0.2.6:2375",
    ]
    assert len(expand("10.0.[0:255].[0:255]:2375")) == 65536
    assert expand("[::1]:2375") == ["[::1]:2375"]
    assert expand("node-[1:2].example.com:2375") == ["node-1.example.com:2375", "node-2.example.com:2375"]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("10.0.0.[20:2]:2375", "goes backwards"),
        ("10.0.0.[a:b]:2375", "two numbers"),
        ("10.0.0.[250:256]:2375", "not an IPv4 address"),
        ("10.0.0.1:[65530:65536]", "port must be 1-65535"),
        ("10.0.0.[1:2:2375", "malformed range"),
        ("10.0.0.1", "expected host:port"),
        ("10.0.0.1:0", "port must be"),
        ("::1:2375", "IPv6"),
        ("bad host:1", "not a host name"),
    ],
)
def test_bad_entries_name_the_entry(entry: str, why: str) -> None:
    with pytest.raises(SwarmctlError, match=why) as info:
        expand(entry)
    assert repr(entry) in str(info.value)


def test_file_discovery_reads_ranges_comments_and_changes(tmp_path: Path) -> None:
    path = tmp_path / "my_cluster"
    path.write_text("# the cluster\n10.0.0.[11:12]:2375\n\n  10.0.1.[15:16]:2375  # two more\n192.168.1.2:[2:3]375\n")
    assert run_swarmctl("list", f"file://{path}").stdout.split() == [
        "10.0.0.11:2375",
        "10.0.0.12:2375",
        "10.0.1.15:2375",
        "10.0.1.16:2375",
        "192.168.1.2:2375",
        "192.168.1.2:3375",
    ]
    with path.open("a") as fh:
        fh.write("127.0.0.1:2375\n")
    assert run_swarmctl("list", f"file://{path}").stdout.split()[-1] == "127.0.0.1:2375"


def test_file_watch_follows_edits(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "cluster"
    path.write_text("127.0.0.1:1\n")
    source = new_discovery(f"file://{path}")
    source.poll_interval = 0.05
    stop = threading.Event()
    seen = source.watch(stop)
    assert next(seen) == ["127.0.0.1:1"]
    time.sleep(0.01)  # a distinct mtime even on coarse file systems
    path.write_text("127.0.0.1:1\n127.0.0.1:2\n")
    assert next(seen) == ["127.0.0.1:1", "127.0.0.1:2"]
    path.write_text("127.0.0.[1:bad]:1\n")  # a broken edit: logged, the last good list stays
    path.write_text("127.0.0.1:3\n")
    assert next(seen) == ["127.0.0.1:3"]
    stop.set()


def test_nodes_and_bare_lists() -> None:
    assert run_swarmctl("list", "nodes://10.0.0.[10:12]:2375,10.0.1.[2:3]:2375").stdout.split() == [
        "10.0.0.10:2375",
        "10.0.0.11:2375",
        "10.0.0.12:2375",
        "10.0.1.2:2375",
        "10.0.1.3:2375",
    ]
    assert run_swarmctl("list", "127.0.0.1:2375,127.0.0.2:2375").stdout.split() == [
        "127.0.0.1:2375",
        "127.0.0.2:2375",
    ]


def test_join_on_a_static_list_is_refused(tmp_path: Path) -> None:
    result = run_swarmctl("join", "--advertise", "127.0.0.1:2375", f"file://{tmp_path}/f")
    assert result.returncode == 1
    assert "static list" in result.stderr


def _bad(tmp_path: Path) -> list[tuple[list[str], str]]:
    pem = tmp_path / "not.pem"
    pem.write_text("hello")
    return [
        (["join", "--advertise", "127.0.0.1", "nodes://127.0.0.1:1"], "expected host:port"),
        (["join", "--advertise", "127.0.0.1:99999", "sqlite:///tmp/x.db"], "port must be"),
        (["join", "--advertise", "::1:2375", "sqlite:///tmp/x.db"], "IPv6"),
        (["join", "--advertise", "127.0.0.1:1", "--heartbeat", "500ms", "sqlite:///tmp/x.db"], "at least 1s"),
        (
            [
                "join",
                "--advertise",
                "127.0.0.1:1",
                "--heartbeat",
                "10s",
                "--ttl",
                "10s",
                "sqlite:///tmp/x.db",
            ],
            "must be longer than --heartbeat",
        ),
        (["join", "--advertise", "127.0.0.1:1", "--delay", "-1s", "sqlite:///tmp/x.db"], "invalid --delay"),
        (["join", "--advertise", "127.0.0.1:1", "--ttl", "forever", "sqlite:///tmp/x.db"], "invalid --ttl"),
        (["list", "nodes://10.0.0.[20:2]:2375"], "goes backwards"),
        (["list", "10.0.0.[a:b]:2375"], "two numbers"),
        (["list", "10.0.0.256:2375"], "not an IPv4 address"),
        (["list", "10.0.0.1:65536"], "port must be"),
        (["list", "redis://127.0.0.1:6379"], "unsupported discovery"),
        (["list", "etcd://"], "malformed store URL"),
        (["list", "file://relative/path"], "absolute"),
        (["list", f"file://{tmp_path}/missing"], "No such file"),
        (["list", "--timeout", "1s", f"sqlite://{tmp_path}/nodir/kv.db"], "does not exist"),
        (["list", "--timeout", "soon", "nodes://127.0.0.1:1"], "invalid --timeout"),
        (["list", "token://abc"], "token.url"),
        (["list", "--discovery-opt", "token.url=ftp://x", "token://abc"], "http(s)"),
        (["list", "--discovery-opt", "bogus=1", "nodes://127.0.0.1:1"], "unknown --discovery-opt"),
        (["list", "--discovery-opt", "kv.path", "nodes://127.0.0.1:1"], "KEY=VALUE"),
        (["list", "--discovery-opt", f"kv.cacertfile={pem}", "etcd://127.0.0.1:2379"], "missing kv.certfile"),
        (
            [
                "list",
                "--discovery-opt",
                f"kv.cacertfile={tmp_path}/nope.pem",
                "--discovery-opt",
                f"kv.certfile={pem}",
                "--discovery-opt",
                f"kv.keyfile={pem}",
                "etcd://127.0.0.1:2379",
            ],
            "nope.pem: no such file",
        ),
        (
            [
                "list",
                "--discovery-opt",
                f"kv.cacertfile={pem}",
                "--discovery-opt",
                f"kv.certfile={pem}",
                "--discovery-opt",
                f"kv.keyfile={pem}",
                "etcd://127.0.0.1:2379",
            ],
            "not a PEM",
        ),
        (
            [
                "list",
                "--discovery-opt",
                f"kv.cacertfile={pem}",
                "--discovery-opt",
                f"kv.certfile={pem}",
                "--discovery-opt",
                f"kv.keyfile={pem}",
                "nodes://127.0.0.1:1",
            ],
            "kv discovery only",
        ),
        (["create"], "token.url"),
        (["create", "--discovery-opt", "token.url=http://127.0.0.1:1"], "Connection refused"),
        (["token-server", "-H", "tcp://127.0.0.1:x"], "port must be"),
        (["token-server", "-H", "tcp://127.0.0.1:1", "--store", "nope://"], "malformed store URL"),
    ]


def test_every_malformed_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    failures = []
    for args, why in _bad(tmp_path):
        result = run_swarmctl(*args, env={"SWARM_TOKEN_URL": ""})
        lines = result.stderr.strip().splitlines()
        if result.returncode != 1 or len(lines) != 1 or why not in lines[0] or "Traceback" in result.stderr:
            failures.append((args, result.returncode, result.stderr))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("args", [["join", "nodes://127.0.0.1:1"], ["list"], ["join", "--bogus"], ["frobnicate"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_swarmctl(*args, env={"SWARM_DISCOVERY": "", "SWARM_ADVERTISE": ""})
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr


def test_help_shows_defaults() -> None:
    for command, defaults in [("join", ["60s", "180s", "0s"]), ("list", ["10s"])]:
        out = run_swarmctl(command, "--help").stdout
        for default in defaults:
            assert f"[default: {default}]" in out, out
    assert "token-server" in run_swarmctl("--help").stdout
