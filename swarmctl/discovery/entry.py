"""Node addresses (``host:port``): the one format every discovery source yields."""

from __future__ import annotations

import ipaddress
import re

from ..errors import SwarmctlError

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
# fullmatch, not ``^...$``: ``$`` also matches before a final newline, and "node\n" is no host name.
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED = re.compile(r"[0-9.]+")
#: Four octets of one to three digits (leading zeros allowed), each at most 255.
_OCTET = r"(?:[0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-5])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
#: A port: ASCII digits only (``str.isdigit`` also takes "²", which ``int`` refuses), at most 5 of them.
_PORT = re.compile(r"[0-9]{1,5}")


def split_address(address: str, entry: str | None = None) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``[v6]:port``; ``SwarmctlError`` naming ``entry``."""
    shown = entry if entry is not None else address
    split = _split_bracketed if address.startswith("[") else _split_plain
    host, port_text = split(address, shown)
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) <= 65535:
        raise SwarmctlError(f"invalid address {shown!r}: port must be 1-65535")
    return host, int(port_text)


def _split_bracketed(address: str, shown: str) -> tuple[str, str]:
    """``[v6]:port``: the IPv6 address checked, the port as written."""
    end = address.find("]")
    if end < 0 or not address[end + 1 :].startswith(":"):
        raise SwarmctlError(f"invalid address {shown!r}: expected [IPv6]:port")
    host, port_text = address[1:end], address[end + 2 :]
    try:
        if ipaddress.ip_address(host).version != 6:
            raise ValueError
    except ValueError:
        raise SwarmctlError(f"invalid address {shown!r}: {host!r} is not an IPv6 address") from None
    return host, port_text


def _split_plain(address: str, shown: str) -> tuple[str, str]:
    """``host:port``: the host checked (a dotted IPv4 address or a host name), the port as written."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise SwarmctlError(f"invalid address {shown!r}: expected host:port")
    if ":" in host:
        raise SwarmctlError(f"invalid address {shown!r}: write IPv6 addresses as [addr]:port")
    if not host:
        raise SwarmctlError(f"invalid address {shown!r}: empty host")
    if _DOTTED.fullmatch(host):
        if not _IPV4.fullmatch(host):
            raise SwarmctlError(f"invalid address {shown!r}: {host} is not an IPv4 address")
    elif not _HOSTNAME.fullmatch(host):
        raise SwarmctlError(f"invalid address {shown!r}: {host!r} is not a host name")
    return host, port_text


def check_address(address: str, entry: str | None = None) -> str:
    """``address`` itself when it is a valid ``host:port``."""
    split_address(address, entry)
    return address
