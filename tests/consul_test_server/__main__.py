"""``python -m tests.consul_test_server --port P [--tls CERT KEY CA] [--data FILE] ...``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from .durations import parse_duration
from .server import DEFAULT_DATACENTER, DEFAULT_TOMBSTONE_TTL, ConsulTestServer, log, server_tls_context
from .state import State


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.consul_test_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=3, metavar=("CERT", "KEY", "CA"), help="serve https, demand client certs")
    parser.add_argument("--data", type=Path, help="keep the state in this file across restarts")
    parser.add_argument(
        "--session-ttl-min", type=_duration, default=10.0, help="Consul's session_ttl_min (default 10s)"
    )
    parser.add_argument(
        "--tombstone-ttl", type=_duration, default=DEFAULT_TOMBSTONE_TTL, help="reap tombstones after this"
    )
    parser.add_argument("--acl-token", help="demand this token for /v1/kv, /v1/txn and /v1/session")
    parser.add_argument("--basic-auth", metavar="USER:PASSWORD", help="demand HTTP basic auth, as a proxy would")
    parser.add_argument("--node", default="consul-test-server", help="the node name sessions belong to")
    parser.add_argument(
        "--datacenter", default=DEFAULT_DATACENTER, help=f"this server's datacenter (default {DEFAULT_DATACENTER})"
    )
    args = parser.parse_args(argv)

    state = State(node=args.node, session_ttl_min=args.session_ttl_min)
    server = ConsulTestServer(
        state,
        data_file=args.data,
        acl_token=args.acl_token,
        basic_auth=args.basic_auth,
        tombstone_ttl=args.tombstone_ttl,
        datacenter=args.datacenter,
    )
    context = server_tls_context(*args.tls) if args.tls else None

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.serve(args.host, args.port, context, stop)

    log(f"starting: session_ttl_min={args.session_ttl_min}s tombstone_ttl={args.tombstone_ttl}s data={args.data}")
    asyncio.run(run())


if __name__ == "__main__":
    main()
