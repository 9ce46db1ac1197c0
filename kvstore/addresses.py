"""``host:port`` parsing for the network backends."""

from __future__ import annotations

from .errors import InvalidArgumentError


def parse_host_port(addr: str, default_port: int) -> tuple[str, int]:
    """Split ``host[:port]`` (IPv6 in brackets: ``[::1]:2379``) and check the port."""
    text = addr.strip()
    if not text:
        raise InvalidArgumentError("empty store address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidArgumentError(f"store address {addr!r}: unclosed '['")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidArgumentError(f"store address {addr!r}: expected ':' after ']'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        raise InvalidArgumentError(f"store address {addr!r}: write IPv6 addresses as [addr]:port")
    else:
        host, _, port_text = text.partition(":")
        if ":" in text and not port_text:
            raise InvalidArgumentError(f"store address {addr!r}: empty port")
    if not host:
        raise InvalidArgumentError(f"store address {addr!r}: empty host")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:  # "²" is a digit too
        raise InvalidArgumentError(f"store address {addr!r}: port must be 1-65535")
    return host, int(port_text)
