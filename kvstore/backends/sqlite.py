"""``sqlite``: the embedded, file-backed store that several processes can share.

One table holds the keys; a counter in ``meta`` gives every write a
``last_index`` that is never reused, even after a delete. WAL mode lets
readers run beside the single writer, and ``BEGIN IMMEDIATE`` serialises the
read-check-write of the atomic calls across processes.

Processes learn of each other's writes by polling ``PRAGMA data_version``
(a few microseconds a call) from one monitor thread per store, started when
the first watch or lock needs it; it also deletes keys whose TTL ran out, so
TTL expiry is a change like any other for every watcher.

Options (``Config.options``): ``poll_interval`` in seconds (default 0.01),
``lock_ttl`` for locks made without a TTL (default 20: a holder that dies
loses the lock within it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from .. import keys
from ..errors import (
    InvalidArgumentError,
    KeyExistsError,
    KeyModifiedError,
    KeyNotFoundError,
    KVStoreError,
    NotReachableError,
)
from ..options import positive_number
from ..store import Config, KVPair, Lock, Store, Watch, override
from ._local import ChangeSignal, LocalLock, children_or_none, start_polling_watch
from .sqlite_file import LIVE as _LIVE
from .sqlite_file import SCHEMA as _SCHEMA
from .sqlite_file import check_location as _check_location
from .sqlite_file import mapped_errors as _mapped_errors

T = TypeVar("T")


class SQLiteStore(Store):
    """A store in one SQLite file; ``addrs`` is ``[path]``."""

    def __init__(self, addrs: Sequence[str], config: Config | None = None) -> None:
        super().__init__(addrs, config)
        if len(self.addrs) != 1 or not isinstance(self.addrs[0], str) or not self.addrs[0]:
            raise InvalidArgumentError(f"sqlite takes exactly one file path, not {self.addrs!r}")
        self.path = os.path.abspath(self.addrs[0])
        options = self.config.options
        self._poll_interval = positive_number("sqlite", options, "poll_interval", 0.01)
        self._lock_ttl = positive_number("sqlite", options, "lock_ttl", 20.0)
        self._timeout = self.config.connection_timeout
        _check_location(self.path)
        self._mutex = threading.RLock()
        self._conn = self._connect()
        self._signal = ChangeSignal()
        self._monitor: threading.Thread | None = None
        self._closed = threading.Event()

    # -- connections and transactions ------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """Open the file, switch it to WAL and create the schema once.

        Several processes opening a new file at the same moment can get
        SQLITE_BUSY from the journal-mode switch without sqlite's busy
        handler being consulted, so that step is retried up to the
        connection timeout.
        """
        deadline = time.monotonic() + self._timeout
        pause = 0.005
        while True:
            try:
                with _mapped_errors(self.path):
                    return self._connect_once()
            except NotReachableError as exc:
                if "busy" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _connect_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # One script, so that processes opening a new file at once
            # create the schema exactly once.
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._mutex, _mapped_errors(self.path):
            if self._closed.is_set():
                raise KVStoreError(f"sqlite store {self.path} is closed")
            yield self._conn

    def _transaction(self, body: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run ``body`` in a write transaction; expired keys are purged first."""
        with self._reading() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                conn.execute("DELETE FROM kv WHERE expires <= ?", (now,))
                result = body(conn, now)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        self._signal.bump()
        return result

    # -- key mapping -----------------------------------------------------------
    def _full(self, key: str) -> str:
        return keys.join(self.prefix, key)

    def _pair(self, full_key: str, value: bytes, index: int) -> KVPair:
        return KVPair(keys.strip_prefix(self.prefix, full_key), bytes(value), index)

    def _range(self, directory: str) -> tuple[str, tuple[str, ...]]:
        """SQL condition and arguments for "strictly below ``directory``"."""
        full = self._full(directory)
        if not full:
            return "1", ()
        # '0' is the character after '/': the keys between cover exactly full/...
        return "key > ? AND key < ?", (full + "/", full + "0")

    @staticmethod
    def _next_index(conn: sqlite3.Connection) -> int:
        row = conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'rev' RETURNING value").fetchone()
        return int(row[0])

    def _write(self, conn: sqlite3.Connection, now: float, key: str, value: bytes, ttl: float | None) -> KVPair:
        index = self._next_index(conn)
        expires = None if ttl is None else now + ttl
        full = self._full(key)
        conn.execute(
            "INSERT INTO kv(key, value, idx, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, idx = excluded.idx, "
            "expires = excluded.expires",
            (full, value, index, expires),
        )
        return self._pair(full, value, index)

    @staticmethod
    def _current_index(conn: sqlite3.Connection, full: str, now: float) -> int | None:
        row = conn.execute(f"SELECT idx FROM kv WHERE key = ? AND {_LIVE}", (full, now)).fetchone()
        return None if row is None else int(row[0])

    # -- the contract ------------------------------------------------------------
    @override
    def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        self._transaction(lambda conn, now: self._write(conn, now, key, value, ttl))

    @override
    def _get(self, key: str) -> KVPair:
        full = self._full(key)
        with self._reading() as conn:
            row = conn.execute(f"SELECT value, idx FROM kv WHERE key = ? AND {_LIVE}", (full, time.time())).fetchone()
        if row is None:
            raise KeyNotFoundError(f"key not found: {key}")
        return self._pair(full, row[0], row[1])

    @override
    def _delete(self, key: str) -> None:
        full = self._full(key)
        self._transaction(lambda conn, now: conn.execute("DELETE FROM kv WHERE key = ?", (full,)))

    @override
    def _list(self, directory: str) -> list[KVPair]:
        condition, args = self._range(directory)
        now = time.time()
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT key, value, idx FROM kv WHERE {condition} AND {_LIVE} ORDER BY key",
                (*args, now),
            ).fetchall()
            if not rows and (not directory or self._current_index(conn, self._full(directory), now) is None):
                raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return [self._pair(k, v, i) for k, v, i in rows]

    @override
    def _delete_tree(self, directory: str) -> None:
        condition, args = self._range(directory)
        full = self._full(directory)

        def body(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(f"DELETE FROM kv WHERE ({condition}) OR key = ?", (*args, full))

        self._transaction(body)

    @override
    def _watch(self, key: str) -> Watch[KVPair]:
        self._ensure_monitor()
        return start_polling_watch(self._signal, lambda: self._get(key))

    @override
    def _watch_tree(self, directory: str) -> Watch[list[KVPair]]:
        self._ensure_monitor()
        return start_polling_watch(self._signal, lambda: children_or_none(self._list, directory))

    @override
    def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
        full = self._full(key)

        def body(conn: sqlite3.Connection, now: float) -> KVPair:
            current = self._current_index(conn, full, now)
            if previous is None:
                if current is not None:
                    raise KeyExistsError(f"key exists: {key}")
            elif current is None:
                raise KeyNotFoundError(f"key not found: {key}")
            elif current != previous.last_index:
                raise KeyModifiedError(f"key modified: {key}")
            return self._write(conn, now, key, value, ttl)

        return self._transaction(body)

    @override
    def _atomic_delete(self, key: str, previous: KVPair) -> None:
        full = self._full(key)

        def body(conn: sqlite3.Connection, now: float) -> None:
            current = self._current_index(conn, full, now)
            if current is None:
                raise KeyNotFoundError(f"key not found: {key}")
            if current != previous.last_index:
                raise KeyModifiedError(f"key modified: {key}")
            conn.execute("DELETE FROM kv WHERE key = ?", (full,))

        self._transaction(body)

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> Lock:
        self._ensure_monitor()
        return LocalLock(self, self._signal, key, value, ttl or self._lock_ttl)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        with self._mutex:
            if self._closed.is_set():
                return
            self._closed.set()
            self._conn.close()
        self._signal.bump()
        if self._monitor is not None:
            self._monitor.join(timeout=2)

    # -- the monitor: other processes' writes and TTL expiry ----------------------
    def _ensure_monitor(self) -> None:
        with self._mutex:
            if self._monitor is None and not self._closed.is_set():
                self._monitor = threading.Thread(target=self._monitor_loop, name="kvstore-sqlite-monitor", daemon=True)
                self._monitor.start()

    def _monitor_loop(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            seen_version: int | None = None
            next_expiry: float | None = None
            while not self._closed.wait(self._poll_interval):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen_version:
                        seen_version = version
                        self._signal.bump()
                        next_expiry = conn.execute("SELECT min(expires) FROM kv WHERE expires IS NOT NULL").fetchone()[
                            0
                        ]
                    if next_expiry is not None and time.time() >= next_expiry:
                        conn.execute("BEGIN IMMEDIATE")
                        purged = conn.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),)).rowcount
                        next_expiry = conn.execute("SELECT min(expires) FROM kv WHERE expires IS NOT NULL").fetchone()[
                            0
                        ]
                        conn.execute("COMMIT")
                        if purged:
                            self._signal.bump()
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    continue  # a busy database: the next round tries again
        finally:
            conn.close()
