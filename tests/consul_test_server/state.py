"""The state of the test server: Consul's KV store, sessions and indexes, without any I/O.

This follows what Consul documents (``/v1/kv``, ``/v1/txn``, ``/v1/session``,
blocking queries, "Sessions and Distributed Locks") and, where the
documentation is silent, what Consul's state store does, because clients
depend on it:

* One global Raft index. Every applied write takes the next one; a table
  index (``kvs``, ``tombstones``, ``sessions``) remembers the last write
  that changed that table. ``ModifyIndex`` values are therefore unique
  across keys and are never reused, even for a key deleted and created
  again.
* A deleted key leaves a tombstone carrying the delete's index, so that a
  recursive query's ``X-Consul-Index`` (the highest index below the prefix)
  moves on a delete too. Tombstones are reaped later; the prefix's index
  then goes *backwards*, one of the cases the blocking-query documentation
  says clients must handle.
* A plain write keeps the session that holds a key; only ``acquire`` and
  ``release`` change it. Invalidating a session (destroy or TTL) releases or
  deletes the keys it holds according to its ``Behavior`` and starts the
  ``lock-delay`` of each.

Everything here runs on the server's one event-loop thread, so there is no
locking. The HTTP layer (``server.py``) turns :class:`ConsulError` into
status codes and wakes blocked queries through :attr:`State.on_change`.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .durations import format_duration, parse_duration

#: Consul refuses values above 512 KiB (``kv_max_value_size``).
MAX_VALUE_SIZE = 512 * 1024
#: Largest session TTL Consul accepts (``structs.SessionTTLMax``).
SESSION_TTL_MAX = 86400.0
#: Consul reaps an expired session only after twice its TTL ("sessions may
#: not be reaped for up to double this TTL"); the real server uses exactly
#: that multiplier, the worst case a client must allow for.
SESSION_TTL_MULTIPLIER = 2.0
#: Default and largest ``LockDelay``.
DEFAULT_LOCK_DELAY = 15.0
MAX_LOCK_DELAY = 60.0
#: Raft entries a fresh server has already applied when it starts serving.
BOOTSTRAP_INDEX = 5
#: Operations allowed in one transaction.
MAX_TXN_OPS = 128


class ConsulError(Exception):
    """An answer other than success: the HTTP status and Consul's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One key as Consul stores it (its ``DirEntry``)."""

    key: str
    value: bytes
    flags: int = 0
    session: str = ""
    create_index: int = 0
    modify_index: int = 0
    lock_index: int = 0

    def to_json(self, *, with_value: bool = True) -> dict[str, Any]:
        """The JSON of ``GET /v1/kv/:key``; an empty value is ``null``, as Consul writes it."""
        data: dict[str, Any] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode() if with_value and self.value else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if self.session:
            data["Session"] = self.session
        return data


@dataclass
class Session:
    """A session: its TTL (0: none), what happens to its locks, and its lock-delay."""

    id: str
    name: str
    node: str
    behavior: str
    ttl_text: str
    ttl: float
    lock_delay: float
    node_checks: list[str]
    create_index: int
    modify_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": round(self.lock_delay * 1e9),
            "Behavior": self.behavior,
            "TTL": self.ttl_text,
            "NodeChecks": list(self.node_checks),
            "ServiceChecks": None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass(frozen=True)
class TxnOp:
    """One ``{"KV": {...}}`` operation of ``PUT /v1/txn``."""

    verb: str
    key: str
    value: bytes = b""
    flags: int = 0
    index: int = 0
    session: str = ""


_READ_VERBS = {"get", "get-or-empty", "get-tree", "check-index", "check-session", "check-not-exists"}
_WRITE_VERBS = {"set", "cas", "lock", "unlock", "delete", "delete-tree", "delete-cas"}


@dataclass
class _Snapshot:
    kv: dict[str, Entry]
    tombstones: dict[str, tuple[int, float]]
    tables: dict[str, int]


