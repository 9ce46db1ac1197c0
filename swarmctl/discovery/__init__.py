"""Discovery URLs (contract section 2): from a URL and ``--discovery-opt``s to a :class:`Discovery`.

Each scheme lives in its own module, imported only when used, so that
``swarmctl list file://...`` loads no store client.
"""

from __future__ import annotations

import os
import re

from ..errors import SwarmctlError
from .base import Discovery

KV_SCHEMES = ("etcd", "consul", "zk", "sqlite")
KNOWN_OPTIONS = ("kv.cacertfile", "kv.certfile", "kv.keyfile", "kv.path", "token.url")
TLS_OPTIONS = ("kv.cacertfile", "kv.certfile", "kv.keyfile")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``K=V`` strings to a dict; unknown keys and missing ``=`` are errors."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SwarmctlError(f"invalid --discovery-opt {pair!r}: expected KEY=VALUE")
        if key not in KNOWN_OPTIONS:
            raise SwarmctlError(f"unknown --discovery-opt {key!r} (known: {', '.join(KNOWN_OPTIONS)})")
        options[key] = value
    return options


def new_discovery(url: str, options: dict[str, str] | None = None, *, timeout: float | None = None) -> Discovery:
    """The discovery ``url`` names, checked (TLS files included) before anything connects.

    ``timeout`` bounds each attempt to reach a kv store (kvstore's ``connection_timeout``).
    """
    options = dict(options or {})
    text = url.strip()
    if not text:
        raise SwarmctlError("no discovery given (argument DISCOVERY or SWARM_DISCOVERY)")
    match = _SCHEME.match(text)
    scheme, rest = (match[1].lower(), match[2]) if match else ("", text)
    tls_given = [k for k in TLS_OPTIONS if options.get(k)]
    if tls_given and scheme not in KV_SCHEMES:
        raise SwarmctlError(f"--discovery-opt {tls_given[0]}: TLS options apply to kv discovery only")
    if scheme in KV_SCHEMES:
        from .kv import kv_discovery

        return kv_discovery(text, scheme, options, timeout)
    if scheme == "file":
        from .file import FileDiscovery

        return FileDiscovery(text, rest)
    if scheme == "token":
        from .token import TokenDiscovery, split_token

        service = options.get("token.url") or os.environ.get("SWARM_TOKEN_URL")
        service_url, cluster = split_token(rest, service, text)
        return TokenDiscovery(text, service_url, cluster)
    if scheme == "nodes":
        from .nodes import NodesDiscovery

        return NodesDiscovery(text, rest)
    if scheme:
        raise SwarmctlError(
            f"unsupported discovery {url!r}: use etcd://, consul://, zk://, sqlite://, file://, "
            "nodes://, token:// or a list host:port,host:port"
        )
    from .nodes import NodesDiscovery

    return NodesDiscovery(text, text)


__all__ = ["Discovery", "new_discovery", "parse_options", "KV_SCHEMES", "KNOWN_OPTIONS"]
