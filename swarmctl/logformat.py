"""How swarmctl writes its log: lines for people, or one JSON object per line for log shippers.

``--log-format json`` writes what logrus (Docker Swarm's logger) writes in
its JSON mode, so pipelines built for Swarm's logs read these too: ``time``
(RFC 3339, UTC), ``level`` (``debug``, ``info``, ``warning``, ``error``,
``fatal``), ``msg``, plus ``logger`` (which part of swarmctl spoke) and,
for a failure logged with its traceback, ``error`` holding it.
"""

from __future__ import annotations

import json
import logging
import sys
import time

FORMATS = ("text", "json")
_LEVELS = {"CRITICAL": "fatal", "ERROR": "error", "WARNING": "warning", "INFO": "info", "DEBUG": "debug"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback inside it, escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": _LEVELS.get(record.levelname, record.levelname.lower()),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str, style: str = "text") -> None:
    """The root logger at ``level`` (Python's level names), writing to stderr in ``style``."""
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JSONFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
