"""The Docker API's ``filters`` query parameter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

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


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(body=json.dumps({"message": message}).encode(), content_type="application/json")


def matches_all(filters: dict[str, list[str]], checks: Mapping[str, Callable[[str], bool]]) -> bool:
    """Whether an object passes ``filters``: for every key, one of its values passes that key's check.

    An unknown key is the engine's 400 ``Invalid filter 'key'``; so is a
    value that is not a valid regular expression where one is searched.
    """
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            raise _bad_request(f"Invalid filter '{key}'")
        try:
            if not any(check(value) for value in values):
                return False
        except re.error as exc:
            raise _bad_request(f"invalid filter {key}={values[0]}: {exc}") from None
    return True


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """``label=key`` (present) or ``label=key=value`` (equal), as the engine filters labels."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
