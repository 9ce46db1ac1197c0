"""The Docker API's ``filters`` query parameter."""

from __future__ import annotations

import json

from aiohttp import web


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """``{"status": ["running"]}`` from either the map-of-lists or the old map-of-bools form."""
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"message": f"invalid filters: {raw}"}), content_type="application/json"
        ) from None
    filters: dict[str, list[str]] = {}
    for key, value in (decoded or {}).items():
        if isinstance(value, dict):
            filters[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            filters[key] = [str(v) for v in value]
        else:
            filters[key] = [str(value)]
    return filters
