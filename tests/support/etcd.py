"""Real etcd servers for tests: one member, one with client-certificate TLS, or a cluster.

Each member gets free loopback ports, a work directory for its log (kept
for post-mortems) and a data directory on tmpfs when the machine has one
(etcd fsyncs every write; on tmpfs that costs nothing, so the suites run
several times faster). Everything runs under :class:`ManagedProcess`, so a
member is stopped with its process group even when a test fails.

Usage from any test module (swarmctl's discovery tests included)::

    from tests.support.etcd import EtcdCluster, single_etcd

    @pytest.fixture(scope="module")
    def etcd(tmp_path_factory):
        with single_etcd(tmp_path_factory.mktemp("etcd")) as cluster:
            yield cluster          # cluster.endpoints == ["127.0.0.1:PORT"]

Readiness and the leader are asked over etcd's gRPC Maintenance API with
the raw generated stubs, so this module depends on the etcd client library
only, never on the backend under test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from etcd3 import etcdrpc

from .certs import CertAuthority, CertFiles
from .process import ManagedProcess, free_port, wait_for

ETCD_BINARY = os.environ.get("ETCD_BINARY", "/usr/bin/etcd")

#: How long a member (or a cluster) gets to become ready on a loaded 2-core machine.
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class EtcdTLS:
    """The files a TLS cluster was started with: its server certificate and the CA clients need."""

    ca_file: Path
    server: CertFiles
    client: CertFiles
    authority: CertAuthority


@dataclass
class EtcdMember:
    """One etcd process of a cluster."""

    name: str
    client_port: int
    peer_port: int
    workdir: Path
    data_dir: Path
    process: ManagedProcess | None = None
    member_id: int = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running


def _scratch_root() -> str | None:
    """tmpfs when there is one (fsync-heavy etcd runs much faster there), else the default."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return None


@dataclass
class EtcdCluster:
    """``size`` etcd members on loopback (1 for a plain server), optionally with client-cert TLS.

    ``client_cert_auth`` makes the members demand a client certificate signed
    by the test CA (``--client-cert-auth``), which is what the TLS tests need.
    """

    workdir: Path
    size: int = 1
    tls: EtcdTLS | None = None
    heartbeat_ms: int = 100
    election_ms: int = 1000
    extra_args: list[str] = field(default_factory=list)
    members: list[EtcdMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="etcd-data-", dir=_scratch_root()))
        token = f"kvstore-test-{os.getpid()}-{id(self):x}"
        self._token = token
        for n in range(self.size):
            name = f"etcd{n}"
            self.members.append(
                EtcdMember(
                    name=name,
                    client_port=free_port(),
                    peer_port=free_port(),
                    workdir=self.workdir / name,
                    data_dir=self._scratch / name,
                )
            )

    # -- addresses --------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoints(self) -> list[str]:
        """``host:port`` of every member, as ``kvstore.new_store("etcd", ...)`` takes them."""
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        """``etcd://h1:p1,h2:p2`` (no prefix)."""
        return "etcd://" + ",".join(self.endpoints)

    def _argv(self, member: EtcdMember) -> list[str]:
        client_url = f"{self.scheme}://{member.endpoint}"
        peer_url = f"http://127.0.0.1:{member.peer_port}"
        initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        argv = [
            ETCD_BINARY,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-token", self._token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]  # fmt: skip
        argv += self.extra_args
        if self.tls is not None:
            argv += [
                "--cert-file", str(self.tls.server.cert),
                "--key-file", str(self.tls.server.key),
                "--trusted-ca-file", str(self.tls.server.ca),
                "--client-cert-auth",
            ]  # fmt: skip
        return argv

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> EtcdCluster:
        """Start every member and wait until each answers and the cluster has a leader."""
        for member in self.members:
            self.start_member(member, wait=False)
        for member in self.members:
            self.wait_ready(member)
        wait_for(lambda: self.leader() is not None, START_TIMEOUT, "the etcd cluster to elect a leader")
        return self

    def start_member(self, member: EtcdMember, *, wait: bool = True) -> None:
        """(Re)start one member with its existing data directory."""
        member.workdir.mkdir(parents=True, exist_ok=True)
        member.process = ManagedProcess(member.name, self._argv(member), member.workdir).start()
        if wait:
            self.wait_ready(member)

    def restart_stopped(self) -> None:
        """Start every member that is not running, then wait for them and for a leader.

        All at once: a restarted member serves clients only after it has
        rejoined a quorum, so waiting for each in turn could wait forever.
        """
        stopped = [m for m in self.members if not m.running]
        for member in stopped:
            self.start_member(member, wait=False)
        for member in stopped:
            self.wait_ready(member)
        self.wait_for_leader()

    def wait_ready(self, member: EtcdMember, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if not member.running:
                raise RuntimeError(f"{member.name} exited:\n{member.process and member.process.log_tail()}")
            member.member_id = self._status(member).header.member_id
            return True

        try:
            wait_for(ready, timeout, f"etcd member {member.name} on {member.endpoint}", interval=0.1)
        except TimeoutError as exc:
            tail = member.process.log_tail() if member.process else ""
            raise TimeoutError(f"{exc}\n--- {member.name} log ---\n{tail}") from None

    def stop_member(self, member: EtcdMember) -> None:
        """A clean stop (SIGTERM): the member leaves its connections closed, like a crash would."""
        if member.process is not None:
            member.process.stop()

    def kill_member(self, member: EtcdMember) -> None:
        if member.process is not None:
            member.process.kill()

    def freeze_member(self, member: EtcdMember) -> None:
        """SIGSTOP: the member keeps its sockets open but answers nothing."""
        if member.process is not None:
            member.process.signal(signal.SIGSTOP)

    def thaw_member(self, member: EtcdMember) -> None:
        if member.process is not None:
            member.process.signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop every member and remove the data directories (logs stay in ``workdir``)."""
        for member in self.members:
            if member.process is not None:
                self.thaw_member(member)
                member.process.kill()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- asking the members ---------------------------------------------------------
    def channel(self, member: EtcdMember) -> grpc.Channel:
        """A raw gRPC channel to ``member`` (with the client certificate when TLS is on)."""
        if self.tls is None:
            return grpc.insecure_channel(member.endpoint)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.tls.client.ca.read_bytes(),
            private_key=self.tls.client.key.read_bytes(),
            certificate_chain=self.tls.client.cert.read_bytes(),
        )
        return grpc.secure_channel(member.endpoint, credentials)

    def _status(self, member: EtcdMember, timeout: float = 2.0) -> etcdrpc.StatusResponse:
        with self.channel(member) as channel:
            stub = etcdrpc.MaintenanceStub(channel)
            return stub.Status(etcdrpc.StatusRequest(), timeout=timeout)

    def leader(self) -> EtcdMember | None:
        """The member that every running member agrees leads the cluster, if there is one."""
        seen: set[int] = set()
        for member in self.members:
            if not member.running:
                continue
            with contextlib.suppress(grpc.RpcError):
                seen.add(self._status(member).leader)
                continue
            return None
        if len(seen) != 1:
            return None
        (leader_id,) = seen
        for member in self.members:
            if member.member_id == leader_id and member.running:
                return member
        return None

    def wait_for_leader(self, timeout: float = START_TIMEOUT) -> EtcdMember:
        """Block until the running members agree on a (running) leader; return it."""
        found: list[EtcdMember] = []

        def elected() -> bool:
            leader = self.leader()
            if leader is None:
                return False
            found.append(leader)
            return True

        wait_for(elected, timeout, "the etcd cluster to elect a leader", interval=0.1)
        return found[-1]


def enable_auth(cluster: EtcdCluster, password: str, user: str = "root") -> None:
    """Turn on etcd's auth with ``user`` holding the ``root`` role (etcd demands a root user first)."""
    with cluster.channel(cluster.members[0]) as channel:
        auth = etcdrpc.AuthStub(channel)
        if user != "root":
            auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=password), timeout=5)
            auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=5)
        auth.UserAdd(etcdrpc.AuthUserAddRequest(name=user, password=password), timeout=5)
        auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=user, role="root"), timeout=5)
        auth.AuthEnable(etcdrpc.AuthEnableRequest(), timeout=5)


