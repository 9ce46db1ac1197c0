"""The compose files under compose/: they parse, and every swarmctl command in them is valid.

No image registry is reachable here, so the files are not run; instead each
service's command goes through swarmctl's own parser and checks (options,
durations, addresses, discovery URLs and options), and every host name it
names must be a service of the same file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

import kvstore.url
from swarmctl.cli import app
from swarmctl.discovery import KV_SCHEMES, parse_options
from swarmctl.discovery.entry import split_address
from swarmctl.durations import parse_duration
from swarmctl.join import check_timing
from swarmctl.listen import parse_listen

COMPOSE = Path(__file__).resolve().parent.parent / "compose"
FILES = sorted(COMPOSE.glob("*.yml"))
CERTS = set(re.findall(r"^issue (\S+)", (COMPOSE / "make-certs.sh").read_text(), re.M))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), path
    return data["services"]


def parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The subcommand and its parameters, as click parses ``swarmctl argv...`` (nothing runs)."""
    group = typer.main.get_command(app)
    ctx = group.make_context("swarmctl", list(argv[1:]))
    words = [*getattr(ctx, "protected_args", getattr(ctx, "_protected_args", [])), *ctx.args]
    name, rest = words[0], words[1:]
    command = group.get_command(ctx, name)  # type: ignore[attr-defined]
    assert command is not None, f"unknown command {name}"
    sub = command.make_context(name, list(rest), parent=ctx)
    return name, sub.params


def hosts_in(url: str) -> list[str]:
    return [addr.rsplit(":", 1)[0] for addr in kvstore.url.parse(url).addrs]


def certificates(options: dict[str, str], flags: dict[str, Any]) -> list[str]:
    paths = [v for k, v in options.items() if k.startswith("kv.") and k != "kv.path"]
    paths += [flags[k] for k in ("tlscacert", "tlscert", "tlskey") if flags.get(k)]
    return paths


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_compose_file(path: Path) -> None:
    services = load(path)
    swarm = {name: s for name, s in services.items() if s.get("image") == "swarmctl:local"}
    assert swarm, "no swarmctl service"
    managers = joins = 0
    for name, service in swarm.items():
        command = service["command"]
        assert command[0] == "swarmctl", name
        sub, params = parse(command)
        options = parse_options(params["discovery_opt"])
        scheme = params["discovery"].split("://", 1)[0]
        assert scheme in KV_SCHEMES
        for host in hosts_in(params["discovery"]):
            assert host in services, f"{name}: discovery names {host}, not a service"
        for cert in certificates(options, params):
            assert cert.startswith("/certs/") and "./certs:/certs:ro" in service.get("volumes", []), (name, cert)
            assert Path(cert).stem.removesuffix("-key") in CERTS | {"ca"}, (name, cert)
        if sub == "join":
            joins += 1
            node, _ = split_address(params["advertise"])
            assert node in services and services[node]["image"].startswith("docker:"), name
            check_timing(
                parse_duration(params["heartbeat"]), parse_duration(params["ttl"]), parse_duration(params["delay"])
            )
        elif sub == "manage":
            managers += 1
            assert params["replication"], f"{name}: managers run replicated"
            host, _ = split_address(params["advertise"])
            assert host == name, f"{name} advertises {host}"
            for listen in params["host"]:
                assert parse_listen(listen).port == 2375
            assert parse_duration(params["replication_ttl"]) >= 2
        else:
            pytest.fail(f"{name}: unexpected command {sub}")
    assert managers >= 2 and joins >= 3, (managers, joins)


def test_malformed_commands_are_caught() -> None:
    """The check above can fail: a typo'd option or a bad value does not parse."""
    for argv in (
        ["swarmctl", "join", "--advertize", "n:1", "etcd://e:2379"],
        ["swarmctl", "manage", "--engine-failure-retry", "zero", "etcd://e:2379"],
    ):
        with pytest.raises(Exception) as info:  # click's UsageError (typer carries its own click)
            parse(argv)
        assert getattr(info.value, "exit_code", None) == 2, info.value
