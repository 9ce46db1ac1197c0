"""The ``swarmctl`` command line: join, list, create, manage, token-server, certs; shell completion.

Every command turns bad input, an unreachable store or a missing TLS file
into one line on stderr and exit status 1; usage errors (a missing argument,
an unknown flag) exit 2, as click reports them.

Start-up is part of the interface (``list`` is run from scripts, often): this
module imports typer and nothing else heavy; each command imports what it
uses when it runs, and :class:`~.cli_coercion.PlainGroup` keeps typer from
loading pydantic to convert the arguments.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from . import logformat
from .cli_coercion import PlainGroup
from .errors import SwarmctlError

if TYPE_CHECKING:  # the commands import what they need when they run: `list` stays fast
    from .discovery.base import Discovery
    from .replication import ReplicationSettings

log = logging.getLogger("swarmctl")

app = typer.Typer(
    name="swarmctl",
    help="Docker Swarm's discovery and cluster manager: join, list, create, manage, token-server, certs.",
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=PlainGroup,  # no pydantic: see cli_coercion
)

F = TypeVar("F", bound=Callable[..., Any])


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    fatal = "fatal"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _setup_logging(level: LogLevel, style: LogFormat = LogFormat.text) -> None:
    names = {"fatal": "CRITICAL"}
    logformat.setup(names.get(level.value, level.value.upper()), style.value)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"swarmctl version {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    log_level: Annotated[LogLevel, typer.Option("--log-level", "-l", help="Log level.")] = LogLevel.info,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log lines as text, or one JSON object per line.")
    ] = LogFormat.text,
    version: Annotated[
        bool, typer.Option("--version", "-v", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _setup_logging(log_level, log_format)


#: Command groups whose commands' functions are named ``<group>_<command>`` (``certs_ca`` is ``certs ca``).
GROUPS = ("certs",)


def command_label(function_name: str) -> str:
    """How an error names the command: ``list_`` is ``list``, ``token_server`` ``token-server``, ``certs_ca`` ..."""
    name = function_name.rstrip("_")
    for group in GROUPS:
        if name.startswith(group + "_"):
            return f"{group} {command_label(name[len(group) + 1 :])}"
    return name.replace("_", "-")


def fails_cleanly(command: F) -> F:
    """Report ``SwarmctlError`` (and kvstore errors) as one line and exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import kvstore

        try:
            return command(*args, **kwargs)
        except (SwarmctlError, kvstore.KVStoreError) as exc:
            typer.echo(f"swarmctl {command_label(command.__name__)}: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so commands can finish their work (deregister) first."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


DiscoveryArg = Annotated[
    str,
    typer.Argument(
        envvar="SWARM_DISCOVERY",
        metavar="DISCOVERY",
        show_default=False,
        help="etcd://h1:p1,h2:p2/prefix, consul://h:p/prefix, zk://h1:p1/prefix, sqlite:///path/kv.db, "
        "file:///path, nodes://h1:p1,h2:p2 (or h1:p1,h2:p2), token://<id>",
    ),
]
DiscoveryOpts = Annotated[
    list[str],
    typer.Option(
        "--discovery-opt",
        metavar="K=V",
        help="Discovery option K=V, repeatable: kv.cacertfile, kv.certfile, kv.keyfile, kv.path, token.url.",
    ),
]


@app.command()
@fails_cleanly
def join(
    discovery: DiscoveryArg,
    advertise: Annotated[
        str,
        typer.Option(
            "--advertise",
            "--addr",
            envvar="SWARM_ADVERTISE",
            show_default=False,
            metavar="HOST:PORT",
            help="host:port of this node's Docker engine, as the manager will reach it ([IPv6]:port).",
        ),
    ],
    delay: Annotated[
        str,
        typer.Option(metavar="DURATION", help="Wait a random time up to this before the first registration."),
    ] = "0s",
    heartbeat: Annotated[str, typer.Option(metavar="DURATION", help="Re-register this often.")] = "60s",
    ttl: Annotated[
        str, typer.Option(metavar="DURATION", help="Registration expires after this unless renewed.")
    ] = "180s",
    discovery_opt: DiscoveryOpts = [],  # noqa: B006 - typer reads the default
) -> None:
    """Register a Docker node in discovery every heartbeat until stopped (SIGINT/SIGTERM removes it)."""
    from .discovery import new_discovery, parse_options
    from .discovery.entry import check_address
    from .durations import parse_duration
    from .join import check_timing, run_join

    address = check_address(advertise.strip())
    delay_s = parse_duration(delay, "--delay")
    heartbeat_s = parse_duration(heartbeat, "--heartbeat")
    ttl_s = parse_duration(ttl, "--ttl")
    check_timing(heartbeat_s, ttl_s, delay_s)
    # Each attempt to reach the store is bounded by the heartbeat, so a down
    # store delays the next retry by at most one heartbeat.
    source = new_discovery(discovery, parse_options(discovery_opt), timeout=min(heartbeat_s, 10.0))
    stop = stop_on_signals()
    try:
        run_join(source, address, delay=delay_s, heartbeat=heartbeat_s, ttl=ttl_s, stop=stop)
    finally:
        source.close()


@app.command("list")
@fails_cleanly
def list_(
    discovery: DiscoveryArg,
    timeout: Annotated[
        str, typer.Option(metavar="DURATION", help="Give up (exit 1) if the list cannot be read within this.")
    ] = "10s",
    discovery_opt: DiscoveryOpts = [],  # noqa: B006
) -> None:
    """Print the nodes of a cluster, one host:port per line."""
    from .discovery import new_discovery, parse_options
    from .durations import parse_duration
    from .errors import DiscoveryError

    limit = parse_duration(timeout, "--timeout")
    source = new_discovery(discovery, parse_options(discovery_opt), timeout=limit)
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                nodes = source.fetch()
                break
            except DiscoveryError as exc:
                if time.monotonic() + 0.5 > deadline:
                    raise SwarmctlError(f"cannot read {discovery} within {timeout}: {exc}") from None
                log.debug("retrying: %s", exc)
                time.sleep(0.5)
    finally:
        source.close()
    if nodes:
        sys.stdout.write("\n".join(nodes) + "\n")


@app.command()
@fails_cleanly
def create(
    discovery_opt: DiscoveryOpts = [],  # noqa: B006
) -> None:
    """Create a cluster on a hosted discovery service and print its id (for token://<id>)."""
    from .discovery import parse_options
    from .discovery.token import create_cluster

    options = parse_options(discovery_opt)
    service = options.get("token.url") or os.environ.get("SWARM_TOKEN_URL")
    if not service:
        raise SwarmctlError("no discovery service: give --discovery-opt token.url=URL or set SWARM_TOKEN_URL")
    typer.echo(create_cluster(service))


class Strategy(StrEnum):
    """``manage --strategy``: the order in which nodes are tried for a new container."""

    spread = "spread"
    binpack = "binpack"
    random = "random"


class SchedulerFilter(StrEnum):
    """``manage --filter``: which nodes may take a new container (Swarm's default order)."""

    health = "health"
    port = "port"
    containerslots = "containerslots"
    dependency = "dependency"
    affinity = "affinity"
    constraint = "constraint"


@app.command()
@fails_cleanly
def manage(
    discovery: DiscoveryArg,
    host: Annotated[
        list[str],
        typer.Option(
            "-H",
            "--host",
            envvar="SWARM_HOST",
            metavar="tcp://IP:PORT",
            help="Listen on tcp://IP:PORT or unix:///path; repeatable.",
        ),
    ] = ["tcp://127.0.0.1:2375"],  # noqa: B006
    strategy: Annotated[
        Strategy,
        typer.Option(
            help="Placement of new containers: least reserved and fewest containers first (spread), "
            "the most used node that still fits (binpack), or any that fits (random)."
        ),
    ] = Strategy.spread,
    filter_: Annotated[
        list[SchedulerFilter],
        typer.Option(
            "--filter",
            "-f",
            metavar="NAME",
            help="Filter for new containers, repeatable: health, port, containerslots, dependency, affinity, "
            "constraint.",
        ),
    ] = list(SchedulerFilter),  # noqa: B006 - typer reads the default
    heartbeat: Annotated[
        str, typer.Option(metavar="DURATION", help="How often polled discovery (file, token) is re-read.")
    ] = "60s",
    engine_failure_retry: Annotated[
        int, typer.Option(help="Failures in a row after which a node is Unhealthy.", min=1)
    ] = 3,
    engine_refresh_min_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="Shortest time between full refreshes of a node.")
    ] = "30s",
    engine_refresh_max_interval: Annotated[
        str, typer.Option(metavar="DURATION", help="Longest time between full refreshes of a node.")
    ] = "60s",
    engine_timeout: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="How long a node may stay silent on a refresh or a create before it counts as not answering "
            "(a hung node turns Unhealthy after --engine-failure-retry such waits).",
        ),
    ] = "10s",
    discovery_opt: DiscoveryOpts = [],  # noqa: B006
    replication: Annotated[
        bool, typer.Option("--replication", help="Take part in primary election (kv discovery only).")
    ] = False,
    advertise: Annotated[
        str,
        typer.Option(
            "--advertise",
            "--addr",
            envvar="SWARM_ADVERTISE",
            metavar="HOST:PORT",
            show_default=False,
            help="This manager's address for the other managers (with --replication).",
        ),
    ] = "",
    replication_ttl: Annotated[
        str, typer.Option(metavar="DURATION", help="A dead primary is replaced within this.")
    ] = "20s",
    tls: Annotated[bool, typer.Option("--tls", help="Serve TLS (--tlscert, --tlskey).")] = False,
    tlsverify: Annotated[
        bool, typer.Option("--tlsverify", help="Serve TLS and require client certificates signed by --tlscacert.")
    ] = False,
    tlscacert: Annotated[
        str, typer.Option(metavar="FILE", show_default=False, help="CA for clients and engines [~/.docker/ca.pem].")
    ] = "",
    tlscert: Annotated[
        str, typer.Option(metavar="FILE", show_default=False, help="Our certificate [~/.docker/cert.pem].")
    ] = "",
    tlskey: Annotated[str, typer.Option(metavar="FILE", show_default=False, help="Our key [~/.docker/key.pem].")] = "",
    metrics_addr: Annotated[
        str,
        typer.Option(
            "--metrics-addr",
            metavar="tcp://IP:PORT",
            show_default=False,
            help="Serve Prometheus metrics at /metrics on this address (with the same TLS as -H).",
        ),
    ] = "",
    dashboard: Annotated[
        str,
        typer.Option(
            "--dashboard",
            metavar="tcp://IP:PORT",
            show_default=False,
            help="Serve a live page of the cluster on this address (with the same TLS as -H).",
        ),
    ] = "",
) -> None:
    """Serve the Docker Engine API for the whole cluster: docker -H tcp://IP:PORT info/run/ps/logs work."""
    from .cluster.engine import EngineOptions
    from .discovery import new_discovery, parse_options
    from .durations import parse_duration
    from .listen import parse_listen
    from .manage import ManagerSettings, serve
    from .tls import client_context, server_context, tls_files

    listens = [parse_listen(h) for h in host]
    poll = parse_duration(heartbeat, "--heartbeat")
    if poll < 1:
        raise SwarmctlError("--heartbeat must be at least 1s")
    refresh_min = parse_duration(engine_refresh_min_interval, "--engine-refresh-min-interval")
    refresh_max = parse_duration(engine_refresh_max_interval, "--engine-refresh-max-interval")
    if refresh_min <= 0 or refresh_max < refresh_min:
        raise SwarmctlError("--engine-refresh-min-interval must be positive and not above the max interval")
    answer_timeout = parse_duration(engine_timeout, "--engine-timeout")
    if answer_timeout <= 0:
        raise SwarmctlError("--engine-timeout must be positive")
    source = new_discovery(discovery, parse_options(discovery_opt), timeout=10.0)
    source.follow_heartbeat(poll)
    files = tls_files(tls, tlsverify, tlscacert, tlscert, tlskey)
    options = EngineOptions(
        failure_retry=engine_failure_retry,
        refresh_min=refresh_min,
        refresh_max=refresh_max,
        ssl=client_context(files) if files else None,
        timeout=answer_timeout,
    )
    settings = ManagerSettings(
        listens=listens,
        options=options,
        strategy=strategy.value,
        filters=list(dict.fromkeys(f.value for f in filter_)),
        server_ssl=server_context(files) if files else None,
        replication=_replication(source, replication, advertise, replication_ttl),
        metrics=parse_listen(metrics_addr) if metrics_addr else None,
        dashboard=parse_listen(dashboard) if dashboard else None,
    )
    try:
        serve(settings, source)
    finally:
        source.close()