class PausableProxy:
    """A TCP proxy on a free loopback port in front of ``upstream``, that a test can cut and restore.

    While paused it drops its open connections and closes new ones at once,
    so a client sees that member as down for exactly as long as the test
    wants: that makes "changes made while the client was away" happen for
    sure, not only when the timing is lucky.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, name=f"proxy:{self.port}", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pause(self) -> None:
        """Cut every connection and refuse new ones until :meth:`resume`."""
        self._open.clear()
        self._drop_all()

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._open.clear()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._drop_all()

    def __enter__(self) -> PausableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def make_tls(directory: Path) -> EtcdTLS:
    """A fresh CA with a server certificate (loopback) and a client certificate."""
    authority = CertAuthority(directory / "ca")
    server = authority.issue("etcd-server", server=True, client=True)
    client = authority.issue("etcd-client", server=False, client=True)
    return EtcdTLS(ca_file=authority.ca_path, server=server, client=client, authority=authority)


@contextlib.contextmanager
def single_etcd(workdir: Path) -> Iterator[EtcdCluster]:
    """One plain etcd (no TLS), started and torn down around the block."""
    with EtcdCluster(workdir, size=1) as cluster:
        cluster.start()
        yield cluster


@contextlib.contextmanager
def tls_etcd(workdir: Path) -> Iterator[EtcdCluster]:
    """One etcd that demands a client certificate; ``cluster.tls`` holds the files."""
    with EtcdCluster(workdir, size=1, tls=make_tls(workdir / "certs")) as cluster:
        cluster.start()
        yield cluster


@contextlib.contextmanager
def auth_etcd(workdir: Path, password: str, user: str = "root", token_ttl: int = 300) -> Iterator[EtcdCluster]:
    """One plain etcd with auth on (``user``/``password``); tokens last ``token_ttl`` seconds."""
    with EtcdCluster(workdir, size=1, extra_args=["--auth-token-ttl", str(token_ttl)]) as cluster:
        cluster.start()
        enable_auth(cluster, password, user)
        yield cluster


@contextlib.contextmanager
def etcd_cluster(workdir: Path, size: int = 3) -> Iterator[EtcdCluster]:
    """``size`` plain etcd members forming one cluster on loopback."""
    with EtcdCluster(workdir, size=size) as cluster:
        cluster.start()
        yield cluster
