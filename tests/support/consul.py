"""The Consul test server (``tests/consul_test_server``) as a real process for tests.

No Consul binary exists on these machines, so Consul-facing tests run
against the project's own Consul HTTP API server, started here like any
other server: its own free loopback port, its own directory, its log in a
file there, its own process group, stopped at the end even when a test
fails. It can be killed and restarted on the same port, keeping its data
(``persist=True``), to test clients across a server restart.

Usage from any test module (swarmctl's discovery tests included)::

    from tests.support.consul import ConsulServer, consul_server  # noqa: F401  (the fixture)

    def test_something(consul_server: ConsulServer) -> None:
        store = kvstore.new_store("consul", [consul_server.address], consul_server.config())

or, for a private server with options::

    with running_consul(tmp_path, tls=True, persist=True) as server:
        server.kill(); server.start()
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import kvstore

from .certs import CertAuthority, CertFiles
from .process import ManagedProcess, free_port, port_open, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Short session TTLs are what the tests need (the conformance suite locks with
#: ttl=2, i.e. 1 s sessions); Consul's own floor is 10 s (``session_ttl_min``).
TEST_SESSION_TTL_MIN = "100ms"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class ConsulTLS:
    """The test CA, the server's certificate and a client certificate it accepts."""

    authority: CertAuthority
    server: CertFiles
    client: CertFiles

    def client_tls(self) -> kvstore.ClientTLS:
        return kvstore.ClientTLS(
            ca_cert_file=str(self.client.ca), cert_file=str(self.client.cert), key_file=str(self.client.key)
        )


@dataclass
class ConsulServer:
    """One test server process; ``start``/``stop``/``kill`` it at will, on the same port."""

    workdir: Path
    tls: ConsulTLS | None = None
    persist: bool = False
    session_ttl_min: str = TEST_SESSION_TTL_MIN
    tombstone_ttl: str | None = None
    acl_token: str | None = None
    basic_auth: str | None = None
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        """``host:port`` as ``kvstore.new_store("consul", [...])`` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``consul://127.0.0.1:PORT`` (give it a ``/prefix`` if you need one)."""
        return f"consul://{self.address}"

    @property
    def base_url(self) -> str:
        """The HTTP API's base, for raw requests: ``http(s)://127.0.0.1:PORT/v1``."""
        return f"{'https' if self.tls else 'http'}://{self.address}/v1"

    @property
    def data_file(self) -> Path | None:
        return self.workdir / "consul-data.json" if self.persist else None

    def config(self, **changes: Any) -> kvstore.Config:
        """A ``kvstore.Config`` that reaches this server (TLS and token included)."""
        options = {"token": self.acl_token} if self.acl_token else {}
        username = password = None
        if self.basic_auth:
            username, _, password = self.basic_auth.partition(":")
        config = kvstore.Config(
            connection_timeout=5.0,
            tls=self.tls.client_tls() if self.tls else None,
            username=username,
            password=password,
            options=options,
        )
        return dataclasses.replace(config, **changes)

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "tests.consul_test_server", "--port", str(self.port)]
        argv += ["--session-ttl-min", self.session_ttl_min]
        if self.tls is not None:
            argv += ["--tls", str(self.tls.server.cert), str(self.tls.server.key), str(self.tls.server.ca)]
        if self.data_file is not None:
            argv += ["--data", str(self.data_file)]
        if self.tombstone_ttl is not None:
            argv += ["--tombstone-ttl", self.tombstone_ttl]
        if self.acl_token is not None:
            argv += ["--acl-token", self.acl_token]
        if self.basic_auth is not None:
            argv += ["--basic-auth", self.basic_auth]
        return argv

    # -- life cycle -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def start(self) -> ConsulServer:
        """Start (or restart, on the same port) and wait until it accepts connections."""
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.process = ManagedProcess("consul-test-server", self.argv(), self.workdir, env={"PYTHONPATH": path})
        self.process.start()

        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"the consul test server exited:\n{self.log_tail()}")
            return port_open("127.0.0.1", self.port)

        try:
            wait_for(ready, START_TIMEOUT, f"the consul test server on {self.address}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- log ---\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        """A clean stop (SIGTERM); a persisting server keeps its data for the next start."""
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, like a crash."""
        if self.process is not None:
            self.process.kill()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""


def make_tls(directory: Path) -> ConsulTLS:
    """A fresh CA with a server and a client certificate, made now (nothing is kept in the repo)."""
    authority = CertAuthority(directory)
    return ConsulTLS(
        authority=authority,
        server=authority.issue("consul-server", client=False),
        client=authority.issue("consul-client", server=False),
    )


@contextlib.contextmanager
def running_consul(workdir: Path, *, tls: bool = False, **options: Any) -> Iterator[ConsulServer]:
    """A started test server in ``workdir``, stopped (group and all) when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = ConsulServer(workdir, tls=make_tls(workdir / "certs") if tls else None, **options)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    """One plain-HTTP test server shared by a whole test session."""
    with running_consul(tmp_path_factory.mktemp("consul")) as server:
        yield server


@pytest.fixture(scope="session")
def consul_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulServer]:
    """One test server speaking only TLS with client certificates, shared by a test session."""
    with running_consul(tmp_path_factory.mktemp("consul-tls"), tls=True) as server:
        yield server
