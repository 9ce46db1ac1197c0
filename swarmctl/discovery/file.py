"""``file:///path``: one ``host:port`` (ranges allowed) per line, re-read when it changes."""

from __future__ import annotations

import os

from ..errors import DiscoveryError, SwarmctlError
from .base import Discovery, dedupe
from .ranges import expand


def parse_lines(text: str, source: str) -> list[str]:
    """Addresses in a discovery file; blank lines and ``#`` comments are skipped."""
    addresses: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            addresses.extend(expand(line))
        except SwarmctlError as exc:
            raise SwarmctlError(f"{source}, line {number}: {exc}") from None
    return dedupe(addresses)


class FileDiscovery(Discovery):
    """Polls the file's size and modification time; re-parses only when they change."""

    poll_interval = 1.0

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url)
        if not path.startswith("/"):
            raise SwarmctlError(f"invalid discovery {url!r}: expected file:///absolute/path")
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._cached: list[str] = []

    def fetch(self) -> list[str]:
        try:
            info = os.stat(self.path)
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == self._stamp:
                return list(self._cached)
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError as exc:
            raise DiscoveryError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            self._cached = parse_lines(text, self.path)
        except SwarmctlError as exc:  # a half-edited file: report it, keep watching
            raise DiscoveryError(str(exc)) from None
        self._stamp = stamp
        return list(self._cached)
