"""``swarmctl certs``: what it makes verifies as TLS servers and clients check it, and it overwrites nothing.

The certificates also carry every TLS test of the suite (tests/support/certs.py
makes them with this command); here: the chain, the names and usages a
verifier checks, key sizes, lifetimes, file modes, refusals and bad input.
"""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.swarm import run_swarmctl


def certs(*args: str) -> str:
    result = run_swarmctl("certs", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def store(ca: Path) -> verification.Store:
    return verification.Store([load(ca)])


def test_a_full_set_verifies_as_servers_and_clients_check_it(tmp_path: Path) -> None:
    certs("ca", "--dir", str(tmp_path))
    certs("server", "manager1", "--dir", str(tmp_path), "--host", "127.0.0.1,manager1", "-H", "::1")
    certs("client", "docker", "--dir", str(tmp_path))
    trust = store(tmp_path / "ca.pem")
    server = load(tmp_path / "manager1" / "cert.pem")
    for name in (x509.DNSName("manager1"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        verification.PolicyBuilder().store(trust).build_server_verifier(name).verify(server, [])
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(trust).build_server_verifier(x509.DNSName("manager2")).verify(server, [])
    verification.PolicyBuilder().store(trust).build_client_verifier().verify(server, [])  # a manager is a client too
    client = load(tmp_path / "docker" / "cert.pem")
    verification.PolicyBuilder().store(trust).build_client_verifier().verify(client, [])
    with pytest.raises(verification.VerificationError):  # a client certificate cannot serve
        verification.PolicyBuilder().store(trust).build_server_verifier(x509.DNSName("docker")).verify(client, [])
    assert client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    # each directory holds what --tlscacert/--tlscert/--tlskey (and DOCKER_CERT_PATH) expect
    assert sorted(p.name for p in (tmp_path / "docker").iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert (tmp_path / "docker" / "ca.pem").read_bytes() == (tmp_path / "ca.pem").read_bytes()


def test_another_cas_certificate_does_not_verify(tmp_path: Path) -> None:
    for ca in ("ours", "theirs"):
        certs("ca", "--dir", str(tmp_path / ca))
        certs("client", "someone", "--dir", str(tmp_path / ca))
    rogue = load(tmp_path / "theirs" / "someone" / "cert.pem")
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(store(tmp_path / "ours" / "ca.pem")).build_client_verifier().verify(
            rogue, []
        )


def test_keys_lifetimes_and_modes(tmp_path: Path) -> None:
    certs("ca", "--dir", str(tmp_path), "--name", "my-ca")
    certs("server", "etcd", "--dir", str(tmp_path), "--host", "etcd1", "--key-type", "rsa", "--days", "30")
    ca = load(tmp_path / "ca.pem")
    assert ca.subject.rfc4514_string() == "CN=my-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert 3649 <= (ca.not_valid_after_utc - ca.not_valid_before_utc).days <= 3651
    ca_key = serialization.load_pem_private_key((tmp_path / "ca-key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey) and ca_key.curve.name == "secp256r1"
    server = load(tmp_path / "etcd" / "cert.pem")
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = datetime.datetime.now(datetime.UTC)
    assert server.not_valid_before_utc <= now and 29 <= (server.not_valid_after_utc - now).days <= 30
    key = serialization.load_pem_private_key((tmp_path / "etcd" / "key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    for secret in (tmp_path / "ca-key.pem", tmp_path / "etcd" / "key.pem"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    certs("ca", "--dir", str(tmp_path))
    certs("client", "c", "--dir", str(tmp_path))
    ca_before, client_before = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "c" / "cert.pem").read_bytes()
    for args in (["ca", "--dir", str(tmp_path)], ["client", "c", "--dir", str(tmp_path)]):
        result = run_swarmctl("certs", *args)
        assert result.returncode == 1 and "exists: not overwriting it (give --force" in result.stderr, result.stderr
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    assert (tmp_path / "c" / "cert.pem").read_bytes() == client_before
    certs("client", "c", "--dir", str(tmp_path), "--force")
    assert (tmp_path / "c" / "cert.pem").read_bytes() != client_before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["server", "s", "--host", "not a host"], "neither an IP address nor a DNS name"),
        (["server", "s", "--host", ","], "needs at least one --host"),
        (["client", "../escape"], "invalid certificate name"),
        (["client", "under_score"], "use a DNS name"),
        (["client", "c", "--days", "0"], "--days must be between 1 and 36500"),
        (["client", "c", "--dir", "/nonexistent/ca"], "no CA in /nonexistent/ca"),
        (["ca", "--name", " "], "must not be empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args: list[str], words: str, tmp_path: Path) -> None:
    certs("ca", "--dir", str(tmp_path / "ca"))
    full = [*args] if "--dir" in args else [*args, "--dir", str(tmp_path / ("new" if args[0] == "ca" else "ca"))]
    result = run_swarmctl("certs", *full)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("swarmctl certs "), result.stderr
    assert words in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_swarmctl("certs", "server", "s", "--dir", str(tmp_path))  # no --host
    assert result.returncode == 2 and "--host" in result.stderr
    result = run_swarmctl("certs", "ca", "--key-type", "dsa", "--dir", str(tmp_path))
    assert result.returncode == 2 and "'dsa' is not one of 'ec', 'rsa'" in result.stderr