def _replication(source: Discovery, enabled: bool, advertise: str, ttl_text: str) -> ReplicationSettings | None:
    """Check ``--replication``'s companions; the election's store is the discovery's."""
    from .discovery.entry import check_address
    from .discovery.kv import KVDiscovery
    from .durations import parse_duration
    from .replication import ReplicationSettings

    if not enabled:
        return None
    if not advertise:
        raise SwarmctlError("--replication needs --advertise HOST:PORT (this manager's address)")
    address = check_address(advertise.strip())
    ttl = parse_duration(ttl_text, "--replication-ttl")
    if ttl < 2:
        raise SwarmctlError("--replication-ttl must be at least 2s")
    if not isinstance(source, KVDiscovery):
        raise SwarmctlError(f"--replication needs kv discovery (etcd, consul, zk, sqlite), not {source.url}")
    return ReplicationSettings(source.location, address, ttl)


def _default_token_store() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return f"sqlite://{os.path.join(base, 'swarmctl', 'tokens.db')}"


@app.command("token-server")
@fails_cleanly
def token_server(
    host: Annotated[
        str,
        typer.Option(
            "-H",
            "--host",
            envvar="SWARM_HOST",
            show_default=False,
            metavar="tcp://IP:PORT",
            help="Listen on this address.",
        ),
    ],
    store: Annotated[
        str,
        typer.Option(
            help="kvstore URL to keep clusters in (default: an embedded sqlite file).",
            show_default=False,
            metavar="URL",
        ),
    ] = "",
    tlscert: Annotated[
        str, typer.Option(help="Serve HTTPS with this certificate (PEM).", show_default=False, metavar="FILE")
    ] = "",
    tlskey: Annotated[str, typer.Option(help="The certificate's key (PEM).", show_default=False, metavar="FILE")] = "",
) -> None:
    """Serve the hosted discovery API (POST/GET/DELETE /clusters/<id>) for token:// clusters."""
    import kvstore

    from .listen import parse_listen
    from .tokenserver import serve

    listen = parse_listen(host)
    if listen.scheme != "tcp":
        raise SwarmctlError(f"token-server listens on TCP only, not {host}")
    if bool(tlscert) != bool(tlskey):
        raise SwarmctlError("--tlscert and --tlskey go together")
    url = store or _default_token_store()
    if url.startswith("sqlite://"):
        os.makedirs(os.path.dirname(url[len("sqlite://") :]), exist_ok=True)
    stop = stop_on_signals()
    with kvstore.from_url(url) as kv:
        log.info("keeping clusters in %s", url)
        serve(listen.host, listen.port, kv, stop, (tlscert, tlskey) if tlscert else None)


