"""Failures the etcd backend must report clearly: TLS mistakes, a store that is down, bad credentials.

Each must surface as a :class:`kvstore.KVStoreError` (mostly
``NotReachableError``) within the connection timeout: never a hang, never a
gRPC exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kvstore
from kvstore import ClientTLS, Config, InvalidArgumentError, KVStoreError, NotReachableError
from tests.support.etcd import EtcdCluster, EtcdTLS, auth_etcd, make_tls, single_etcd, tls_etcd
from tests.support.process import free_port

#: The connection timeout these tests use, and the slack on top that a loaded machine may need.
TIMEOUT = 2.0
SLACK = 3.0


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with tls_etcd(tmp_path_factory.mktemp("etcd-tls")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> EtcdTLS:
    """Certificates from another CA than the server's."""
    return make_tls(tmp_path_factory.mktemp("other-ca"))


def _tls(cluster: EtcdCluster) -> EtcdTLS:
    assert cluster.tls is not None
    return cluster.tls


def _fails_fast(
    call: Callable[[], object], error: type[KVStoreError] = NotReachableError, timeout: float = TIMEOUT
) -> KVStoreError:
    """Run ``call``; it must raise ``error`` (not a gRPC or OS exception) within the timeout."""
    started = time.monotonic()
    with pytest.raises(KVStoreError) as caught:
        call()
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, error), repr(caught.value)
    assert elapsed < timeout + SLACK, f"took {elapsed:.1f} s with a {timeout} s connection timeout"
    return caught.value


def _get(addrs: list[str], config: Config) -> Callable[[], object]:
    def call() -> object:
        with kvstore.new_store("etcd", addrs, config) as store:
            return store.get("anything")

    return call


# -- TLS ----------------------------------------------------------------------------------------------
def test_the_right_certificate_works(secure: EtcdCluster) -> None:
    tls = _tls(secure)
    config = Config(
        connection_timeout=TIMEOUT, tls=ClientTLS(str(tls.ca_file), str(tls.client.cert), str(tls.client.key))
    )
    with kvstore.new_store("etcd", secure.endpoints, config) as store:
        store.put("tls/k", b"v")
        assert store.get("tls/k").value == b"v"


def test_client_without_certificate(secure: EtcdCluster) -> None:
    config = Config(connection_timeout=TIMEOUT, tls=ClientTLS(ca_cert_file=str(_tls(secure).ca_file)))
    error = _fails_fast(_get(secure.endpoints, config))
    assert "TLS" in str(error)


def test_client_certificate_from_another_ca(secure: EtcdCluster, stranger: EtcdTLS) -> None:
    config = Config(
        connection_timeout=TIMEOUT,
        tls=ClientTLS(str(_tls(secure).ca_file), str(stranger.client.cert), str(stranger.client.key)),
    )
    error = _fails_fast(_get(secure.endpoints, config))
    assert "TLS" in str(error)


def test_server_certificate_from_a_ca_we_do_not_trust(secure: EtcdCluster, stranger: EtcdTLS) -> None:
    tls = _tls(secure)
    config = Config(
        connection_timeout=TIMEOUT,
        tls=ClientTLS(str(stranger.ca_file), str(tls.client.cert), str(tls.client.key)),
    )
    error = _fails_fast(_get(secure.endpoints, config))
    assert "TLS" in str(error)


def test_plaintext_client_to_a_tls_server(secure: EtcdCluster) -> None:
    _fails_fast(_get(secure.endpoints, Config(connection_timeout=TIMEOUT)))


def test_tls_client_to_a_plaintext_server(tmp_path: Path, stranger: EtcdTLS) -> None:
    with single_etcd(tmp_path / "plain") as plain:
        config = Config(
            connection_timeout=TIMEOUT,
            tls=ClientTLS(str(stranger.ca_file), str(stranger.client.cert), str(stranger.client.key)),
        )
        _fails_fast(_get(plain.endpoints, config))


@pytest.mark.parametrize("missing", ["ca_cert_file", "cert_file", "key_file"])
def test_missing_tls_file_is_named_at_once(secure: EtcdCluster, tmp_path: Path, missing: str) -> None:
    tls = _tls(secure)
    files = {
        "ca_cert_file": str(tls.ca_file),
        "cert_file": str(tls.client.cert),
        "key_file": str(tls.client.key),
    }
    files[missing] = str(tmp_path / "nowhere.pem")
    config = Config(connection_timeout=TIMEOUT, tls=ClientTLS(**files))
    error = _fails_fast(lambda: kvstore.new_store("etcd", secure.endpoints, config), timeout=0.0)
    assert "nowhere.pem" in str(error)


