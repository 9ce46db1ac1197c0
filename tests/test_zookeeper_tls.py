"""The ``zk`` backend over TLS: ZooKeeper's ``secureClientPort`` with client certificates made at test time.

The whole conformance suite runs over TLS; then every way of holding the
wrong credentials must end in a clear ``NotReachableError`` (or, for files
that cannot even be loaded, ``InvalidArgumentError``) within the connection
timeout, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvstore
from kvstore import ClientTLS, Config, InvalidArgumentError, NotReachableError
from kvstore.testing import SLACK, StoreConformance
from tests.support.zookeeper import ZooKeeperServer, tls_standalone, zookeeper_installed

pytestmark = pytest.mark.skipif(not zookeeper_installed(), reason="ZooKeeper (and Java) not installed")

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    with tls_standalone(tmp_path_factory.mktemp("zookeeper-tls")) as server:
        yield server


def good_tls(server: ZooKeeperServer) -> ClientTLS:
    assert server.tls is not None
    files = server.tls
    return ClientTLS(ca_cert_file=str(files.ca), cert_file=str(files.client.cert), key_file=str(files.client.key))


class TestZooKeeperTLS(StoreConformance):
    @pytest.fixture
    def store(self, tls_server: ZooKeeperServer) -> Iterator[kvstore.Store]:
        config = Config(connection_timeout=10.0, tls=good_tls(tls_server), prefix="tls")
        with kvstore.new_store("zk", [tls_server.address], config) as s:
            yield s


def refused(server: ZooKeeperServer, tls: ClientTLS | None, match: str) -> None:
    """Connecting with ``tls`` fails with NotReachableError naming ``match``, within the timeout."""
    started = time.monotonic()
    with pytest.raises(NotReachableError, match=match) as caught:
        kvstore.new_store("zk", [server.address], Config(connection_timeout=TIMEOUT, tls=tls))
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert server.address in str(caught.value)


def test_client_without_certificate_is_refused(tls_server: ZooKeeperServer) -> None:
    assert tls_server.tls is not None
    refused(tls_server, ClientTLS(ca_cert_file=str(tls_server.tls.ca)), "TLS handshake failed")


def test_client_with_certificate_of_another_ca_is_refused(tls_server: ZooKeeperServer) -> None:
    assert tls_server.tls is not None
    files = tls_server.tls
    tls = ClientTLS(ca_cert_file=str(files.ca), cert_file=str(files.intruder.cert), key_file=str(files.intruder.key))
    refused(tls_server, tls, "TLS handshake failed")


def test_client_that_does_not_trust_the_server_is_refused(tls_server: ZooKeeperServer) -> None:
    assert tls_server.tls is not None
    files = tls_server.tls
    tls = ClientTLS(
        ca_cert_file=str(files.intruder.ca), cert_file=str(files.client.cert), key_file=str(files.client.key)
    )
    refused(tls_server, tls, "TLS handshake failed.*CERTIFICATE_VERIFY_FAILED")


def test_client_without_tls_is_refused(tls_server: ZooKeeperServer) -> None:
    refused(tls_server, None, "not reachable")


def test_unusable_tls_files_are_an_argument_error(tls_server: ZooKeeperServer, tmp_path: Path) -> None:
    missing = ClientTLS(ca_cert_file=str(tmp_path / "nope.pem"))
    with pytest.raises(InvalidArgumentError, match="TLS"):
        kvstore.new_store("zk", [tls_server.address], Config(connection_timeout=TIMEOUT, tls=missing))
    assert tls_server.tls is not None
    files = tls_server.tls
    mismatched = ClientTLS(
        ca_cert_file=str(files.ca), cert_file=str(files.client.cert), key_file=str(files.intruder.key)
    )
    with pytest.raises(InvalidArgumentError, match="TLS"):
        kvstore.new_store("zk", [tls_server.address], Config(connection_timeout=TIMEOUT, tls=mismatched))


def test_url_form_with_tls(tls_server: ZooKeeperServer) -> None:
    config = Config(connection_timeout=10.0, tls=good_tls(tls_server))
    with kvstore.from_url(f"zk://{tls_server.address}/tls-url", config) as s:
        s.put("k", b"v")
        assert s.get("k").value == b"v"
        s.delete_tree("")
