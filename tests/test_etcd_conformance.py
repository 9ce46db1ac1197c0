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
from tests.support.etcd import EtcdCluster, single_etcd, tls_etcd


@pytest.fixture(scope="module")
def plain_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with single_etcd(tmp_path_factory.mktemp("etcd-plain")) as cluster:
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


class TestEtcdWithPrefixFromURL(StoreConformance):
    """Through ``from_url`` with a prefix: keys outside it stay invisible and untouched."""

    @pytest.fixture
    def store(self, plain_etcd: EtcdCluster) -> Iterator[kvstore.Store]:
        with kvstore.new_store("etcd", plain_etcd.endpoints) as outside:
            outside.put("app-other/k", b"must not show")
            with kvstore.from_url(f"{plain_etcd.url}/app/") as store:
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
