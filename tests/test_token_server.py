"""The hosted discovery API (contract section 4) served by ``swarmctl token-server``."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import CertAuthority
from tests.support.process import ManagedProcess, free_port, port_open, wait_for
from tests.support.swarm import SWARMCTL, Join, run_swarmctl, wait_listed


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = ManagedProcess(
        "token-server",
        [SWARMCTL, "token-server", "-H", f"tcp://127.0.0.1:{port}", "--store", f"sqlite://{tmp_path}/t.db"],
        tmp_path,
    ).start()
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "the token server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_api(service: str) -> None:
    status, body = call("POST", f"{service}/clusters", b"")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", body.decode())
    cluster = f"{service}/clusters/{body.decode()}"
    assert call("GET", cluster) == (200, b"[]")
    assert call("POST", f"{cluster}?ttl=60", b"127.0.0.1:2375")[0] == 200
    assert call("POST", f"{cluster}?ttl=60", b"[::1]:2376")[0] == 200
    assert sorted(json.loads(call("GET", cluster)[1])) == ["127.0.0.1:2375", "[::1]:2376"]
    assert call("POST", f"{cluster}?ttl=0", b"127.0.0.1:2375")[0] == 200  # ttl 0: leave now
    assert json.loads(call("GET", cluster)[1]) == ["[::1]:2376"]
    assert call("POST", f"{cluster}?ttl=60", b"not an address")[0] == 400
    assert call("POST", f"{cluster}?ttl=soon", b"127.0.0.1:1")[0] == 400
    assert call("DELETE", cluster)[0] == 200
    assert call("GET", cluster)[0] == 404
    assert call("DELETE", cluster)[0] == 404


def test_unknown_cluster_is_404(service: str) -> None:
    missing = f"{service}/clusters/{'0' * 32}"
    assert call("GET", missing)[0] == 404
    assert call("POST", f"{missing}?ttl=10", b"127.0.0.1:1")[0] == 404
    assert call("GET", f"{service}/elsewhere")[0] == 404
    result = run_swarmctl("list", "--timeout", "1s", "--discovery-opt", f"token.url={service}", f"token://{'0' * 32}")
    assert result.returncode == 1 and "no such cluster" in result.stderr


def test_entries_expire_after_their_ttl(service: str) -> None:
    cluster = f"{service}/clusters/{call('POST', f'{service}/clusters', b'')[1].decode()}"
    call("POST", f"{cluster}?ttl=1", b"127.0.0.1:1")
    call("POST", f"{cluster}?ttl=600", b"127.0.0.1:2")
    assert len(json.loads(call("GET", cluster)[1])) == 2
    wait_for(lambda: json.loads(call("GET", cluster)[1]) == ["127.0.0.1:2"], 15, "the 1 s entry to expire")


def test_service_url_under_a_path(service: str) -> None:
    """token.url may carry a path (Docker Hub's was .../v1)."""
    created = run_swarmctl("create", "--discovery-opt", f"token.url={service}/v1")
    assert created.returncode == 0, created.stderr
    assert call("GET", f"{service}/v1/clusters/{created.stdout.strip()}") == (200, b"[]")


def test_create_join_list_with_the_environment(service: str, tmp_path: Path) -> None:
    created = run_swarmctl("create", env={"SWARM_TOKEN_URL": service})
    cluster = created.stdout.strip()
    join = Join(tmp_path, "127.0.0.3:2375", f"token://{cluster}")
    join.env = {"SWARM_TOKEN_URL": service}
    join.start()
    try:
        wait_listed(f"token://{cluster}", {"127.0.0.3:2375"}, "--discovery-opt", f"token.url={service}")
    finally:
        join.kill()


def test_inline_https_service(tmp_path: Path) -> None:
    """token://host:port/path/<id> reaches https://host:port/path (trusting the CA via SSL_CERT_FILE)."""
    ca = CertAuthority(tmp_path / "ca")
    cert = ca.issue("token-server", client=False)
    port = free_port()
    server = ManagedProcess(
        "token-server-tls",
        [
            SWARMCTL,
            "token-server",
            "-H",
            f"tcp://127.0.0.1:{port}",
            "--store",
            f"sqlite://{tmp_path}/t.db",
            "--tlscert",
            str(cert.cert),
            "--tlskey",
            str(cert.key),
        ],
        tmp_path,
    ).start()
    env = {"SSL_CERT_FILE": str(ca.ca_path)}
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 30, "the TLS token server")
        created = run_swarmctl("create", "--discovery-opt", f"token.url=https://127.0.0.1:{port}/v1", env=env)
        assert created.returncode == 0, created.stderr
        inline = f"token://127.0.0.1:{port}/v1/{created.stdout.strip()}"
        join = Join(tmp_path, "127.0.0.4:2375", inline)
        join.env = env
        join.start()
        try:
            wait_for(
                lambda: run_swarmctl("list", inline, env=env).stdout.split() == ["127.0.0.4:2375"],
                30,
                "the node on the https service",
            )
        finally:
            join.kill()
        untrusted = run_swarmctl("list", "--timeout", "1s", inline)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        server.stop()
