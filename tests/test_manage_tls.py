"""TLS end to end: the docker CLI with --tlsverify to the manager, the manager to --tlsverify engines."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.certs import CertAuthority, CertFiles
from tests.support.process import ManagedProcess, free_port, port_open, wait_for
from tests.support.swarm import SWARMCTL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]


@dataclass
class Setup:
    port: int
    client: CertFiles
    stranger: CertFiles

    def docker(
        self, *args: str, certs: CertFiles | None = None, input: bytes | None = None, tls: bool = True
    ) -> subprocess.CompletedProcess[str]:
        flags = ["-H", f"tcp://127.0.0.1:{self.port}"]
        if tls:
            use = certs or self.client
            flags += [
                "--tlsverify",
                "--tlscacert",
                str(self.client.ca),
                "--tlscert",
                str(use.cert),
                "--tlskey",
                str(use.key),
            ]
        result = subprocess.run([dk.DOCKER, *flags, *args], input=input, capture_output=True, timeout=60, check=False)
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("tls")
    ca = CertAuthority(work / "ca")
    stranger = CertAuthority(work / "other", name="other-ca").issue("stranger", server=False)
    manager_cert = ca.issue("manager")
    port = free_port()
    tls_nodes = [dk.DockerNode(f"tnode{n}", tls=ca.issue(f"tnode{n}")) for n in (1, 2)]
    with dk.running_nodes(tls_nodes, work) as nodes:
        manager = ManagedProcess(
            "manage-tls",
            [
                SWARMCTL,
                "manage",
                "-H",
                f"tcp://127.0.0.1:{port}",
                "--tlsverify",
                "--tlscacert",
                str(ca.ca_path),
                "--tlscert",
                str(manager_cert.cert),
                "--tlskey",
                str(manager_cert.key),
                "--engine-refresh-min-interval",
                "2s",
                "--engine-refresh-max-interval",
                "3s",
                f"nodes://{nodes[0].addr},{nodes[1].addr}",
            ],
            work,
        ).start()
        try:
            wait_for(lambda: port_open("127.0.0.1", port), 30, "the TLS manager")
            made = Setup(port, ca.issue("client", server=False), stranger)
            wait_for(lambda: made.docker("info").stdout.count("Status: Healthy") == 2, 60, "both TLS nodes healthy")
            yield made
        finally:
            manager.stop()


def test_docker_cli_with_client_certificates(setup: Setup) -> None:
    assert " Nodes: 2" in setup.docker("info").stdout
    assert setup.docker("run", "--rm", dk.IMAGE, "echo", "over tls").stdout == "over tls\n"
    result = setup.docker("run", "-i", "--rm", dk.IMAGE, "cat", input=b"stdin over tls\n")
    assert result.stdout == "stdin over tls\n", result.stderr


def test_clients_without_a_valid_certificate_are_refused(setup: Setup) -> None:
    plain = setup.docker("info", tls=False)
    assert plain.returncode != 0 and "Nodes:" not in plain.stdout
    other = setup.docker("info", certs=setup.stranger)
    assert other.returncode != 0 and "Nodes:" not in other.stdout
    no_cert = subprocess.run(
        [dk.DOCKER, "-H", f"tcp://127.0.0.1:{setup.port}", "--tls", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_cert.returncode != 0 and "Nodes:" not in no_cert.stdout


def test_missing_tls_files_are_one_line_errors(tmp_path: Path) -> None:
    from tests.support.swarm import run_swarmctl

    result = run_swarmctl(
        "manage",
        "--tlsverify",
        "--tlscacert",
        str(tmp_path / "ca.pem"),
        "--tlscert",
        str(tmp_path / "c.pem"),
        "--tlskey",
        str(tmp_path / "k.pem"),
        "nodes://127.0.0.1:1",
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"swarmctl manage: --tlscacert {tmp_path / 'ca.pem'}: no such file"
