"""``docker ps --filter`` over the cluster's cached containers, with dockerd's names, checks and refusals.

Every filter dockerd 20.10 knows is applied here, from the summary each
engine lists (``Status`` says the exit code and the health), and ``node``
(Swarm's). A filter or a value dockerd refuses is refused with its status
and words before anything is listed, so an empty cluster refuses as a busy one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from ..cluster.cluster import LookupError_
from ..cluster.engine import Engine
from .context import Manager
from .filters import accept_only, boolean, refusal
from .gostrconv import GoNumberError, atoi, parse_int

#: What dockerd's container listing filters on, and the node of the cluster.
CONTAINER_FILTERS = (
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "node",
    "publish",
    "since",
    "status",
    "volume",
)
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")
#: The label a swarm-mode task's container carries (``is-task``).
TASK_LABEL = "com.docker.swarm.task"
_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")

Match = Callable[[Engine, dict[str, Any]], bool]


def _go_atoi(value: str) -> int:
    """Go's ``strconv.Atoi``, refused in its words (dockerd answers them 500)."""
    try:
        return atoi(value)
    except GoNumberError as exc:
        raise refusal(500, str(exc)) from None


def limit_of(raw: str | None) -> int:
    """``limit``: dockerd's ``strconv.Atoi`` of it (empty: no limit)."""
    return _go_atoi(raw) if raw else -1


def _health(container: dict[str, Any]) -> str:
    status = str(container.get("Status") or "")
    for marker, health in (("(health: starting)", "starting"), ("(unhealthy)", "unhealthy"), ("(healthy)", "healthy")):
        if marker in status:
            return health
    return "none"


def _port(text: str) -> int:
    return parse_int(text, function="strconv.ParseUint", bits=16, signed=False)


def _ports(value: str, key: str) -> tuple[int, int, str]:
    """``80``, ``80/tcp``, ``8000-8080/udp``: the range and the protocol, as dockerd's ``portOp`` reads them."""
    if ":" in value:
        raise refusal(500, f"filter for '{key}' should not contain ':': {value}")
    parts = value.split("/")
    port, proto = (parts[0], (parts[1] if len(parts) > 1 and parts[1] else "tcp")) if parts[0] else ("", "")
    try:
        if not port:
            raise ValueError("Empty string specified for ports.")
        start, dash, rest = port.partition("-")
        low = _port(start)
        high = _port(rest.split("-")[0]) if dash else low
        if high < low:
            raise ValueError(f"Invalid range specified for the Port: {port}")
    except ValueError as exc:
        raise refusal(500, f"error while looking up for {key} {port}: {exc}") from None
    return low, high, proto.lower()


def _port_match(container: dict[str, Any], field: str, wanted: list[tuple[int, int, str]]) -> bool:
    for port in container.get("Ports") or []:
        number = port.get(field)
        if number and any(
            low <= number <= high and (port.get("Type") or "tcp") == proto for low, high, proto in wanted
        ):
            return True
    return False


def compile_filters(manager: Manager, filters: dict[str, list[str]]) -> Match:
    """The containers ``filters`` keep, as one test; every refusal dockerd makes is raised here, at once."""
    checked = _checked(manager, filters)
    tests = [make(checked[name]) for name, make in _TESTS.items() if name in checked]
    return lambda engine, container: all(test(engine, container) for test in tests)


def _checked(manager: Manager, filters: dict[str, list[str]]) -> dict[str, Any]:
    """Each filter's values as its test takes them, refused as dockerd refuses them, in its ``foldFilter``'s order.

    A filter read into nothing (no exit code, port or container) makes no test.
    """
    accept_only(filters, CONTAINER_FILTERS)
    exited = {_go_atoi(code) for code in filters.get("exited", [])}
    _refuse_unknown(filters.get("status", []), STATES, "Invalid filter 'status={}'")
    is_task = boolean(filters, "is-task")
    _refuse_unknown(filters.get("health", []), HEALTH, "Unrecognised filter value for health: {}")
    read: dict[str, Any] = {
        "exited": exited,
        "is-task": is_task,
        "before": [_created_of(manager, ref) for ref in filters.get("before", [])],
        "since": [_created_of(manager, ref) for ref in filters.get("since", [])],
        "publish": [_ports(v, "publish") for v in filters.get("publish", [])],
        "expose": [_ports(v, "expose") for v in filters.get("expose", [])],
    }
    checked: dict[str, Any] = {name: values for name, values in filters.items() if name not in read}
    checked.update((name, value) for name, value in read.items() if value or value is False)
    return checked


