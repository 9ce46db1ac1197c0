"""``--log-format json``: the manager's and join's log as one JSON object per line, as logrus writes them."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmctl.logformat import JSONFormatter
from tests.support.process import ManagedProcess, free_port, wait_for

SWARMCTL = str(Path(sys.executable).with_name("swarmctl"))


def entries(process: ManagedProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each decoded (a line that is not one JSON object fails the test)."""
    lines = [line for line in process.log_path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("command", ["manage", "join"])
def test_every_line_is_one_json_object(tmp_path: Path, command: str) -> None:
    port = free_port()
    discovery = f"sqlite://{tmp_path / 'discovery.db'}"
    args = {
        "manage": ["manage", "-H", f"tcp://127.0.0.1:{port}", discovery],
        "join": ["join", "--advertise", f"127.0.0.1:{port}", "--heartbeat", "1s", "--delay", "0s", discovery],
    }[command]
    process = ManagedProcess(command, [SWARMCTL, "--log-format", "json", "--log-level", "debug", *args], tmp_path)
    process.start()
    try:
        wait_for(lambda: len(entries(process)) >= 2, 20, "two log lines")
    finally:
        process.stop()
    for entry in entries(process):
        assert set(entry) >= {"time", "level", "msg", "logger"}, entry
        assert entry["level"] in {"debug", "info", "warning", "error", "fatal"}
        assert entry["time"].endswith("Z") and entry["logger"].startswith(("swarmctl", "kvstore", "aiohttp", "asyncio"))


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("swarmctl.api", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info())
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "failed x" and entry["level"] == "error"
    assert "ValueError: boom" in entry["error"]


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    process = ManagedProcess("bad", [SWARMCTL, "--log-format", "xml", "list", "nodes://1.2.3.4:5"], tmp_path).start()
    assert process.proc is not None
    assert process.proc.wait(30) == 2
    assert "Traceback" not in process.log_path.read_text()
