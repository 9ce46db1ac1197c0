"""Store URLs: ``BACKEND://addr1,addr2/prefix`` and ``sqlite:///abs/path/kv.db``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import keys
from .errors import InvalidArgumentError

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)

#: Backends whose URL names a file rather than hosts.
PATH_BACKENDS = frozenset({"sqlite"})
#: Backends that need no address at all.
ADDRESSLESS_BACKENDS = frozenset({"memory"})


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL."""

    backend: str
    addrs: list[str]
    prefix: str


def parse(url: str) -> StoreURL:
    """Split a store URL; ``InvalidArgumentError`` naming the URL when it is malformed."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"store URL must be a str, not {type(url).__name__}")
    match = _URL.match(url.strip())
    if not match:
        raise InvalidArgumentError(f"malformed store URL {url!r}: expected BACKEND://host:port[,host:port...][/prefix]")
    backend = match["scheme"].lower()
    rest = match["rest"]
    if any(ch.isspace() for ch in rest):
        raise InvalidArgumentError(f"malformed store URL {url!r}: it contains white space")
    if backend in PATH_BACKENDS:
        if not rest.startswith("/") or rest.rstrip("/") == "":
            raise InvalidArgumentError(f"malformed store URL {url!r}: expected {backend}:///absolute/path/to/file")
        return StoreURL(backend, [rest], "")
    hosts, _, prefix = rest.partition("/")
    addrs = hosts.split(",") if hosts else []
    if backend in ADDRESSLESS_BACKENDS:
        if addrs:
            raise InvalidArgumentError(f"malformed store URL {url!r}: {backend} takes no address ({backend}:///prefix)")
    elif not addrs or any(not addr for addr in addrs):
        raise InvalidArgumentError(
            f"malformed store URL {url!r}: expected {backend}://host:port[,host:port...][/prefix]"
        )
    try:
        prefix = keys.normalize(prefix, allow_root=True)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"malformed store URL {url!r}: {exc}") from None
    return StoreURL(backend, addrs, prefix)
