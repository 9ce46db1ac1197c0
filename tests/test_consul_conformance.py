"""The conformance suite against the Consul test server, over plain HTTP and over TLS.

The test server (``tests/consul_test_server``) stands in for Consul, which
cannot be installed here; its own tests check it against Consul's
documentation (``tests/test_consul_test_server.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kvstore
from kvstore.testing import StoreConformance
from tests.support.consul import ConsulServer, consul_server, consul_tls_server

__all__ = ["consul_server", "consul_tls_server"]  # the fixtures, imported for pytest


class TestConsul(StoreConformance):
    @pytest.fixture
    def store(self, consul_server: ConsulServer) -> Iterator[kvstore.Store]:
        with kvstore.new_store("consul", [consul_server.address], consul_server.config()) as store:
            yield store


class TestConsulTLS(StoreConformance):
    """Over https with the CA checked and a client certificate, below a prefix, from a URL."""

    @pytest.fixture
    def store(self, consul_tls_server: ConsulServer) -> Iterator[kvstore.Store]:
        url = f"{consul_tls_server.url}/tls/app"
        with kvstore.from_url(url, consul_tls_server.config()) as store:
            yield store
