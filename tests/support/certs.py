"""Certificates made at test time by the real ``swarmctl certs``: a CA, server certificates for loopback, clients.

Every TLS test (etcd with client-certificate auth, ZooKeeper TLS, the Consul
test server, dockerd and the manager with ``--tlsverify``, the token server)
gets its files from here, so they test the certificates users make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .swarm import run_swarmctl

#: What loopback servers are reached by in the tests.
LOOPBACK = "localhost,127.0.0.1,::1"


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one end: its certificate, its key, and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


def certs(*args: str) -> None:
    """Run ``swarmctl certs ARGS...``; fail the test on any error."""
    result = run_swarmctl("certs", *args)
    assert result.returncode == 0, f"swarmctl certs {' '.join(args)}: {result.stderr}"


class CertAuthority:
    """A throw-away CA (``swarmctl certs ca``) in ``directory/name``, issuing into its own directory."""

    def __init__(self, directory: Path, name: str = "kvstore-test-ca") -> None:
        self.directory = directory / name
        certs("ca", "--dir", str(self.directory), "--name", name, "--days", "2")
        self.ca_path = self.directory / "ca.pem"

    def issue(self, name: str, *, server: bool = True, client: bool = True) -> CertFiles:
        """A certificate for ``name``: a server one (valid for localhost/127.0.0.1/::1, and as a client) or a
        client one. ``swarmctl certs`` server certificates always serve as clients too, so ``client`` only
        matters when ``server`` is False."""
        assert server or client, "a certificate for nothing"
        if server:
            certs("server", name, "--dir", str(self.directory), "--host", LOOPBACK, "--days", "1")
        else:
            certs("client", name, "--dir", str(self.directory), "--days", "1")
        issued = self.directory / name
        return CertFiles(issued / "cert.pem", issued / "key.pem", issued / "ca.pem")