certs_app = typer.Typer(
    name="certs",
    help="Make a CA, then server certificates (stores, engines, managers) and client certificates, "
    "each in DIR/NAME/{ca,cert,key}.pem.",
    no_args_is_help=True,
)
app.add_typer(certs_app)


class KeyType(StrEnum):
    """``certs --key-type``: ECDSA P-256 (ec) or RSA 3072 (rsa)."""

    ec = "ec"
    rsa = "rsa"


CertsDir = Annotated[
    str,
    typer.Option(
        "--dir",
        "-d",
        metavar="DIR",
        help="The CA's directory (DIR/ca.pem, DIR/ca-key.pem); certificates go to DIR/NAME.",
    ),
]
CertName = Annotated[
    str, typer.Argument(metavar="NAME", show_default=False, help="The certificate's name and directory (DIR/NAME).")
]
CertDays = Annotated[int, typer.Option(metavar="DAYS", help="Valid for this many days.")]
CertKey = Annotated[KeyType, typer.Option("--key-type", help="Key: ECDSA P-256 (ec) or RSA 3072 bits (rsa).")]
CertForce = Annotated[bool, typer.Option("--force", help="Replace files that exist (refused otherwise).")]


def _issued(what: str, files: Any) -> None:
    typer.echo(f"{what}: {files.cert}, key {files.key}, CA {files.ca}")


