"""The conformance suite against a real etcd: plain, and with client-certificate TLS.

The suite runs unchanged (``kvstore.testing``); these classes only say how
to reach the server. One etcd per module keeps the runtime down: every
test of the suite works below its own fresh directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kvstore
from kvstore import ClientTLS, Config
from kvstore.testing import StoreConformance
from tests.support.etcd import EtcdCluster, auth_etcd, single_etcd, tls_etcd

PASSWORD = "s3cret-for-tests"


@pytest.fixture(scope="module")
def plain_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd-plain")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def auth_etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with auth_etcd(tmp_path_factory.mktemp("etcd-auth"), PASSWORD, user="kv", token_ttl=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with tls_etcd(tmp_path_factory.mktemp("etcd-tls")) as cluster:
        yield cluster


class TestEtcd(StoreConformance):
    @pytest.fixture
    def store(self, plain_etcd: EtcdCluster) -> Iterator[kvstore.Store]:
        with kvstore.new_store("etcd", plain_etcd.endpoints, Config(connection_timeout=5.0)) as store:
            yield store


class TestEtcdWithAuthAndPrefix(StoreConformance):
    """etcd's auth on, reached through ``from_url`` with a prefix.

    Tokens last one second here, so the suite keeps running into expired
    tokens and exercises getting a new one. Keys outside the prefix stay
    invisible and untouched.
    """

    @pytest.fixture
    def store(self, auth_etcd_server: EtcdCluster) -> Iterator[kvstore.Store]:
        config = Config(connection_timeout=5.0, username="kv", password=PASSWORD)
        with kvstore.new_store("etcd", auth_etcd_server.endpoints, config) as outside:
            outside.put("app-other/k", b"must not show")
            with kvstore.from_url(f"{auth_etcd_server.url}/app/", config) as store:
                assert store.prefix == "app"
                yield store
            assert outside.get("app-other/k").value == b"must not show"


class TestEtcdClientCertificateTLS(StoreConformance):
    @pytest.fixture
    def store(self, secure_etcd: EtcdCluster) -> Iterator[kvstore.Store]:
        tls = secure_etcd.tls
        assert tls is not None
        config = Config(
            connection_timeout=5.0,
            tls=ClientTLS(str(tls.ca_file), str(tls.client.cert), str(tls.client.key)),
            prefix="secure",
        )
        with kvstore.new_store("etcd", secure_etcd.endpoints, config) as store:
            yield store
