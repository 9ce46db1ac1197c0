"""Real ZooKeeper servers for tests: standalone, TLS, and a three-server ensemble.

Each server gets free loopback ports and its own directory (data, ``zoo.cfg``,
the log), runs in its own process group through :class:`ManagedProcess`, and
is stopped when its context manager exits (and, failing that, at interpreter
exit). Nothing here depends on pytest, so swarmctl's discovery tests and the
benchmarks can use the same servers::

    with standalone(tmp_path / "zk") as server:
        store = kvstore.new_store("zk", [server.address])

Timing: ``tickTime`` is 250 ms and the session-timeout range is widened to
0.5..60 s, so a store can ask for sessions as short as a 1 s TTL (the
ZooKeeper backend maps a TTL to the timeout of the session that owns the
key), and an ensemble re-elects a leader in about a second.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .certs import CertAuthority, CertFiles
from .process import ManagedProcess, free_port, wait_for

#: slf4j-simple first: several slf4j bindings are installed, and the first on
#: the class path wins; simple logs to stderr, which ManagedProcess sends to the log file.
CLASSPATH = "/usr/share/java/slf4j-simple.jar:/usr/share/java/*:/etc/zookeeper/conf"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
#: Small heaps and the C1 compiler only: five JVMs must share two cores in CI.
JVM_OPTIONS = [
    "-Xms32m",
    "-Xmx192m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.jmx.log4j.disable=true",
]
TICK_MS = 250
MIN_SESSION_MS = 500
MAX_SESSION_MS = 60_000
START_TIMEOUT = 60.0


def zookeeper_installed() -> bool:
    """True when Java and the ZooKeeper jar are there (tests skip otherwise)."""
    return shutil.which("java") is not None and Path("/usr/share/java/zookeeper.jar").exists()


@dataclass(frozen=True)
class TLSFiles:
    """What a TLS server and its clients need, all made at test time."""

    ca: Path
    #: The server's PEM key store: its private key and certificate in one file (ZooKeeper's PEM format).
    server_keystore: Path
    #: A certificate the server accepts (signed by ``ca``).
    client: CertFiles
    #: A certificate from another CA: the server must refuse it.
    intruder: CertFiles

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        authority = CertAuthority(directory / "ca")
        server = authority.issue("zookeeper-server", server=True, client=True)
        keystore = directory / "ca" / "zookeeper-server-keystore.pem"
        keystore.write_bytes(server.key.read_bytes() + server.cert.read_bytes())
        client = authority.issue("zookeeper-client", server=False, client=True)
        stranger = CertAuthority(directory / "other-ca", name="some-other-ca")
        intruder = stranger.issue("intruder", server=False, client=True)
        return cls(authority.ca_path, keystore, client, intruder)


def four_letter_word(
    host: str, port: int, word: str = "srvr", tls: TLSFiles | None = None, timeout: float = 2.0
) -> str:
    """Send a ZooKeeper four-letter command and return the answer ("" if none)."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if tls is not None:
            context = ssl.create_default_context(cafile=str(tls.ca))
            context.load_cert_chain(str(tls.client.cert), str(tls.client.key))
            sock = context.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer:
    """One ZooKeeper server: standalone, or member ``server_id`` of an ensemble.

    ``peers`` maps every member's id to its (quorum port, election port); the
    ensemble gives each member the same map.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        server_id: int = 0,
        peers: dict[int, tuple[int, int]] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.workdir = workdir
        self.server_id = server_id
        self.peers = peers or {}
        self.tls = tls
        self.host = "127.0.0.1"
        #: Plain client port; for a TLS server, the TLS port (there is no plain one).
        self.port = free_port()
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "zoo.cfg"
        self.config_path.write_text(self._config())
        if self.peers:
            (self.data_dir / "myid").write_text(f"{server_id}\n")
        self.process = ManagedProcess(
            f"zookeeper{server_id or ''}",
            ["java", *JVM_OPTIONS, "-cp", CLASSPATH, MAIN_CLASS, str(self.config_path)],
            workdir,
        )

    @property
    def address(self) -> str:
        """``host:port`` as a store address."""
        return f"{self.host}:{self.port}"

    def _config(self) -> str:
        lines = [
            f"tickTime={TICK_MS}",
            "initLimit=20",
            "syncLimit=8",
            f"minSessionTimeout={MIN_SESSION_MS}",
            f"maxSessionTimeout={MAX_SESSION_MS}",
            f"dataDir={self.data_dir}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=srvr,stat,ruok,mntr,wchp",
            # Don't wait for disk syncs: test data need not survive a power cut.
            "forceSync=no",
            # Every test client comes from 127.0.0.1; ZooKeeper's default of 60
            # connections per address refuses the 61st (a join storm of 60 nodes
            # and its poller, all on one server after a leader dies).
            "maxClientCnxns=0",
        ]
        if self.tls is None:
            lines += [f"clientPort={self.port}", f"clientPortAddress={self.host}"]
        else:
            lines += [
                f"secureClientPort={self.port}",
                f"secureClientPortAddress={self.host}",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.tls.server_keystore}",
                "ssl.keyStore.type=PEM",
                f"ssl.trustStore.location={self.tls.ca}",
                "ssl.trustStore.type=PEM",
                "ssl.clientAuth=need",
            ]
        for sid, (quorum, election) in sorted(self.peers.items()):
            lines.append(f"server.{sid}={self.host}:{quorum}:{election}")
        return "\n".join(lines) + "\n"

    # -- life cycle ----------------------------------------------------------------
    def start(self, wait: bool = True) -> ZooKeeperServer:
        """Start the JVM; with ``wait``, return once it serves clients."""
        self.process.start()
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``srvr`` reports a mode (standalone, leader or follower)."""
        try:
            wait_for(lambda: self.mode() is not None, timeout, f"ZooKeeper on {self.address}")
        except TimeoutError:
            raise TimeoutError(
                f"ZooKeeper on {self.address} did not start; log tail:\n{self.process.log_tail()}"
            ) from None

    def mode(self) -> str | None:
        """``standalone``, ``leader`` or ``follower``; None while down or electing."""
        if not self.process.running:
            return None
        try:
            answer = four_letter_word(self.host, self.port, "srvr", self.tls)
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def stop(self) -> None:
        """SIGTERM (SIGKILL if it lingers); the data directory stays for a restart."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL at once: a crash, not a shutdown."""
        self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.running


