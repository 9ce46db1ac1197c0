"""``swarmctl token-server``: a self-hosted hosted-discovery service (contract section 4).

Clusters live in any kvstore: ``clusters/<id>`` marks a cluster and
``clusters/<id>/<host:port>`` holds a node as JSON ``{"addr", "expires"}``.
Expiry is decided here from ``expires`` (and the key also carries the TTL, so
stores that expire keys clean up by themselves), which makes entries expire
after their ttl on every backend, even ZooKeeper whose TTL keys live as long
as the writer's session.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kvstore

from .discovery.entry import check_address
from .errors import SwarmctlError

log = logging.getLogger("swarmctl.token")

_ROUTE = re.compile(r"^(?:/.*)?/clusters(?:/(?P<id>[^/]+))?/?$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
DEFAULT_TTL = 180
MAX_BODY = 4096


class TokenService:
    """The API's logic over a store, independent of HTTP."""

    def __init__(self, store: kvstore.Store) -> None:
        self.store = store

    def create(self) -> str:
        while True:
            cluster = secrets.token_hex(16)
            try:
                self.store.atomic_put(f"clusters/{cluster}", b"", None)
                return cluster
            except kvstore.KeyExistsError:
                continue

    def exists(self, cluster: str) -> bool:
        return self.store.exists(f"clusters/{cluster}")

    def register(self, cluster: str, address: str, ttl: int) -> None:
        key = f"clusters/{cluster}/{address}"
        if ttl <= 0:
            self.store.delete(key)
            return
        record = json.dumps({"addr": address, "expires": time.time() + ttl}).encode()
        self.store.put(key, record, ttl=ttl)

    def nodes(self, cluster: str) -> list[str]:
        now = time.time()
        try:
            pairs = self.store.list(f"clusters/{cluster}")
        except kvstore.KeyNotFoundError:
            return []
        found: list[str] = []
        for pair in pairs:
            try:
                record = json.loads(pair.value)
                if record["expires"] > now:
                    found.append(str(record["addr"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours: skip rather than fail the whole list
        return found

    def delete(self, cluster: str) -> None:
        self.store.delete_tree(f"clusters/{cluster}")


class _Handler(BaseHTTPRequestHandler):
    server: TokenHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> tuple[str | None, dict[str, list[str]]] | None:
        parsed = urllib.parse.urlsplit(self.path)
        match = _ROUTE.match(parsed.path)
        if not match:
            self._reply(404, b"not found\n")
            return None
        cluster = match["id"]
        if cluster is not None and not _ID.match(cluster):
            self._reply(404, b"no such cluster\n")
            return None
        return cluster, urllib.parse.parse_qs(parsed.query)

    def _guarded(self, action: str) -> None:
        try:
            getattr(self, f"_do_{action}")()
        except kvstore.KVStoreError as exc:
            log.warning("store error: %s", exc)
            self._reply(503, f"store unavailable: {exc}\n".encode())

    def do_GET(self) -> None:
        self._guarded("get")

    def do_POST(self) -> None:
        self._guarded("post")

    def do_DELETE(self) -> None:
        self._guarded("delete")

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, b"body too large\n")
            return None
        return self.rfile.read(length) if length else b""

    def _known_cluster(self) -> str | None:
        """The cluster the path names, or None after answering 404 (unknown path or cluster)."""
        route = self._route()
        if route is None:
            return None
        cluster, _ = route
        if cluster is None or not self.server.service.exists(cluster):
            self._reply(404, b"no such cluster\n")
            return None
        return cluster

    def _do_get(self) -> None:
        cluster = self._known_cluster()
        if cluster is not None:
            self._reply(200, json.dumps(self.server.service.nodes(cluster)).encode(), "application/json")

    def _do_post(self) -> None:
        route = self._route()
        body = self._read_body()
        if route is None or body is None:
            return
        cluster, query = route
        service = self.server.service
        if cluster is None:
            created = service.create()
            log.info("created cluster %s", created)
            self._reply(200, created.encode())
            return
        if not service.exists(cluster):
            self._reply(404, b"no such cluster\n")
            return
        address = body.decode("utf-8", "replace").strip()
        try:
            check_address(address)
            ttl = int(query.get("ttl", [str(DEFAULT_TTL)])[0])
        except (SwarmctlError, ValueError) as exc:
            self._reply(400, f"{exc}\n".encode())
            return
        service.register(cluster, address, ttl)
        log.info("cluster %s: %s %s", cluster, "removed" if ttl <= 0 else "registered", address)
        self._reply(200, b"")

    def _do_delete(self) -> None:
        cluster = self._known_cluster()
        if cluster is not None:
            self.server.service.delete(cluster)
            log.info("deleted cluster %s", cluster)
            self._reply(200, b"")


class TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: TokenService) -> None:
        self.service = service
        super().__init__(address, _Handler)


def serve(
    host: str,
    port: int,
    store: kvstore.Store,
    stop: threading.Event,
    tls: tuple[str, str] | None = None,
) -> None:
    """Serve until ``stop`` is set; over HTTPS when ``tls`` is ``(certfile, keyfile)``."""
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(*tls)
        except (OSError, ssl.SSLError) as exc:
            raise SwarmctlError(f"cannot load --tlscert/--tlskey {tls[0]}, {tls[1]}: {exc}") from None
    try:
        server = TokenHTTPServer((host, port), TokenService(store))
    except OSError as exc:
        raise SwarmctlError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="token-server", daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    log.info("token service listening on %s://%s:%d/clusters", scheme, host, server.server_address[1])
    stop.wait()
    server.shutdown()
    server.server_close()