@certs_app.command("ca")
@fails_cleanly
def certs_ca(
    directory: CertsDir = "certs",
    name: Annotated[str, typer.Option(metavar="CN", help="The CA's common name.")] = "swarmctl-ca",
    days: CertDays = 3650,
    key_type: CertKey = KeyType.ec,
    force: CertForce = False,
) -> None:
    """Make the cluster's certificate authority: DIR/ca.pem and DIR/ca-key.pem (keep the key private)."""
    from pathlib import Path

    from .certs import make_ca

    made = make_ca(Path(directory), name=name, days=days, key_type=key_type.value, force=force)
    typer.echo(f"CA: {made.cert}, key {made.key} (readable by you only; keep it off the cluster's machines)")


@certs_app.command("server")
@fails_cleanly
def certs_server(
    name: CertName,
    host: Annotated[
        list[str],
        typer.Option(
            "--host",
            "-H",
            metavar="IP|DNS",
            show_default=False,
            help="An IP address or DNS name clients reach this server by; repeatable or comma-separated.",
        ),
    ],
    directory: CertsDir = "certs",
    days: CertDays = 825,
    key_type: CertKey = KeyType.ec,
    force: CertForce = False,
) -> None:
    """A server certificate (store, engine or manager; it may act as a client too) in DIR/NAME."""
    from pathlib import Path

    from .certs import issue

    made = issue(Path(directory), name, hosts=host, server=True, days=days, key_type=key_type.value, force=force)
    _issued("server certificate", made)


@certs_app.command("client")
@fails_cleanly
def certs_client(
    name: CertName,
    directory: CertsDir = "certs",
    days: CertDays = 825,
    key_type: CertKey = KeyType.ec,
    force: CertForce = False,
) -> None:
    """A client certificate (swarmctl join/list to the store, the docker CLI to a manager) in DIR/NAME."""
    from pathlib import Path

    from .certs import issue

    made = issue(Path(directory), name, server=False, days=days, key_type=key_type.value, force=force)
    _issued("client certificate", made)


def main() -> None:
    """Entry point: no traceback ever reaches the user unless --log-level debug."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        print(f"swarmctl: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
