"""Names across nodes: ``node/name`` refs, and listings that merge every node's objects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..cluster.engine import Engine
from .context import manager_of


def per_node(
    request: web.Request,
    kind: str,
    items: Callable[[Engine], list[dict[str, Any]]],
    prefixed: Callable[[dict[str, Any]], bool],
    wrap: Callable[[list[dict[str, Any]]], Any],
) -> web.Response:
    """Every healthy node's ``items``, names written ``<node>/<name>`` where ``prefixed``, cached."""
    manager = manager_of(request)

    def build() -> bytes:
        found = []
        for engine in manager.cluster.healthy():
            for item in items(engine):
                shown = dict(item)
                if prefixed(item):
                    shown["Name"] = f"{engine.name}/{item['Name']}"
                found.append(shown)
        return json.dumps(wrap(found)).encode()

    return web.Response(body=manager.cached(kind, build), content_type="application/json")


def split_node(ref: str) -> tuple[str | None, str]:
    node, sep, rest = ref.partition("/")
    return (node, rest) if sep else (None, ref)
