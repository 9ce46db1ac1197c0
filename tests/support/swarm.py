"""Running the real ``swarmctl`` command in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .process import ManagedProcess, wait_for

SWARMCTL = str(Path(sys.executable).with_name("swarmctl"))


def run_swarmctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``swarmctl args...`` to completion and capture its output."""
    return subprocess.run(
        [SWARMCTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def listed(discovery: str, *options: str) -> list[str]:
    """What ``swarmctl list`` prints, as a list; fails the test on a non-zero exit."""
    result = run_swarmctl("list", "--timeout", "5s", *options, discovery)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def wait_listed(discovery: str, expected: set[str], *options: str, timeout: float = 30) -> None:
    """Wait until ``swarmctl list`` prints exactly ``expected`` (in any order)."""
    wait_for(
        lambda: set(listed(discovery, *options)) == expected,
        timeout,
        f"list == {sorted(expected)}",
        interval=0.2,
    )


class Join(ManagedProcess):
    """A ``swarmctl join`` process."""

    def __init__(
        self,
        workdir: Path,
        advertise: str,
        discovery: str,
        *options: str,
        heartbeat: str = "1s",
        ttl: str = "3s",
        delay: str = "0s",
    ) -> None:
        name = "join-" + advertise.replace(":", "_").replace("[", "").replace("]", "")
        super().__init__(
            name,
            [
                SWARMCTL,
                "join",
                "--advertise",
                advertise,
                "--heartbeat",
                heartbeat,
                "--ttl",
                ttl,
                "--delay",
                delay,
                *options,
                discovery,
            ],
            workdir,
        )

    def terminate_and_wait(self, timeout: float = 20) -> int:
        """SIGTERM, as an operator's ``kill`` or systemd would; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)
