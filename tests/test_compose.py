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
from tests.support.swarm import run_swarmctl

COMPOSE = Path(__file__).resolve().parent.parent / "compose"
FILES = sorted(COMPOSE.glob("*.yml"))
#: The certificate commands a compose file's header gives (``#   swarmctl certs ...``), run by the TLS test.
CERT_COMMAND = re.compile(r"^#\s+swarmctl (certs .*)$", re.M)
CERT_FILES = ("/certs/ca.pem", "/certs/cert.pem", "/certs/key.pem")


def cert_commands(path: Path) -> list[list[str]]:
    return [line.split() for line in CERT_COMMAND.findall(path.read_text())]


def made_certificates(path: Path) -> set[str]:
    """The certificate directories a file's header makes (``swarmctl certs server|client NAME``)."""
    return {argv[2] for argv in cert_commands(path) if argv[1] in ("server", "client")}


def mounted_certificates(service: dict[str, Any]) -> str | None:
    """The certificate directory a service mounts read-only at /certs (``./certs/NAME:/certs:ro``)."""
    for volume in service.get("volumes", []):
        match = re.fullmatch(r"\./certs/([^/:]+):/certs:ro", volume)
        if match:
            return match[1]
    return None


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
            assert cert in CERT_FILES, (name, cert)
            assert mounted_certificates(service) in made_certificates(path), (name, service.get("volumes"))
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


def test_tls_file_certificates_cover_every_name_they_are_reached_by(tmp_path: Path) -> None:
    """Run the TLS example's own ``swarmctl certs`` lines: every server's certificate names the host its
    clients dial (etcd members in the discovery URL, nodes as joined, managers as advertised), every file a
    service is given exists in the directory it mounts, and every mounted directory is made."""
    from cryptography import x509

    path = COMPOSE / "etcd-tls.yml"
    commands = cert_commands(path)
    assert commands and commands[0][:2] == ["certs", "ca"], commands
    for argv in commands:
        argv = [str(tmp_path / "certs") if word == "compose/certs" else word for word in argv]
        result = run_swarmctl(*argv)
        assert result.returncode == 0, (argv, result.stderr)
    services = load(path)
    reached: dict[str, set[str]] = {}
    for name, service in services.items():
        mount = mounted_certificates(service)
        assert mount is not None, f"{name} mounts no certificates"
        for word in service["command"]:
            if word.startswith("/certs/") or "=/certs/" in word:
                assert (tmp_path / "certs" / mount / word.rsplit("/", 1)[-1]).is_file(), (name, word)
        if service.get("image") == "swarmctl:local":
            _, params = parse(service["command"])
            for host in hosts_in(params["discovery"]):
                reached.setdefault(mounted_certificates(services[host]) or "", set()).add(host)
            target = split_address(params["advertise"])[0]
            reached.setdefault(mounted_certificates(services[target]) or "", set()).add(target)
    assert set(reached) == {"etcd", "node", "manager"}, reached
    for mount, hosts in reached.items():
        cert = x509.load_pem_x509_certificate((tmp_path / "certs" / mount / "cert.pem").read_bytes())
        names = set(
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
        assert hosts <= names, (mount, hosts, names)