@contextlib.contextmanager
def standalone(workdir: Path) -> Iterator[ZooKeeperServer]:
    """A standalone server on a free loopback port, stopped on exit."""
    server = ZooKeeperServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.process.kill()


@contextlib.contextmanager
def tls_standalone(workdir: Path) -> Iterator[ZooKeeperServer]:
    """A standalone server that speaks only TLS (``secureClientPort``, Netty, PEM stores).

    Its certificates are made now, under ``workdir/certs``; ``server.tls``
    holds the CA, a client certificate it accepts and one it refuses.
    """
    tls = TLSFiles.create(workdir / "certs")
    server = ZooKeeperServer(workdir / "server", tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.process.kill()


class Ensemble:
    """Three (or ``size``) servers on loopback forming one quorum."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        peers = {sid: (free_port(), free_port()) for sid in range(1, size + 1)}
        self.servers = [ZooKeeperServer(workdir / f"server{sid}", server_id=sid, peers=peers) for sid in peers]

    @property
    def addrs(self) -> list[str]:
        """Every member's client address, the list a store is given."""
        return [server.address for server in self.servers]

    def start(self, timeout: float = START_TIMEOUT) -> Ensemble:
        for server in self.servers:
            server.start(wait=False)
        self.wait_quorum(timeout)
        return self

    def wait_quorum(self, timeout: float = START_TIMEOUT) -> ZooKeeperServer:
        """Wait until every running member serves and one of them leads; return the leader."""

        def settled() -> bool:
            modes = [server.mode() for server in self.servers if server.running]
            return bool(modes) and None not in modes and modes.count("leader") == 1

        try:
            wait_for(settled, timeout, "the ZooKeeper ensemble to elect a leader", interval=0.1)
        except TimeoutError:
            tails = "\n".join(f"--- {s.address}\n{s.process.log_tail(15)}" for s in self.servers)
            raise TimeoutError(f"the ensemble did not settle:\n{tails}") from None
        return self.leader()

    def leader(self) -> ZooKeeperServer:
        for server in self.servers:
            if server.mode() == "leader":
                return server
        raise LookupError("no member leads right now")

    def stop(self) -> None:
        for server in self.servers:
            server.process.kill()


@contextlib.contextmanager
def ensemble(workdir: Path, size: int = 3) -> Iterator[Ensemble]:
    """A running ensemble with a leader, every member stopped on exit."""
    group = Ensemble(workdir, size)
    try:
        group.start()
        yield group
    finally:
        group.stop()
