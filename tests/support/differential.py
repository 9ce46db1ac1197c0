"""One request sent to a real dockerd and to a ``swarmctl manage`` in front of it, and the two answers compared.

The differential fuzz suite (``tests/test_fuzz_differential.py``) generates the
requests; this module sends them (a fresh connection each, as the docker CLI
opens them, so that one refused request cannot poison the next), cleans up
whatever they created, and says what is wrong with the manager's answer:

- not the status class (2xx/4xx/5xx) dockerd gave, unless the difference is
  one the test allows (a scheduling error that names the cluster);
- an error body that is not a JSON object with a string ``message``, the
  Docker-style answer the docker CLI prints;
- Python's own words in the answer (an exception name, ``object has no
  attribute``, a traceback);
- a traceback in the manager's log while it handled the request.

``SWARMCTL_FUZZ_REPORT=FILE`` makes the suite record every difference as one
JSON line in FILE and carry on, instead of failing at the first: that is how
the list of differences in a report is made.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .process import wait_for

#: Python speaking instead of the manager: exception names, attribute errors, tracebacks, the CLI's error prefix.
PYTHON_TEXT = re.compile(
    r"Traceback \(most recent call last\)|object has no attribute|object is not (subscriptable|iterable|callable)"
    r"|\b(Attribute|Type|Key|Index|Value|Recursion|Overflow|UnicodeDecode|JSONDecode|Assertion|Runtime|Name)Error\b"
    r"|swarmctl: \w+Error|unhashable type|\bNone(Type)?\b"  # Go says <nil> or "": None is Python's null
)
#: The manager's scheduling refusals (swarmctl.scheduler's NoNodeError messages): they name the cluster, not a field.
SCHEDULING = re.compile(
    r"^(unable to find (a node|the node)|no resources available to schedule container|no node has a free container"
    r" slot|No healthy node available|node \S+ is not a healthy node)"
)
#: The manager refusing a Swarm rule it cannot read (``-e constraint:node=x``): an engine takes it as a plain variable.
SWARM_RULE = re.compile(
    r"^(invalid (constraint|affinity|label com\.docker\.swarm\.)|(invalid|too many) reschedule pol)"
)


@dataclass(frozen=True)
class Request:
    method: str
    #: Path and query, as sent (already quoted).
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self, limit: int = 300) -> str:
        body = "" if self.body is None else " " + _clip(self.body.decode("utf-8", "replace"), limit)
        heads = "".join(f" [{k}: {_clip(v, 60)}]" for k, v in self.headers if k.lower() != "content-type")
        kind = dict((k.lower(), v) for k, v in self.headers).get("content-type")
        return f"{self.method} {_clip(self.path, limit)}{heads}{f' ({kind})' if kind else ''}{body}"


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    @property
    def document(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    @property
    def message(self) -> str | None:
        document = self.document
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            return str(document["message"])
        return None

    def describe(self) -> str:
        shown = self.message if self.message is not None else self.body.decode("utf-8", "replace")
        return f"{self.status} {_clip(shown.strip(), 240)!r}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def send(addr: str, request: Request, timeout: float = 60.0) -> Reply:
    """``request`` on a new connection to ``addr``; a connection closed without an answer is status 0."""
    host, _, port = addr.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.putrequest(request.method, request.path, skip_accept_encoding=True)
        for key, value in request.headers:
            connection.putheader(key, value)
        if request.body is not None:
            connection.putheader("Content-Length", str(len(request.body)))
        connection.endheaders(request.body)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("Content-Type") or "", response.read())
    except (TimeoutError, http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
        return Reply(0, "", f"no answer: {type(exc).__name__}".encode())
    finally:
        connection.close()


def send_raw(addr: str, data: bytes, *, half_close: bool = False, timeout: float = 30.0) -> Reply:
    """Bytes as they are, for requests ``http.client`` will not send (no Host, a bad header line, a cut body).

    ``half_close`` shuts the sending side after ``data``, as a client whose
    body ended early does. No answer before the server closes is status 0.
    """
    host, _, port = addr.rpartition(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                received += chunk
                head, sep, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if sep and (length is None or len(body) >= int(length[1])):
                    break  # the whole answer (a server that keeps the connection would not close it)
    head, _, body = received.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/\d\.\d (\d{3})", head)
    kind = re.search(rb"(?im)^content-type:\s*([^\r\n]*)", head)
    if status is None:
        return Reply(0, "", b"no answer")
    return Reply(int(status[1]), kind[1].decode() if kind else "", body)


class LogWatch:
    """What a log file gained since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_text(self) -> str:
        with contextlib.suppress(OSError), open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
            self.offset += len(data)
            return data.decode("utf-8", "replace")
        return ""


def status_class(status: int) -> int:
    return status // 100


