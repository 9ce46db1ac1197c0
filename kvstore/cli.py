"""``python -m kvstore``: an operator's look into any store, as ``etcdctl`` or ``consul kv`` give for one.

::

    python -m kvstore [options] URL get KEY
    python -m kvstore [options] URL put KEY VALUE [--ttl SECONDS]   (VALUE -: read stdin)
    python -m kvstore [options] URL ls [DIR] [--keys]
    python -m kvstore [options] URL rm KEY [-r]
    python -m kvstore [options] URL watch KEY
    python -m kvstore [options] URL watch-tree [DIR]

``URL`` is any store URL (``etcd://h1:p1,h2:p2/prefix``, ``zk://...``,
``consul://...``, ``sqlite:///abs/kv.db``), parsed by :mod:`kvstore.url`; the
options (TLS files, user and password, backend options, timeout) may come
before or after the command. It uses nothing but kvstore and the standard
library (argparse), so it runs wherever kvstore is installed. Every failure,
bad input included, is one line on stderr and exit status 1; Ctrl-C ends a
watch with status 130. ``put --ttl`` is refused on ZooKeeper, where a TTL key
is an ephemeral node that would vanish as the command exits.

Output: ``get`` writes the value as it is stored, then a newline; ``ls``
writes ``KEY<TAB>VALUE`` lines (``--keys``: keys only), values decoded as
UTF-8 with undecodable bytes escaped; ``watch`` writes the value after every
change; ``watch-tree`` writes ``--- N keys under DIR`` and then the ``ls``
lines after every change.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import from_url
from . import url as store_url
from .errors import KVStoreError
from .store import ClientTLS, Config, KVPair, Store

PROG = "python -m kvstore"
DEFAULT_TIMEOUT = 10.0
INTERRUPTED = 130


class CommandError(Exception):
    """Bad input found before (or instead of) talking to the store: one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 1, like every other failure here."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {PROG} --help)")


def _options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The connection options, accepted before and after the command (after: no defaults, so no overriding)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--cacert", dest="ca_file", metavar="FILE", default=default(None), help="CA that signs the store's servers"
    )
    group.add_argument(
        "--cert", dest="cert_file", metavar="FILE", default=default(None), help="client certificate (with --key)"
    )
    group.add_argument(
        "--key", dest="key_file", metavar="FILE", default=default(None), help="the client certificate's key"
    )
    group.add_argument("--username", "--user", metavar="NAME", default=default(None), help="user (etcd, zk digest)")
    group.add_argument(
        "--password",
        metavar="PASSWORD",
        default=default(None),
        help="password for --username (else $KVSTORE_PASSWORD)",
    )
    group.add_argument(
        "-o",
        "--option",
        metavar="K=V",
        action="append",
        default=default([]),
        help="backend option (Config.options), repeatable: e.g. token=... for consul",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        default=default(str(DEFAULT_TIMEOUT)),
        help=f"give up reaching the store after this (default {DEFAULT_TIMEOUT:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Read, write and watch the keys of any kvstore URL.")
    _options(parser, suppress=False)
    parser.add_argument("url", metavar="URL", help="etcd://h:p/prefix, consul://h:p, zk://h:p, sqlite:///abs/kv.db")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        _options(sub, suppress=True)
        return sub

    command("get", "print a key's value").add_argument("key", metavar="KEY")
    put = command("put", "write a key (VALUE - reads the value from stdin)")
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE")
    put.add_argument("--ttl", metavar="SECONDS", help="the key vanishes after this unless written again")
    ls = command("ls", "every key below a directory (any depth), with its value")
    ls.add_argument("directory", metavar="DIR", nargs="?", default="")
    ls.add_argument("--keys", action="store_true", help="keys only")
    rm = command("rm", "delete a key (no error if absent)")
    rm.add_argument("key", metavar="KEY")
    rm.add_argument("-r", "--recursive", action="store_true", help="the key and everything below it")
    command("watch", "print a key's value now and after every change, until it is deleted").add_argument(
        "key", metavar="KEY"
    )
    command("watch-tree", "print a directory's keys now and after every change below it").add_argument(
        "directory", metavar="DIR", nargs="?", default=""
    )
    return parser


