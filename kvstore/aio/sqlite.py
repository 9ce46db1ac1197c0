"""``sqlite`` for asyncio: the same file, schema and semantics as :mod:`kvstore.backends.sqlite`.

Native, without threads: a local sqlite call in WAL mode takes microseconds,
so the store calls sqlite on the event loop. What could block is waiting for
another connection's write lock, so the connections have no busy timeout:
a busy answer is retried here, awaiting a short, growing pause between
tries, until the connection timeout. The loop is never held while another
writer (a sync store, another process) has the file.

The sync and the async store share the file format (:mod:`kvstore.backends.sqlite_file`),
so each sees the other's writes, locks and TTLs, in one process or several.

Watches learn of changes as the sync store's do: this store's own writes
bump a change signal at once, and a monitor task (started by the first watch
or lock) polls ``PRAGMA data_version`` on its own connection every
``poll_interval``, with ``asyncio.sleep`` between polls, and bumps the signal
when another connection committed. The monitor also deletes keys whose TTL
ran out, so expiry is a change like any other.

Options (``Config.options``): ``poll_interval`` (default 0.01 s), ``lock_ttl``
(default 20 s), as for the sync store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .. import keys
from ..backends.sqlite_file import LIVE, SCHEMA, check_location, is_busy, mapped_errors
from ..errors import InvalidArgumentError, KeyExistsError, KeyModifiedError, KeyNotFoundError, KVStoreError
from ..options import positive_number
from ..store import Config, KVPair, override
from .local import AsyncChangeSignal, LocalAsyncLock, PollingWatch, children_or_none
from .store import AsyncLock, AsyncStore, AsyncWatch

T = TypeVar("T")

#: The first and the longest pause between tries while another connection holds the write lock.
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05

_NEXT_EXPIRY = "SELECT min(expires) FROM kv WHERE expires IS NOT NULL"


class AsyncSQLiteStore(AsyncStore):
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
        check_location(self.path)
        self._conn: sqlite3.Connection | None = None
        self._opening = asyncio.Lock()
        self._signal = AsyncChangeSignal()
        self._monitor: asyncio.Task[None] | None = None
        self._closed = False

    # -- connections and busy retries ----------------------------------------------
    async def _retrying(self, step: Callable[[], T]) -> T:
        """Run ``step`` (sqlite calls, no awaits), retrying while another connection holds the lock."""
        deadline = time.monotonic() + self._timeout
        pause = FIRST_PAUSE
        while True:
            if self._closed:
                raise KVStoreError(f"sqlite store {self.path} is closed")
            try:
                return step()
            except sqlite3.Error as exc:
                if not is_busy(exc) or time.monotonic() + pause > deadline:
                    with mapped_errors(self.path):
                        raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    def _open_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:  # one script, so that processes opening a new file at once create the schema exactly once
                conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    async def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and not self._closed:
            return self._conn
        async with self._opening:
            if self._conn is None:
                self._conn = await self._retrying(self._open_once)
        if self._closed:
            raise KVStoreError(f"sqlite store {self.path} is closed")
        return self._conn

    async def _read(self, step: Callable[[sqlite3.Connection, float], T]) -> T:
        conn = await self._connection()
        return await self._retrying(lambda: step(conn, time.time()))

    async def _transaction(self, body: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run ``body`` in a write transaction (expired keys purged first); announce the change."""
        conn = await self._connection()
        await self._retrying(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            with mapped_errors(self.path):
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
        return "key > ? AND key < ?", (full + "/", full + "0")  # '0' follows '/'

    def _write(self, conn: sqlite3.Connection, now: float, key: str, value: bytes, ttl: float | None) -> KVPair:
        row = conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'rev' RETURNING value").fetchone()
        index = int(row[0])
        full = self._full(key)
        conn.execute(
            "INSERT INTO kv(key, value, idx, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, idx = excluded.idx, "
            "expires = excluded.expires",
            (full, value, index, None if ttl is None else now + ttl),
        )
        return self._pair(full, value, index)

    @staticmethod
    def _current_index(conn: sqlite3.Connection, full: str, now: float) -> int | None:
        row = conn.execute(f"SELECT idx FROM kv WHERE key = ? AND {LIVE}", (full, now)).fetchone()
        return None if row is None else int(row[0])

    # -- the contract ------------------------------------------------------------
    @override
    async def _put(self, key: str, value: bytes, ttl: float | None, is_dir: bool) -> None:
        await self._transaction(lambda conn, now: self._write(conn, now, key, value, ttl))

    @override
    async def _get(self, key: str) -> KVPair:
        full = self._full(key)
        sql = f"SELECT value, idx FROM kv WHERE key = ? AND {LIVE}"
        row = await self._read(lambda conn, now: conn.execute(sql, (full, now)).fetchone())
        if row is None:
            raise KeyNotFoundError(f"key not found: {key}")
        return self._pair(full, row[0], row[1])

    @override
    async def _delete(self, key: str) -> None:
        full = self._full(key)
        await self._transaction(lambda conn, now: conn.execute("DELETE FROM kv WHERE key = ?", (full,)))

    @override
    async def _list(self, directory: str) -> list[KVPair]:
        condition, args = self._range(directory)
        sql = f"SELECT key, value, idx FROM kv WHERE {condition} AND {LIVE} ORDER BY key"

        def step(conn: sqlite3.Connection, now: float) -> tuple[list[tuple[str, bytes, int]], bool]:
            rows = conn.execute(sql, (*args, now)).fetchall()
            found = bool(rows) or (
                bool(directory) and self._current_index(conn, self._full(directory), now) is not None
            )
            return rows, found

        rows, found = await self._read(step)
        if not found:
            raise KeyNotFoundError(f"directory not found: {directory or '/'}")
        return [self._pair(k, v, i) for k, v, i in rows]

    @override
    async def _delete_tree(self, directory: str) -> None:
        condition, args = self._range(directory)
        full = self._full(directory)
        sql = f"DELETE FROM kv WHERE ({condition}) OR key = ?"
        await self._transaction(lambda conn, now: conn.execute(sql, (*args, full)))

    @override
    def _watch(self, key: str) -> AsyncWatch[KVPair]:
        async def read() -> KVPair:
            self._ensure_monitor()
            return await self._get(key)

        return PollingWatch(self._signal, read)

    @override
    def _watch_tree(self, directory: str) -> AsyncWatch[list[KVPair]]:
        async def read() -> list[KVPair]:
            self._ensure_monitor()
            return await children_or_none(self._list, directory)

        return PollingWatch(self._signal, read)

    @override
    async def _atomic_put(self, key: str, value: bytes, previous: KVPair | None, ttl: float | None) -> KVPair:
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

        return await self._transaction(body)

    @override
    async def _atomic_delete(self, key: str, previous: KVPair) -> None:
        full = self._full(key)

        def body(conn: sqlite3.Connection, now: float) -> None:
            current = self._current_index(conn, full, now)
            if current is None:
                raise KeyNotFoundError(f"key not found: {key}")
            if current != previous.last_index:
                raise KeyModifiedError(f"key modified: {key}")
            conn.execute("DELETE FROM kv WHERE key = ?", (full,))

        await self._transaction(body)

    @override
    def _new_lock(self, key: str, value: bytes, ttl: float | None) -> AsyncLock:
        self._ensure_monitor_soon()
        return LocalAsyncLock(self, self._signal, key, value, ttl or self._lock_ttl)

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signal.bump()
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
        if self._conn is not None:
            self._conn.close()

    # -- the monitor: other connections' writes and TTL expiry ----------------------
    def _ensure_monitor_soon(self) -> None:
        """Start the monitor if a loop runs here (``new_lock`` is a plain call; ``acquire`` starts it otherwise)."""
        with contextlib.suppress(RuntimeError):
            self._ensure_monitor()

    def _ensure_monitor(self) -> None:
        if self._monitor is None and not self._closed:
            self._monitor = asyncio.get_running_loop().create_task(self._monitor_loop(), name="kvstore-sqlite-monitor")

    async def _monitor_loop(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            seen_version: int | None = None
            next_expiry: float | None = None
            while not self._closed:
                await asyncio.sleep(self._poll_interval)
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen_version:
                        seen_version = version
                        self._signal.bump()
                        next_expiry = conn.execute(_NEXT_EXPIRY).fetchone()[0]
                    if next_expiry is not None and time.time() >= next_expiry:
                        next_expiry = self._purge(conn)
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    continue  # a busy database: the next round tries again
        finally:
            conn.close()

    def _purge(self, conn: sqlite3.Connection) -> float | None:
        """Delete the expired keys (announcing it); the next expiry."""
        conn.execute("BEGIN IMMEDIATE")
        purged = conn.execute("DELETE FROM kv WHERE expires <= ?", (time.time(),)).rowcount
        next_expiry: float | None = conn.execute(_NEXT_EXPIRY).fetchone()[0]
        conn.execute("COMMIT")
        if purged:
            self._signal.bump()
        return next_expiry
