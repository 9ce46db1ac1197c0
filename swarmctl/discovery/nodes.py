"""``nodes://h1:p1,h2:p2`` and bare ``h1:p1,h2:p2``: a fixed list, ranges allowed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ..errors import SwarmctlError
from .base import Discovery, dedupe
from .ranges import expand


class NodesDiscovery(Discovery):
    """The list is the URL itself; it is expanded and checked once, at start."""

    def __init__(self, url: str, spec: str) -> None:
        super().__init__(url)
        entries = [part.strip() for part in spec.split(",")]
        if not spec.strip() or any(not part for part in entries):
            raise SwarmctlError(f"invalid discovery {url!r}: empty entry in the node list")
        self.nodes = dedupe([address for part in entries for address in expand(part)])

    def fetch(self) -> list[str]:
        return list(self.nodes)

    def watch(self, stop: threading.Event) -> Iterator[list[str]]:
        yield self.fetch()