def _refuse_unknown(values: list[str], known: tuple[str, ...], message: str) -> None:
    for value in values:
        if value not in known:
            raise refusal(400, message.format(value))


def _exit_code(container: dict[str, Any]) -> int | None:
    found = _EXIT_CODE.search(str(container.get("Status") or ""))
    return None if found is None else int(found[1])


def _created_before(created: list[int]) -> Match:
    bound = min(created)
    return lambda e, c: _created(e, c) < bound


def _created_after(created: list[int]) -> Match:
    bound = max(created)
    return lambda e, c: _created(e, c) > bound


#: The test each filter makes of its checked values (see ``_checked``), in the order they are applied.
_TESTS: dict[str, Callable[[Any], Match]] = {
    "status": lambda states: lambda e, c: c.get("State") in states,
    "health": lambda wanted: lambda e, c: _health(c) in wanted,
    "exited": lambda codes: lambda e, c: _exit_code(c) in codes,
    "is-task": lambda task: lambda e, c: (TASK_LABEL in (c.get("Labels") or {})) == task,
    "publish": lambda ports: lambda e, c: _port_match(c, "PublicPort", ports),
    "expose": lambda ports: lambda e, c: _port_match(c, "PrivatePort", ports),
    "before": _created_before,
    "since": _created_after,
    "id": lambda ids: lambda e, c: any(c["Id"].startswith(v) for v in ids),
    "name": lambda names: lambda e, c: _name_match(e, c, names),
    "label": lambda labels: lambda e, c: all(_label_match(c.get("Labels") or {}, wanted) for wanted in labels),
    "node": lambda nodes: lambda e, c: any(fnmatch.fnmatch(e.name, v) or e.addr == v for v in nodes),
    "ancestor": lambda images: lambda e, c: any(c.get("Image") == v or c.get("ImageID") == v for v in images),
    "network": lambda networks: lambda e, c: _network_match(c, networks),
    "volume": lambda volumes: (
        lambda e, c: any(m.get("Name") in volumes or m.get("Destination") in volumes for m in c.get("Mounts") or [])
    ),
    # Linux engines: every container runs with the default isolation.
    "isolation": lambda isolations: lambda e, c: "default" in isolations,
}


def _created(engine: Engine, container: dict[str, Any]) -> int:
    """When ``container`` was created, in nanoseconds from its inspect (its listing says only the second)."""
    facts = engine.inspects.facts_of(container["Id"])
    if facts is not None and facts.created_ns:
        return facts.created_ns
    return int(container.get("Created") or 0) * 1_000_000_000


def _created_of(manager: Manager, ref: str) -> int:
    """When the container ``ref`` was created (``before``/``since``); dockerd's 500 if there is none."""
    try:
        engine, cid = manager.cluster.find_container(ref)
    except LookupError_:
        raise refusal(500, f"no such container {ref}") from None
    return _created(engine, engine.containers.get(cid) or {"Id": cid})


def _name_match(engine: Engine, container: dict[str, Any], wanted: list[str]) -> bool:
    names = [n.lstrip("/") for n in container.get("Names") or []]
    full = [f"{engine.name}/{n}" for n in names]
    try:
        return any(re.search(v, n) for v in wanted for n in names + full)
    except re.error as exc:
        raise refusal(500, f"error parsing regexp: {exc}") from None


def _label_match(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _network_match(container: dict[str, Any], wanted: list[str]) -> bool:
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return any(
        name == v or (settings or {}).get("NetworkID", "").startswith(v)
        for name, settings in networks.items()
        for v in wanted
    )