def test_a_file_that_is_not_pem(secure: EtcdCluster, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    tls = _tls(secure)
    config = Config(connection_timeout=TIMEOUT, tls=ClientTLS(str(junk), str(tls.client.cert), str(tls.client.key)))
    error = _fails_fast(lambda: kvstore.new_store("etcd", secure.endpoints, config), timeout=0.0)
    assert "junk.pem" in str(error)


def test_certificate_without_key(secure: EtcdCluster) -> None:
    tls = _tls(secure)
    config = Config(tls=ClientTLS(str(tls.ca_file), cert_file=str(tls.client.cert)))
    with pytest.raises(InvalidArgumentError, match="key_file"):
        kvstore.new_store("etcd", secure.endpoints, config)


# -- a store that is down -----------------------------------------------------------------------------
@pytest.fixture
def nobody() -> list[str]:
    """Addresses where nothing listens."""
    return [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]


def test_store_down_at_start(nobody: list[str]) -> None:
    timeout = 1.0  # six calls below, each waits it out
    config = Config(connection_timeout=timeout)
    store = kvstore.new_store("etcd", nobody, config)  # connects lazily: no error yet
    try:
        for call in (
            lambda: store.get("k"),
            lambda: store.put("k", b"v", ttl=5),
            lambda: store.list("d"),
            lambda: store.watch_tree("d"),
            lambda: store.atomic_put("k", b"v", None),
            lambda: store.new_lock("l").acquire(timeout=30),
        ):
            error = _fails_fast(call, timeout=timeout)
            assert nobody[0] in str(error)
    finally:
        store.close()


def test_from_url_down_at_start(nobody: list[str]) -> None:
    url = "etcd://" + ",".join(nobody) + "/app"
    _fails_fast(lambda: kvstore.from_url(url, Config(connection_timeout=TIMEOUT)).exists("k"))


def test_a_watch_fails_once_the_store_is_gone_longer_than_the_timeout(tmp_path: Path) -> None:
    with (
        single_etcd(tmp_path / "etcd") as server,
        kvstore.new_store("etcd", server.endpoints, Config(connection_timeout=TIMEOUT)) as store,
    ):
        watch = store.watch_tree("d")
        assert watch.next(timeout=5) == []
        server.kill_member(server.members[0])
        started = time.monotonic()
        with pytest.raises(NotReachableError):
            watch.next(timeout=TIMEOUT + 2 * SLACK)
        assert time.monotonic() - started < TIMEOUT + 2 * SLACK


def test_calls_after_close_fail_cleanly(tmp_path: Path) -> None:
    with single_etcd(tmp_path / "etcd") as server:
        store = kvstore.new_store("etcd", server.endpoints, Config(connection_timeout=TIMEOUT))
        store.put("k", b"v")
        watch = store.watch("k")
        assert watch.next(timeout=5).value == b"v"
        store.close()
        store.close()  # twice: no error
        _fails_fast(lambda: store.get("k"), error=KVStoreError)
        with pytest.raises((StopIteration, KVStoreError)):
            watch.next(timeout=5)


# -- auth ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with auth_etcd(tmp_path_factory.mktemp("etcd-auth"), "right", user="kv") as cluster:
        yield cluster


def test_right_password(guarded: EtcdCluster) -> None:
    config = Config(connection_timeout=TIMEOUT, username="kv", password="right")
    with kvstore.new_store("etcd", guarded.endpoints, config) as store:
        store.put("k", b"v")
        assert store.get("k").value == b"v"


def test_wrong_password(guarded: EtcdCluster) -> None:
    config = Config(connection_timeout=TIMEOUT, username="kv", password="wrong")
    error = _fails_fast(_get(guarded.endpoints, config), error=KVStoreError)
    assert "authentication" in str(error) and "'kv'" in str(error)


def test_no_credentials_for_a_store_with_auth(guarded: EtcdCluster) -> None:
    error = _fails_fast(_get(guarded.endpoints, Config(connection_timeout=TIMEOUT)), error=KVStoreError)
    assert "username" in str(error)


def test_username_without_password() -> None:
    with pytest.raises(InvalidArgumentError):
        kvstore.new_store("etcd", ["127.0.0.1:2379"], Config(username="kv"))
