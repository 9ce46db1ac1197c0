"""The async conformance suite against a real etcd: plain, with auth and a prefix, and with client-certificate TLS.

The same servers and configurations as tests/test_etcd_conformance.py, so the
async backend is held to what the sync one passes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kvstore
import kvstore.aio
from kvstore import ClientTLS, Config
from kvstore.aio.testing import AsyncStoreConformance, StoreOpener
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


class TestAsyncEtcd(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self, plain_etcd: EtcdCluster) -> StoreOpener:
        return lambda: kvstore.aio.new_store("etcd", plain_etcd.endpoints, Config(connection_timeout=5.0))


class TestAsyncEtcdWithAuthAndPrefix(AsyncStoreConformance):
    """etcd's auth on (tokens last one second, so expired tokens keep being replaced), through ``from_url``."""

    @pytest.fixture
    def open_store(self, auth_etcd_server: EtcdCluster) -> Iterator[StoreOpener]:
        config = Config(connection_timeout=5.0, username="kv", password=PASSWORD)
        with kvstore.new_store("etcd", auth_etcd_server.endpoints, config) as outside:
            outside.put("app-other/k", b"must not show")
            yield lambda: kvstore.aio.from_url(f"{auth_etcd_server.url}/app/", config)
            assert outside.get("app-other/k").value == b"must not show"


class TestAsyncEtcdClientCertificateTLS(AsyncStoreConformance):
    @pytest.fixture
    def open_store(self, secure_etcd: EtcdCluster) -> StoreOpener:
        tls = secure_etcd.tls
        assert tls is not None
        config = Config(
            connection_timeout=5.0,
            tls=ClientTLS(str(tls.ca_file), str(tls.client.cert), str(tls.client.key)),
            prefix="secure",
        )
        return lambda: kvstore.aio.new_store("etcd", secure_etcd.endpoints, config)