@dataclass
class State:
    """KV entries, tombstones, sessions and the indexes, with Consul's rules for changing them."""

    node: str = "consul-test-server"
    session_ttl_min: float = 10.0
    clock: Callable[[], float] = time.monotonic
    #: A new Consul cluster has used some Raft entries (leader election, its
    #: node's registration) before the first KV write; the tables start empty.
    #: Starting above 1 matters: an empty table's index reads as 1, and the
    #: first write must be seen as newer.
    raft_index: int = BOOTSTRAP_INDEX
    tables: dict[str, int] = field(default_factory=lambda: {"kvs": 0, "tombstones": 0, "sessions": 0})
    kv: dict[str, Entry] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, float]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    lock_delays: dict[str, float] = field(default_factory=dict)
    #: Called after every change with the keys and the session ids it touched.
    on_change: Callable[[set[str], set[str]], None] = lambda keys, sessions: None

    # -- indexes ----------------------------------------------------------------------
    def _next_index(self) -> int:
        self.raft_index += 1
        return self.raft_index

    def kvs_index(self) -> int:
        """``X-Consul-Index`` of a single-key read: the KV tables' last change (at least 1)."""
        return max(self.tables["kvs"], self.tables["tombstones"], 1)

    def prefix_index(self, prefix: str, entries: Iterable[Entry]) -> int:
        """``X-Consul-Index`` of a recursive read: the highest index below ``prefix``, tombstones included."""
        if not prefix:
            return self.kvs_index()
        highest = max((e.modify_index for e in entries), default=0)
        for key, (index, _) in self.tombstones.items():
            if key.startswith(prefix) and index > highest:
                highest = index
        return highest if highest else self.kvs_index()

    # -- reads --------------------------------------------------------------------------
    def get(self, key: str) -> tuple[int, Entry | None]:
        return self.kvs_index(), self.kv.get(key)

    def list_prefix(self, prefix: str) -> tuple[int, list[Entry]]:
        entries = [self.kv[k] for k in sorted(self.kv) if k.startswith(prefix)]
        return self.prefix_index(prefix, entries), entries

    def keys(self, prefix: str, separator: str) -> tuple[int, list[str]]:
        """``?keys[&separator=]``: keys below ``prefix``, rolled up to the first separator after it."""
        index, entries = self.list_prefix(prefix)
        found: list[str] = []
        seen: set[str] = set()
        for entry in entries:
            key = entry.key
            if separator:
                cut = key.find(separator, len(prefix))
                if cut >= 0:
                    key = key[: cut + len(separator)]
            if key not in seen:
                seen.add(key)
                found.append(key)
        return index, found

    # -- KV writes (each is one Raft entry) -------------------------------------------------
    def _set(self, index: int, entry: Entry, *, update_session: bool) -> Entry:
        existing = self.kv.get(entry.key)
        entry = dataclasses.replace(
            entry,
            create_index=existing.create_index if existing else index,
            session=entry.session if update_session else (existing.session if existing else ""),
            lock_index=entry.lock_index if update_session else (existing.lock_index if existing else 0),
            modify_index=index,
        )
        self.kv[entry.key] = entry
        self.tables["kvs"] = index
        return entry

    def _delete(self, index: int, key: str) -> bool:
        if self.kv.pop(key, None) is None:
            return False
        self.tombstones[key] = (index, self.clock())
        self.tables["kvs"] = index
        self.tables["tombstones"] = index
        return True

    def _lock(self, index: int, entry: Entry) -> Entry | None:
        if entry.session not in self.sessions:
            raise ConsulError(500, f'invalid session "{entry.session}"')
        existing = self.kv.get(entry.key)
        if existing is not None and existing.session == entry.session:
            lock_index = existing.lock_index  # re-acquire by the holder: contents only
        elif existing is not None and existing.session:
            return None  # someone else holds it
        else:
            lock_index = (existing.lock_index if existing else 0) + 1
        return self._set(index, dataclasses.replace(entry, lock_index=lock_index), update_session=True)

    def _unlock(self, index: int, entry: Entry) -> Entry | None:
        existing = self.kv.get(entry.key)
        if existing is None or existing.session != entry.session:
            return None
        release = dataclasses.replace(entry, session="", lock_index=existing.lock_index)
        return self._set(index, release, update_session=True)

    def _cas(self, index: int, entry: Entry, cas: int) -> Entry | None:
        existing = self.kv.get(entry.key)
        if cas == 0 and existing is not None:
            return None
        if cas != 0 and (existing is None or existing.modify_index != cas):
            return None
        return self._set(index, entry, update_session=False)

    def _delete_cas(self, index: int, key: str, cas: int) -> bool:
        # Consul answers true for a key that is already gone, and false for cas=0.
        existing = self.kv.get(key)
        if existing is None or existing.modify_index != cas:
            return existing is None
        return self._delete(index, key)

    def lock_delayed(self, key: str) -> bool:
        """True while ``key`` is in the lock-delay of a session invalidated before."""
        until = self.lock_delays.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self.lock_delays[key]
            return False
        return True

    def kv_put(
        self,
        key: str,
        value: bytes,
        *,
        flags: int = 0,
        cas: int | None = None,
        acquire: str | None = None,
        release: str | None = None,
    ) -> bool:
        """``PUT /v1/kv/:key``. As in Consul, ``acquire`` wins over ``cas``, and ``release`` over both."""
        if len(value) > MAX_VALUE_SIZE:
            raise ConsulError(413, f"Value exceeds {MAX_VALUE_SIZE} byte limit")
        entry = Entry(key=key, value=value, flags=flags)
        if release is not None:
            entry = dataclasses.replace(entry, session=release)
            return self._write({key}, lambda index: self._unlock(index, entry) is not None)
        if acquire is not None:
            entry = dataclasses.replace(entry, session=acquire)
            if acquire not in self.sessions:
                raise ConsulError(500, f'invalid session "{acquire}"')
            if self.lock_delayed(key):
                return False  # checked before Raft, as Consul does
            return self._write({key}, lambda index: self._lock(index, entry) is not None)
        if cas is not None:
            return self._write({key}, lambda index: self._cas(index, entry, cas) is not None)
        return self._write({key}, lambda index: self._set(index, entry, update_session=False) is not None)

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        """``DELETE /v1/kv/:key``; ``cas`` wins over ``recurse``, as in Consul."""
        if cas is not None:
            return self._write({key}, lambda index: self._delete_cas(index, key, cas))
        if recurse:
            doomed = {k for k in self.kv if k.startswith(key)}

            def delete_tree(index: int) -> bool:
                for doomed_key in sorted(doomed):
                    self._delete(index, doomed_key)
                return True

            return self._write(doomed, delete_tree)

        def delete_one(index: int) -> bool:
            self._delete(index, key)
            return True

        return self._write({key}, delete_one)

    def _write(self, touched: set[str], body: Callable[[int], bool]) -> bool:
        index = self._next_index()
        before = self.tables["kvs"]
        result = body(index)
        if self.tables["kvs"] != before:
            self.on_change(touched, set())
        return result

    # -- transactions ---------------------------------------------------------------------
    @staticmethod
    def parse_txn(payload: Any) -> list[TxnOp]:
        """The operations of a ``/v1/txn`` body; ``ConsulError(400/413)`` if malformed."""
        if not isinstance(payload, list):
            raise ConsulError(400, "Failed to parse body: expected a JSON array of operations")
        if len(payload) > MAX_TXN_OPS:
            raise ConsulError(413, f"Transaction contains too many operations ({len(payload)} > {MAX_TXN_OPS})")
        ops: list[TxnOp] = []
        for number, raw in enumerate(payload):
            if not isinstance(raw, dict) or len(raw) != 1:
                raise ConsulError(400, f"Failed to parse body: operation {number} is not one object")
            kind, body = next(iter(raw.items()))
            if kind.lower() != "kv":
                raise ConsulError(400, f"this test server implements only KV operations, not {kind}")
            fields = {k.lower(): v for k, v in (body or {}).items()}
            verb = str(fields.get("verb", ""))
            if verb not in _READ_VERBS | _WRITE_VERBS:
                raise ConsulError(400, f'Failed to parse body: unknown KV verb "{verb}"')
            try:
                value = base64.b64decode(fields.get("value") or "", validate=True)
            except ValueError:
                raise ConsulError(400, f"Failed to parse body: operation {number}: bad base64 value") from None
            if len(value) > MAX_VALUE_SIZE:
                raise ConsulError(413, f"Value for key {fields.get('key')!r} is too large")
            ops.append(
                TxnOp(
                    verb=verb,
                    key=str(fields.get("key", "")),
                    value=value,
                    flags=int(fields.get("flags") or 0),
                    index=int(fields.get("index") or 0),
                    session=str(fields.get("session") or ""),
                )
            )
        return ops

    def txn(self, ops: list[TxnOp]) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
        """Apply ``ops`` atomically: ``(committed, results, errors)``; nothing changes unless all succeed."""
        read_only = all(op.verb in _READ_VERBS for op in ops)
        index = 0 if read_only else self._next_index()
        saved = _Snapshot(dict(self.kv), dict(self.tombstones), dict(self.tables))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        touched: set[str] = set()
        for number, op in enumerate(ops):
            try:
                out = self._txn_op(index, op, touched)
            except ConsulError as exc:
                errors.append({"OpIndex": number, "What": exc.message})
                continue
            results.extend({"KV": entry} for entry in out)
        if errors:
            self.kv, self.tombstones, self.tables = saved.kv, saved.tombstones, saved.tables
            return False, [], errors
        if touched:
            self.on_change(touched, set())
        return True, results, []

    def _txn_op(self, index: int, op: TxnOp, touched: set[str]) -> list[dict[str, Any]]:
        key = op.key
        entry = Entry(key=key, value=op.value, flags=op.flags, session=op.session)

        def out(found: Entry | None, *, with_value: bool = False) -> list[dict[str, Any]]:
            return [] if found is None else [found.to_json(with_value=with_value)]

        if op.verb == "get":
            found = self.kv.get(key)
            if found is None:
                raise ConsulError(409, f'key "{key}" doesn\'t exist')
            return out(found, with_value=True)
        if op.verb == "get-or-empty":
            return out(self.kv.get(key), with_value=True)
        if op.verb == "get-tree":
            return [self.kv[k].to_json() for k in sorted(self.kv) if k.startswith(key)]
        if op.verb == "check-index":
            found = self.kv.get(key)
            if found is None:
                raise ConsulError(409, f'failed to read key "{key}" for index check')
            if found.modify_index != op.index:
                raise ConsulError(
                    409,
                    f'failed index check for key "{key}", current modify index {found.modify_index} != {op.index}',
                )
            return out(found)
        if op.verb == "check-session":
            found = self.kv.get(key)
            current = found.session if found else ""
            if current != op.session:
                raise ConsulError(
                    409,
                    f'failed session check for key "{key}", current session "{current}" != "{op.session}"',
                )
            return out(found)
        if op.verb == "check-not-exists":
            if key in self.kv:
                raise ConsulError(409, f'key "{key}" exists')
            return []
        touched.add(key)
        if op.verb == "set":
            return out(self._set(index, entry, update_session=False))
        if op.verb == "cas":
            written = self._cas(index, entry, op.index)
            if written is None:
                raise ConsulError(409, f'failed to set key "{key}", index is stale')
            return out(written)
        if op.verb == "lock":
            if op.session not in self.sessions:
                raise ConsulError(409, f'invalid session "{op.session}"')
            if self.lock_delayed(key):
                raise ConsulError(409, f'failed to lock key "{key}" due to lock delay')
            written = self._lock(index, entry)
            if written is None:
                raise ConsulError(409, f'failed to lock key "{key}", lock is already held')
            return out(written)
        if op.verb == "unlock":
            written = self._unlock(index, entry)
            if written is None:
                raise ConsulError(409, f'failed to unlock key "{key}", lock isn\'t held, or is held by another session')
            return out(written)
        if op.verb == "delete":
            self._delete(index, key)
            return []
        if op.verb == "delete-tree":
            doomed = [k for k in sorted(self.kv) if k.startswith(key)]
            touched.update(doomed)
            for k in doomed:
                self._delete(index, k)
            return []
        if op.verb == "delete-cas":
            if not self._delete_cas(index, key, op.index):
                raise ConsulError(409, f'failed to delete key "{key}", index is stale')
            return []
        raise ConsulError(400, f"unknown verb {op.verb}")  # parse_txn let it through: a bug

    # -- tombstones -------------------------------------------------------------------------
    def reap_tombstones(self, older_than: float) -> int:
        """Forget tombstones made before ``older_than`` (a clock reading); how many went."""
        doomed = [k for k, (_, at) in self.tombstones.items() if at <= older_than]
        if not doomed:
            return 0
        index = self._next_index()
        for key in doomed:
            del self.tombstones[key]
        self.tables["tombstones"] = index
        self.on_change(set(doomed), set())
        return len(doomed)

    # -- sessions -----------------------------------------------------------------------------
    def session_create(self, body: dict[str, Any]) -> Session:
        """``PUT /v1/session/create``; Consul matches JSON field names case-insensitively."""
        fields = {k.lower(): v for k, v in body.items()}
        node = str(fields.get("node") or self.node)
        if node != self.node:
            raise ConsulError(500, f"Missing node registration for {node!r}")
        checks = fields.get("nodechecks", fields.get("checks"))
        node_checks = ["serfHealth"] if checks is None else [str(c) for c in checks]
        for check in node_checks:
            if check != "serfHealth":
                raise ConsulError(500, f"Missing check '{check}' registration")
        behavior = str(fields.get("behavior") or "release")
        if behavior not in ("release", "delete"):
            raise ConsulError(500, f"Invalid Behavior setting '{behavior}'")
        lock_delay = self._lock_delay(fields.get("lockdelay"))
        ttl_text = str(fields.get("ttl") or "")
        ttl = 0.0
        if ttl_text:
            try:
                ttl = parse_duration(ttl_text)
            except ValueError as exc:
                raise ConsulError(500, f"Session TTL '{ttl_text}' invalid: {exc}") from None
            if ttl != 0 and not self.session_ttl_min <= ttl <= SESSION_TTL_MAX:
                raise ConsulError(
                    500,
                    f"Invalid Session TTL '{round(ttl * 1e9)}', must be between "
                    f"[{format_duration(self.session_ttl_min)}={format_duration(SESSION_TTL_MAX)}]",
                )
        index = self._next_index()
        session = Session(
            id=str(uuid.uuid4()),
            name=str(fields.get("name") or ""),
            node=node,
            behavior=behavior,
            ttl_text=ttl_text,
            ttl=ttl,
            lock_delay=lock_delay,
            node_checks=node_checks,
            create_index=index,
            modify_index=index,
        )
        self.sessions[session.id] = session
        self.tables["sessions"] = index
        self.on_change(set(), {session.id})
        return session

    @staticmethod
    def _lock_delay(raw: Any) -> float:
        """``LockDelay``: a duration string, or a number (seconds below 1000, else nanoseconds)."""
        if raw is None or raw == "":
            return DEFAULT_LOCK_DELAY
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            delay = float(raw) if raw < 1000 else raw / 1e9
        else:
            try:
                delay = parse_duration(str(raw))
            except ValueError as exc:
                raise ConsulError(400, f"Request decode failed: {exc}") from None
        if delay < 0 or delay > MAX_LOCK_DELAY:
            raise ConsulError(500, f"Lock delay must be between 0 and {format_duration(MAX_LOCK_DELAY)}")
        return delay

    def session_destroy(self, session_id: str) -> None:
        """Invalidate a session: release or delete what it holds, and start their lock-delay."""
        session = self.sessions.get(session_id)
        if session is None:
            return  # idempotent, as documented
        index = self._next_index()
        held = [k for k, e in self.kv.items() if e.session == session_id]
        now = self.clock()
        for key in held:
            if session.behavior == "delete":
                self._delete(index, key)
            else:
                entry = self.kv[key]
                self._set(index, dataclasses.replace(entry, session=""), update_session=True)
            if session.lock_delay > 0:
                self.lock_delays[key] = now + session.lock_delay
        del self.sessions[session_id]
        self.tables["sessions"] = index
        self.on_change(set(held), {session_id})

    def session_renew(self, session_id: str) -> Session:
        """``PUT /v1/session/renew/:uuid``: the session (its timer is the HTTP layer's), or 404."""
        session = self.sessions.get(session_id)
        if session is None:
            raise ConsulError(404, f"Session id '{session_id}' not found")
        return session

    def session_info(self, session_id: str) -> tuple[int, list[Session]]:
        session = self.sessions.get(session_id)
        return max(self.tables["sessions"], 1), [] if session is None else [session]

    def session_list(self, node: str | None = None) -> tuple[int, list[Session]]:
        found = [s for s in self.sessions.values() if node is None or s.node == node]
        return max(self.tables["sessions"], 1), sorted(found, key=lambda s: s.create_index)

    # -- persistence ------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """Everything a restarted server needs, as JSON (lock-delays live in memory only, as in Consul)."""
        return {
            "raft_index": self.raft_index,
            "tables": self.tables,
            "kv": [dataclasses.asdict(e) | {"value": base64.b64encode(e.value).decode()} for e in self.kv.values()],
            "tombstones": {k: index for k, (index, _) in self.tombstones.items()},
            "sessions": [dataclasses.asdict(s) for s in self.sessions.values()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.raft_index = int(data["raft_index"])
        self.tables = {k: int(v) for k, v in data["tables"].items()}
        self.kv = {}
        for raw in data["kv"]:
            entry = Entry(**(raw | {"value": base64.b64decode(raw["value"])}))
            self.kv[entry.key] = entry
        now = self.clock()
        self.tombstones = {k: (int(index), now) for k, index in data["tombstones"].items()}
        self.sessions = {raw["id"]: Session(**raw) for raw in data["sessions"]}
