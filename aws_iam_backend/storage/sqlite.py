"""SQLite storage: the embedded default, safe across threads and processes sharing one file.

The database runs in WAL mode with ``synchronous=FULL``, so a write is on disk when
``put`` or ``delete`` returns and readers never block writers. Writes take the
write lock up front (``BEGIN IMMEDIATE``) and every connection waits up to
``busy_timeout`` seconds for a lock held by another thread or process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..errors import InternalError
from ..interfaces import JSONDict
from .memory import decode_document, encode_document

_MAX_IDLE = 8
_MAX_CHAR = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def _storage_error(exc: BaseException) -> InternalError:
    """A message naming only the SQLite result code, never keys or values."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return InternalError(f"storage error: {name}")


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound).

    SQLite's BINARY collation compares UTF-8 bytes, which orders like code points,
    so ``prefix <= key < _prefix_end(prefix)`` selects exactly the keys with that prefix.
    """
    stem = prefix.rstrip(chr(_MAX_CHAR))
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stem[:-1] + chr(following)


class SQLiteStorage:
    """Documents in one table ``kv(key TEXT PRIMARY KEY, value TEXT)`` of the file at ``path``.

    Connections come from a small pool, so any number of threads may use one
    instance. Raises :class:`InternalError` (``storage error: <SQLite code>``) on any
    failure, including when the file cannot be opened or written.
    """

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        with self._connection() as conn:
            self._run(
                conn, "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise InternalError("storage error: WAL mode unavailable")
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise InternalError("storage error: closed")
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        except (sqlite3.Error, UnicodeError) as exc:
            raise _storage_error(exc) from exc
        finally:
            if conn is not None:
                self._release(conn)

    def _release(self, conn: sqlite3.Connection) -> None:
        """Return ``conn`` to the pool, or close it (pool full, storage closed, or broken)."""
        try:
            if conn.in_transaction:
                conn.rollback()
        except sqlite3.Error:
            conn.close()
            return
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    @staticmethod
    def _run(conn: sqlite3.Connection, sql: str, params: tuple[str, ...] = ()) -> int:
        """Execute one write statement in its own immediate transaction; rows changed."""
        conn.execute("BEGIN IMMEDIATE")
        changed = conn.execute(sql, params).rowcount
        conn.execute("COMMIT")
        return changed

    @staticmethod
    def _run_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[str, str]]) -> None:
        """Execute one write statement for every row, in one immediate transaction."""
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")

    def get(self, key: str) -> JSONDict | None:
        """The document at ``key``, or None."""
        with self._connection() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else decode_document(row[0])

    def put(self, key: str, value: JSONDict) -> None:
        """Store ``value`` at ``key``, replacing any previous document."""
        text = encode_document(value)
        with self._connection() as conn:
            self._run(
                conn,
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def put_many(self, items: Mapping[str, JSONDict]) -> None:
        """Store several documents in one transaction (one fsync): all or none."""
        rows = [(key, encode_document(value)) for key, value in items.items()]
        with self._connection() as conn:
            self._run_many(
                conn,
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def create(self, key: str, value: JSONDict) -> bool:
        """Store ``value`` only if ``key`` is absent (atomic across processes)."""
        text = encode_document(value)
        with self._connection() as conn:
            changed = self._run(
                conn,
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, text),
            )
        return changed == 1

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        with self._connection() as conn:
            self._run(conn, "DELETE FROM kv WHERE key = ?", (key,))

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        end = _prefix_end(prefix)
        with self._connection() as conn:
            if end is None:
                cursor = conn.execute("SELECT key FROM kv WHERE key >= ? ORDER BY key", (prefix,))
            else:
                cursor = conn.execute(
                    "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key", (prefix, end)
                )
            keys = [row[0] for row in cursor]
        return [k[len(prefix) :] for k in keys]

    def close(self) -> None:
        """Close every connection; later calls raise :class:`InternalError`."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
