"""The README's main-job command, ``scripts/local-cluster``, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import docker as dk
from tests.support.process import free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(dk.available() is not None, reason=str(dk.available()))]

ROOT = Path(__file__).resolve().parent.parent


def test_local_cluster_comes_up_runs_a_container_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SWARMCTL_STATE": str(tmp_path / "state"), "MANAGER_PORT": str(port)}
    env.pop("NODES", None)
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "local-cluster")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Logs:"):
                break
        text = "".join(lines)
        assert "Local cluster is up." in text, text
        assert f"docker -H tcp://127.0.0.1:{port} info" in text
        result = subprocess.run(
            [dk.DOCKER, "-H", f"tcp://127.0.0.1:{port}", "run", "--rm", dk.IMAGE, "echo", "hello"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.stdout == "hello\n", result.stderr
    finally:
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "local cluster stopped" in err
