"""A manager stops on SIGTERM while clients hold streams open: ``docker events`` and the dashboard's feed.

Both streams used to hold the shutdown for aiohttp's whole grace period, twice
over (two minutes), so ``systemctl stop`` or ``docker stop`` of a manager
with a ``docker events`` client attached had to kill it. Now the event bus
ends every stream first, the process exits by itself (status 0), and the
docker CLI's stream ends rather than hangs.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.manager import Manager, api
from tests.support.process import free_port, port_open, wait_for

pytestmark = pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))


def test_sigterm_ends_open_streams_and_the_process(tmp_path: Path) -> None:
    dashboard = free_port()
    manager = Manager(tmp_path, "nodes://127.0.0.1:9", "--dashboard", f"tcp://127.0.0.1:{dashboard}")
    wait_for(lambda: port_open("127.0.0.1", dashboard), 30, "the dashboard to listen")
    events = subprocess.Popen(
        [dk.DOCKER, "-H", f"tcp://{manager.addr}", "events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    feed = socket.create_connection(("127.0.0.1", dashboard), timeout=30)
    try:
        feed.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert feed.recv(4096).startswith(b"HTTP/1.1 200")
        wait_for(lambda: api(manager.addr, "GET", "/v1.41/info")[2]["NEventsListener"] == 1, 30, "docker events on")
        assert manager.process.proc is not None
        manager.process.signal(signal.SIGTERM)
        assert manager.process.proc.wait(timeout=60) == 0  # by itself, not killed
        assert events.wait(timeout=30) is not None  # the CLI's stream ended with the manager
        feed.settimeout(10)
        while feed.recv(4096):  # the feed's connection is closed (a hanging one would time out here)
            pass
    finally:
        feed.close()
        if events.poll() is None:
            events.kill()
        manager.stop()
