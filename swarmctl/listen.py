"""``-H`` addresses: ``tcp://IP:PORT``, ``IP:PORT``, ``:PORT`` and ``unix:///path``."""

from __future__ import annotations

from dataclasses import dataclass

from .discovery.entry import split_address
from .errors import SwarmctlError


@dataclass(frozen=True)
class ListenAddress:
    scheme: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """One ``-H`` value, checked."""
    raw = text.strip()
    if raw.startswith("unix://"):
        path = raw[len("unix://") :]
        if not path.startswith("/"):
            raise SwarmctlError(f"invalid -H {text!r}: expected unix:///absolute/path")
        return ListenAddress("unix", path=path)
    if "://" in raw:
        scheme, _, raw = raw.partition("://")
        if scheme != "tcp":
            raise SwarmctlError(f"invalid -H {text!r}: expected tcp://IP:PORT or unix:///path")
    if raw.startswith(":"):
        raw = "0.0.0.0" + raw
    host, port = split_address(raw.rstrip("/"), text)
    return ListenAddress("tcp", host=host, port=port)
