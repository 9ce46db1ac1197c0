"""The ceiling of the manager's stack: a bare aiohttp server answering fixed bodies, for bench_manage.

Run: .venv/bin/python -m bench.ceiling PORT PATH=FILE [PATH=FILE...]

Each ``PATH`` is one route answering the bytes of ``FILE`` as JSON, with
nothing else (no middleware, no headers of our own): what aiohttp itself
costs per request on this machine, in a process of its own like the
manager's, with the same server settings (access log off, handler
cancellation on) and the same event loop (``swarmctl.manage.event_loop_factory``:
uvloop when it is installed, as for a manager serving plain HTTP). bench_manage gives it bodies of
the sizes the manager answered, so the manager's req/s over this one is the
share of the stack's speed the manager's own work leaves.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from swarmctl.manage import event_loop_factory


def make_app(bodies: dict[str, bytes]) -> web.Application:
    """One GET route per path, each answering its fixed body."""
    app = web.Application()
    for path, body in bodies.items():

        async def answer(request: web.Request, body: bytes = body) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        app.router.add_get(path, answer)
    return app


async def serve(port: int, bodies: dict[str, bytes]) -> None:
    """Serve on 127.0.0.1:``port`` until killed, set up as ``run_manager`` sets up the manager's server."""
    runner = web.AppRunner(make_app(bodies), handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    print(f"ceiling on {type(asyncio.get_running_loop()).__module__}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    port = int(sys.argv[1])
    bodies = {path: Path(file).read_bytes() for path, _, file in (arg.partition("=") for arg in sys.argv[2:])}
    with asyncio.Runner(loop_factory=event_loop_factory(serves_tls=False)) as runner:
        runner.run(serve(port, bodies))


if __name__ == "__main__":
    main()
