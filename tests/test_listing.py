"""A large ``docker ps`` listing written in pieces: the same JSON, the exact Content-Length, over a real server."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from swarmctl.api.containers import PIECE, Listing
from swarmctl.api.context import MANAGER, Manager
from swarmctl.cluster.cluster import Cluster
from swarmctl.cluster.engine import EngineOptions


@pytest.mark.parametrize("count", [0, 1, PIECE, PIECE + 1, 3 * PIECE + 7])
def test_written_in_pieces_as_joined(count: int) -> None:
    lines = [json.dumps({"Id": f"{i:064x}", "Names": [f"/node1/c{i}"]}).encode() for i in range(count)]
    listing = Listing.of_lines(lines)
    assert listing.size == len(listing.body())

    async def handler(request: web.Request) -> web.StreamResponse:
        return await listing.write(request)

    async def scenario() -> tuple[int, str, dict[str, str], bytes]:
        app = web.Application()
        app[MANAGER] = Manager(Cluster(EngineOptions()))
        app.router.add_get("/containers/json", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/containers/json") as response,
            ):
                return (
                    int(response.headers["Content-Length"]),
                    response.headers["Content-Type"],
                    dict(response.headers),
                    await response.read(),
                )
        finally:
            await runner.cleanup()

    length, kind, headers, body = asyncio.run(scenario())
    assert kind == "application/json"
    assert headers["Api-Version"] == "1.41" and headers["Server"].startswith("swarmctl/")  # streamed, still ours
    assert length == len(body) == listing.size
    assert body == listing.body()
    assert [c["Names"] for c in json.loads(body)] == [[f"/node1/c{i}"] for i in range(count)]
