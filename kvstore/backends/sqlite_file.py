"""The sqlite file format and its error mapping, shared by the sync and the async sqlite stores.

Both stores (``kvstore.backends.sqlite`` and ``kvstore.aio.sqlite``) read and
write the same file, even from different processes at once, so the schema,
the "still alive" condition and the way sqlite's errors become kvstore's
errors live here, once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator

from ..errors import KVStoreError, NotReachableError

#: One table holds the keys; ``meta.rev`` gives every write a ``last_index`` never reused.
SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    idx INTEGER NOT NULL,
    expires REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('rev', 0);
"""
#: The condition a row must meet to be alive (its TTL not run out); the argument is ``time.time()``.
LIVE = "(expires IS NULL OR expires > ?)"


def check_location(path: str) -> None:
    """Say plainly why a file cannot be used, before sqlite says "unable to open"."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise NotReachableError(f"sqlite store {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise NotReachableError(f"sqlite store {path}: is a directory, not a file")


@contextlib.contextmanager
def mapped_errors(path: str) -> Iterator[None]:
    """Turn sqlite3 and OS errors into kvstore errors that name the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise NotReachableError(f"sqlite store {path}: busy for too long ({text})") from None
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            raise NotReachableError(_access_problem(path, text)) from None
        raise KVStoreError(f"sqlite store {path}: {text}") from None
    except sqlite3.DatabaseError as exc:
        raise KVStoreError(f"sqlite store {path}: {exc}") from None
    except sqlite3.Error as exc:
        raise KVStoreError(f"sqlite store {path}: {exc}") from None
    except OSError as exc:
        raise NotReachableError(f"sqlite store {path}: {os.strerror(exc.errno or errno.EIO)}") from None


def _access_problem(path: str, text: str) -> str:
    directory = os.path.dirname(path) or "."
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return f"sqlite store {path}: permission denied (cannot read and write the file)"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"sqlite store {path}: permission denied (cannot write in {directory})"
    return f"sqlite store {path}: cannot open ({text})"


def is_busy(exc: sqlite3.Error) -> bool:
    """True for "another connection holds the lock": worth retrying, not a failure of the store.

    The async store opens its connections with no busy timeout (sqlite would
    otherwise wait inside the call, blocking the event loop) and retries these
    itself, awaiting between tries.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    text = str(exc)
    return "locked" in text or "busy" in text
