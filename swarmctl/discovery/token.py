"""``token://<cluster_id>``: the hosted discovery API (contract section 4).

The service is ``--discovery-opt token.url=URL`` or ``SWARM_TOKEN_URL``, or
named inline: ``token://host[:port]/path/<id>`` means ``https://host[:port]/path``.
``swarmctl token-server`` is such a service.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ..errors import DiscoveryError, SwarmctlError
from .base import Discovery

TIMEOUT = 10.0


def split_token(spec: str, service_url: str | None, url: str) -> tuple[str, str]:
    """``(service_url, cluster_id)`` of the part after ``token://``."""
    spec = spec.strip()
    if "/" in spec:
        location, _, cluster = spec.rstrip("/").rpartition("/")
        if not location or not cluster:
            raise SwarmctlError(f"invalid discovery {url!r}: expected token://host[:port]/path/<cluster_id>")
        service = f"https://{location}"
    else:
        cluster = spec
        if not service_url:
            raise SwarmctlError(
                f"{url}: no discovery service: give --discovery-opt token.url=URL or set SWARM_TOKEN_URL"
            )
        service = service_url
    if not cluster or not all(ch.isalnum() or ch in "-_" for ch in cluster):
        raise SwarmctlError(f"invalid discovery {url!r}: cluster id {cluster!r} is not a token")
    return check_service_url(service), cluster


def check_service_url(service: str) -> str:
    """``service`` without its trailing ``/``; ``SwarmctlError`` unless it is an http(s) URL with a host.

    ``urlsplit`` raises ``ValueError`` for a bad ``[IPv6`` host and reads the
    port only when asked: both are asked here, so that ``token://[x/id`` or
    ``token://h:99999/p/id`` is refused at start instead of failing on each poll.
    """
    shown = f"invalid token service URL {service!r}: expected http(s)://host[:port][/path]"
    try:
        parsed = urllib.parse.urlsplit(service)
        port = parsed.port
    except ValueError:
        raise SwarmctlError(shown) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port == 0:
        raise SwarmctlError(shown)
    return service.rstrip("/")


def request(method: str, url: str, body: bytes | None = None, timeout: float = TIMEOUT) -> bytes:
    """One HTTP call; ``DiscoveryError`` with the reason on any failure, 404 included."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "text/plain")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:200]
        if exc.code == 404:
            raise DiscoveryError(f"{url}: no such cluster (404)") from None
        raise DiscoveryError(f"{method} {url}: HTTP {exc.code} {detail or exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DiscoveryError(f"{method} {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"{method} {url}: {exc}") from None


def create_cluster(service_url: str) -> str:
    """POST {url}/clusters: a new cluster id."""
    token = request("POST", f"{check_service_url(service_url)}/clusters", b"").decode().strip()
    if not token:
        raise DiscoveryError(f"{service_url}: the service returned an empty cluster id")
    return token


class TokenDiscovery(Discovery):
    """A cluster on a hosted discovery service, polled for its list."""

    def __init__(self, url: str, service_url: str, cluster: str, poll_interval: float = 10.0) -> None:
        super().__init__(url)
        self.cluster_url = f"{service_url}/clusters/{cluster}"
        self.poll_interval = poll_interval

    def follow_heartbeat(self, heartbeat: float) -> None:
        """Poll the hosted service every ``heartbeat`` exactly, as Swarm did: a longer one asks it less often."""
        self.poll_interval = heartbeat

    def fetch(self) -> list[str]:
        body = request("GET", self.cluster_url)
        try:
            nodes = json.loads(body or b"[]")
        except ValueError:
            raise DiscoveryError(f"{self.cluster_url}: the answer is not JSON") from None
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise DiscoveryError(f"{self.cluster_url}: expected a JSON list of addresses")
        return nodes

    def register(self, address: str, ttl: float) -> None:
        request("POST", f"{self.cluster_url}?ttl={round(ttl)}", address.encode())

    def deregister(self, address: str) -> None:
        # The hosted API has no per-node delete: re-register with the shortest TTL.
        request("POST", f"{self.cluster_url}?ttl=0", address.encode())