@dataclass
class Pair:
    """A dockerd and a manager whose only node it is."""

    engine: str
    manager: str
    log: LogWatch
    #: Differences recorded instead of failing (``SWARMCTL_FUZZ_REPORT``).
    report: Path | None = field(default_factory=lambda: _report_path())
    sent: int = 0
    #: Containers the requests created (and the suite removed), dockerd's and the manager's.
    created: int = 0

    def both(self, request: Request) -> tuple[Reply, Reply]:
        """dockerd's answer, then the manager's, each cleaned up after (containers they created are removed)."""
        engine = send(self.engine, request)
        self.remove_created(self.engine, engine)
        manager = send(self.manager, request)
        self.remove_created(self.manager, manager, fallback=self.engine)
        self.sent += 1
        return engine, manager

    def remove_created(self, addr: str, reply: Reply, fallback: str | None = None) -> None:
        """A ``201 {"Id": ...}`` of a container create: remove it (through ``addr``, else ``fallback``)."""
        document = reply.document
        if reply.status != 201 or not isinstance(document, dict) or not isinstance(document.get("Id"), str):
            return
        self.created += 1
        target = Request("DELETE", f"/v1.41/containers/{document['Id']}?force=1&v=1")
        if status_class(send(addr, target).status) != 2 and fallback is not None:
            send(fallback, target)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the manager lists the containers dockerd lists.

        The manager learns of containers made or removed on the engine directly
        from its events, a moment later: a request that names containers by id
        prefix (``since=1``, a ref ``a``) could meet one the engine has already
        removed. Tests that send such requests start from a settled pair.
        """

        def ids(addr: str) -> set[str]:
            listed = send(addr, Request("GET", "/v1.41/containers/json?all=1")).document
            return {str(c.get("Id")) for c in listed} if isinstance(listed, list) else {"?"}

        wait_for(lambda: ids(self.engine) == ids(self.manager), timeout, "the manager to list dockerd's containers")

    def check(
        self,
        request: Request,
        engine: Reply,
        manager: Reply,
        *,
        allowed: Callable[[Reply, Reply], bool] | None = None,
        echoed: str = "",
    ) -> None:
        """Fail (or record) unless the manager answered as dockerd did; see the module's docstring.

        ``allowed(engine, manager)`` says when a difference in status class is
        one the test accepts; ``echoed`` is user text the answers may quote (an
        exception name in it is no sign of Python's own words).
        """
        problems = []
        logged = self.log.new_text()
        if status_class(engine.status) != status_class(manager.status) and not (allowed and allowed(engine, manager)):
            problems.append("status class")
        if manager.status >= 400 or manager.status == 0:
            if manager.message is None:
                problems.append("not a JSON object with a string message")
            elif not manager.content_type.startswith("application/json"):
                problems.append(f"Content-Type {manager.content_type!r}")
        spoken = PYTHON_TEXT.search(manager.body.decode("utf-8", "replace"))
        if spoken and spoken[0] not in echoed:
            problems.append(f"Python's words in the answer ({spoken[0]!r})")
        if "Traceback (most recent call last)" in logged:
            problems.append("a traceback in the manager's log")
        if not problems:
            return
        text = (
            f"{', '.join(problems)}\n  request: {request.describe()}\n  dockerd: {engine.describe()}\n"
            f"  manager: {manager.describe()}"
        )
        if "Traceback" in logged:
            text += "\n  log: " + logged[logged.index("Traceback") :][-1500:]
        if self.report is None:
            raise AssertionError(text)
        with open(self.report, "a", encoding="utf-8") as fh:
            fh.write(
                json.dumps(
                    {
                        "problems": problems,
                        "request": request.describe(),
                        "dockerd": engine.describe(),
                        "manager": manager.describe(),
                    }
                )
                + "\n"
            )


def _report_path() -> Path | None:
    chosen = os.environ.get("SWARMCTL_FUZZ_REPORT")
    return Path(chosen) if chosen else None


def scheduling_refusal(engine: Reply, manager: Reply) -> bool:
    """The manager refused to place the container for a reason of the cluster (5xx naming nodes)."""
    return status_class(manager.status) == 5 and SCHEDULING.match(manager.message or "") is not None


def rule_refusal(engine: Reply, manager: Reply) -> bool:
    """The manager refused a Swarm rule it cannot read (4xx naming the rule), which an engine never reads."""
    return status_class(manager.status) == 4 and SWARM_RULE.match(manager.message or "") is not None


#: dockerd's words when it could not read a body into its types: the request is malformed, not unplaceable.
_UNDECODED = re.compile(r"^(json: |invalid character |unexpected EOF$|EOF$|Content-Type specified )")


def decoded(engine: Reply) -> bool:
    """Whether dockerd read the create body into its types (its refusal, if any, came after that)."""
    return _UNDECODED.match(engine.message or "") is None


def placement_refusal(engine: Reply, manager: Reply) -> bool:
    """Either of the refusals only a manager makes: a rule it cannot read, a container it cannot place."""
    return scheduling_refusal(engine, manager) or rule_refusal(engine, manager)