def _seconds(text: str, what: str) -> float:
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise CommandError(f"{what} {text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise CommandError(f"{what} {text!r} must be a positive number of seconds")
    return value


def _readable(path: str, flag: str) -> str:
    if not os.path.isfile(path):
        raise CommandError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise CommandError(f"{flag} {path}: cannot read it")
    return path


def config_from(args: argparse.Namespace) -> Config:
    """The store's :class:`Config` from the connection options, checked before anything connects."""
    tls = None
    if args.cert_file or args.key_file or args.ca_file:
        if bool(args.cert_file) != bool(args.key_file):
            raise CommandError("--cert and --key go together")
        tls = ClientTLS(
            ca_cert_file=_readable(args.ca_file, "--cacert") if args.ca_file else None,
            cert_file=_readable(args.cert_file, "--cert") if args.cert_file else None,
            key_file=_readable(args.key_file, "--key") if args.key_file else None,
        )
    password = args.password if args.password is not None else os.environ.get("KVSTORE_PASSWORD")
    if password is not None and not args.username:
        raise CommandError("--password needs --username")
    options: dict[str, str] = {}
    for pair in args.option:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--option {pair!r}: expected K=V")
        options[name.strip()] = value
    return Config(
        connection_timeout=_seconds(args.timeout, "--timeout"),
        tls=tls,
        username=args.username or None,
        password=password,
        options=options,
    )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _write_pairs(pairs: Sequence[KVPair], keys_only: bool) -> None:
    out = sys.stdout
    for pair in pairs:
        out.write(pair.key + "\n" if keys_only else f"{pair.key}\t{_text(pair.value)}\n")


def _write_value(value: bytes) -> None:
    sys.stdout.buffer.write(value + b"\n")
    sys.stdout.buffer.flush()


def run(store: Store, args: argparse.Namespace) -> None:
    """Do one command on an open store."""
    if args.command == "get":
        _write_value(store.get(args.key).value)
    elif args.command == "put":
        ttl = _seconds(args.ttl, "--ttl") if args.ttl is not None else None
        value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
        store.put(args.key, value, ttl=ttl)
    elif args.command == "ls":
        _write_pairs(store.list(args.directory), args.keys)
    elif args.command == "rm":
        if args.recursive:
            store.delete_tree(args.key)
        else:
            store.delete(args.key)
    elif args.command == "watch":
        with store.watch(args.key) as watch:
            for pair in watch:
                _write_value(pair.value)
    elif args.command == "watch-tree":
        where = args.directory.strip("/") or "/"
        with store.watch_tree(args.directory) as watch:
            for pairs in watch:
                sys.stdout.write(f"--- {len(pairs)} keys under {where}\n")
                _write_pairs(pairs, keys_only=False)
                sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status (0, 1 on any error, 130 on Ctrl-C)."""
    command = ""
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        config = config_from(args)
        if args.command == "put" and args.ttl is not None:
            _seconds(args.ttl, "--ttl")  # refused before connecting
        parsed = store_url.parse(args.url)
        local = store_url.PATH_BACKENDS | store_url.ADDRESSLESS_BACKENDS
        if config.tls is not None and parsed.backend in local:
            raise CommandError(f"{parsed.backend} is not reached over the network: --cacert/--cert/--key do not apply")
        if parsed.backend == "zk" and getattr(args, "ttl", None) is not None:
            # a TTL key on ZooKeeper is an ephemeral node: it would vanish as this command exits
            raise CommandError("zk keys with a TTL live only as long as the process that wrote them: no --ttl here")
        with from_url(args.url, config) as store:
            run(store, args)
    except (CommandError, KVStoreError) as exc:
        print(f"{PROG}{' ' + command if command else ''}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader has gone, nothing to report
        sys.stderr.close()
        return 0
    return 0
