"""SQLite storage: the embedded default, safe across threads and processes sharing one file.

The database runs in WAL mode with ``synchronous=FULL``, so a commit is on disk (one
fsync of the WAL) when :meth:`SQLiteStorage.commit` returns and readers never block
writers. A commit takes the write lock up front (``BEGIN IMMEDIATE``), checks every
``expect`` and applies every operation in that one transaction; every connection waits
up to ``busy_timeout`` seconds for a lock held by another thread or process.

The schema is versioned with ``PRAGMA user_version`` and migrated in place when a file
is opened (under ``BEGIN IMMEDIATE``, so processes starting at once are safe):

1. ``kv(key, value, version, expires_at)``, a partial index on ``expires_at`` for
   :meth:`SQLiteStorage.expired`, and ``kv_version``, the one-row counter every version
   comes from (so versions never repeat, even after a delete and re-create). A file of
   the previous release (``kv(key, value)``, ``user_version`` 0) keeps its documents,
   which get versions 1, 2, ... in key order.

The database file is created with mode 0600 before SQLite opens it, and an existing one
that group or others may access is tightened to 0600. SQLite gives the ``-wal`` and
``-shm`` files it creates the mode of the database file; leftover ones are tightened too.
Deleted content is overwritten (``secure_delete``), so a removed document does not linger
in the file's free pages.

:class:`AsyncSQLiteStorage` is the same store for asyncio: the stdlib driver blocks, so it
runs a :class:`SQLiteStorage` on one thread of its own (as aiosqlite does) and awaits each
call's result there, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import random
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import TypeVar

from aws_iam_backend.errors import ConflictError, InternalError, StorageUnavailableError
from aws_iam_backend.io.protocols import ABSENT, Check, Document, Operation, Put
from aws_iam_backend.io.storage.memory import decode_document, encode_document
from aws_iam_backend.io.storage.ops import check_operations, prefix_end

_T = TypeVar("_T")

_MAX_IDLE = 8
_FILE_MODE = 0o600
_SIDECARS = ("-wal", "-shm", "-journal")
_ERRORS = (sqlite3.Error, UnicodeError, OverflowError)

_READ = "SELECT key, value, version, expires_at FROM kv WHERE key = ?"
# Keys under a prefix: ``key >= prefix`` and, unless the prefix has no end, ``key < end``.
_LIST = "SELECT key FROM kv WHERE key >= ? ORDER BY key"
_LIST_BOUNDED = "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key"
_EXPIRED = (
    "SELECT key, value, version, expires_at FROM kv INDEXED BY kv_expires_at "
    "WHERE expires_at IS NOT NULL AND expires_at <= ? AND key >= ? "
    "ORDER BY expires_at, key LIMIT ?"
)
_EXPIRED_BOUNDED = (
    "SELECT key, value, version, expires_at FROM kv INDEXED BY kv_expires_at "
    "WHERE expires_at IS NOT NULL AND expires_at <= ? AND key >= ? AND key < ? "
    "ORDER BY expires_at, key LIMIT ?"
)
_UPSERT = (
    "INSERT INTO kv (key, value, version, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
    "expires_at = excluded.expires_at"
)


def _code(exc: BaseException) -> str:
    """The SQLite result code of ``exc`` (its type name if it has none), never its text."""
    return getattr(exc, "sqlite_errorname", None) or type(exc).__name__


def _storage_error(exc: BaseException) -> InternalError:
    """A message naming only the SQLite result code, never keys or values; a lock still
    held by another process after the busy timeout is a retryable 503."""
    code = _code(exc)
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return StorageUnavailableError(f"storage error: {code} (the database stayed locked)")
    return InternalError(f"storage error: {code}")


def _key_range(prefix: str) -> tuple[str, ...]:
    """``(prefix,)`` or ``(prefix, end)``: the bounds of the keys starting with ``prefix``."""
    end = prefix_end(prefix)
    return (prefix,) if end is None else (prefix, end)


def _migrate_1(conn: sqlite3.Connection) -> None:
    """Versioned documents with an expiry index and a version counter."""
    old = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'"
    ).fetchone()
    if old is not None:  # the previous release: kv(key, value)
        conn.execute("ALTER TABLE kv RENAME TO kv_v0")
    conn.execute(
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "version INTEGER NOT NULL, expires_at REAL)"
    )
    if old is not None:
        conn.execute(
            "INSERT INTO kv (key, value, version, expires_at) "
            "SELECT key, value, row_number() OVER (ORDER BY key), NULL FROM kv_v0"
        )
        conn.execute("DROP TABLE kv_v0")
        # Index what the previous release stored with an expiry, so tidy finds it:
        # token records (expire_time, RFC 3339) and replay claims (expires, epoch).
        conn.execute(
            "UPDATE kv SET expires_at = (julianday(json_extract(value, '$.expire_time')) "
            "- 2440587.5) * 86400.0 WHERE json_valid(value) AND (key LIKE 'token/%' "
            "OR key LIKE '%/token/%') AND json_type(value, '$.expire_time') = 'text'"
        )
        conn.execute(
            "UPDATE kv SET expires_at = json_extract(value, '$.expires') "
            "WHERE json_valid(value) AND (key LIKE 'replay/%' OR key LIKE '%/replay/%') "
            "AND json_type(value, '$.expires') IN ('integer', 'real')"
        )
    conn.execute("CREATE INDEX kv_expires_at ON kv (expires_at, key) WHERE expires_at IS NOT NULL")
    conn.execute(
        "CREATE TABLE kv_version (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO kv_version (id, last) SELECT 1, coalesce(max(version), 0) FROM kv")


_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_1,)
SCHEMA_VERSION = len(_MIGRATIONS)


def _tighten(path: str) -> None:
    """Make the regular file at ``path`` (if any) inaccessible to group and others."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~_FILE_MODE:
        os.chmod(path, stat.S_IMODE(info.st_mode) & _FILE_MODE)


def _prepare_file(path: str) -> None:
    """Create the database file with mode 0600, or tighten it and any leftover WAL files.

    An :class:`OSError` while creating it is left for SQLite to report (as
    ``SQLITE_CANTOPEN``); one while tightening an existing file is raised.
    """
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE))
    _tighten_all(path)


def _tighten_all(path: str) -> None:
    """:func:`_tighten` the database file and its ``-wal``, ``-shm`` and ``-journal``."""
    for name in (path, *(path + suffix for suffix in _SIDECARS)):
        _tighten(name)


def _rollback(conn: sqlite3.Connection) -> None:
    """End the open transaction of ``conn``, if any (a failure is left to the pool)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _row_document(row: tuple[object, ...]) -> Document:
    key, text, version, expires_at = row
    if (
        not isinstance(key, str)
        or not isinstance(text, str)
        or type(version) is not int
        or version < 1
        or not (expires_at is None or isinstance(expires_at, float))
    ):
        raise InternalError("storage error: corrupt document")
    return Document(key, decode_document(text), version, expires_at)


def _apply(
    conn: sqlite3.Connection, operations: Sequence[Operation], texts: Sequence[str | None]
) -> tuple[int, ...]:
    """Check every ``expect`` and apply ``operations`` inside the open transaction."""
    for op in operations:
        if op.expect is None:
            continue
        row = conn.execute("SELECT version FROM kv WHERE key = ?", (op.key,)).fetchone()
        if (ABSENT if row is None else row[0]) != op.expect:
            raise ConflictError(op.key)
    puts = sum(text is not None for text in texts)
    version = 0
    if puts:
        conn.execute("UPDATE kv_version SET last = last + ? WHERE id = 1", (puts,))
        row = conn.execute("SELECT last FROM kv_version WHERE id = 1").fetchone()
        if row is None or type(row[0]) is not int:
            raise InternalError("storage error: corrupt version counter")
        version = row[0] - puts
    versions: list[int] = []
    for op, text in zip(operations, texts, strict=True):
        if isinstance(op, Check):
            versions.append(op.expect)  # checked above, held by the write transaction
        elif text is None:
            conn.execute("DELETE FROM kv WHERE key = ?", (op.key,))
            versions.append(0)
        else:
            version += 1
            expires_at = getattr(op, "expires_at", None)
            if expires_at is not None:
                expires_at = float(expires_at)
            conn.execute(_UPSERT, (op.key, text, version, expires_at))
            versions.append(version)
    return tuple(versions)


class SQLiteStorage:
    """Versioned documents in the table ``kv`` of the SQLite file at ``path``.

    Connections come from a small pool, so any number of threads may use one instance,
    and any number of processes may open the same file. Failures raise
    :class:`InternalError`: ``storage error: cannot open SQLite database <path>: <SQLite
    code>`` when the file cannot be opened or migrated, ``storage error: <SQLite code>``
    otherwise (messages never contain keys or values).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self._path = os.fspath(path)
        if self._path in ("", ":memory:"):
            raise ValueError("SQLiteStorage needs a file path")
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._restrict(_prepare_file)
        try:
            with self._connection() as conn:
                try:
                    self._migrate(conn)
                except _ERRORS as exc:
                    raise self._open_error(_code(exc)) from exc
            # SQLite gives the -wal and -shm files it creates the database file's mode.
            self._restrict(_tighten_all)
        except BaseException:
            self.close()
            raise

    def _restrict(self, action: Callable[[str], None]) -> None:
        try:
            action(self._path)
        except OSError as exc:
            reason = f"cannot restrict its mode to 0600 ({type(exc).__name__})"
            raise self._open_error(reason) from exc

    def __repr__(self) -> str:
        return f"SQLiteStorage({self._path!r})"

    def _open_error(self, reason: str) -> InternalError:
        return InternalError(f"storage error: cannot open SQLite database {self._path}: {reason}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, one numbered migration at a time."""
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise self._open_error(
                    f"schema version {current} is newer than this release supports"
                )
            for number in range(current + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[number - 1](conn)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except _ERRORS as exc:
            raise self._open_error(_code(exc)) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._open_error("WAL mode unavailable")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, _ERRORS):
                raise self._open_error(_code(exc)) from exc
            raise
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise InternalError("storage error: closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except _ERRORS as exc:
            raise _storage_error(exc) from exc
        finally:
            self._release(conn)

    def _release(self, conn: sqlite3.Connection) -> None:
        """Return ``conn`` to the pool, or close it (pool full, storage closed, or broken)."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            return
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        with self._connection() as conn:
            row = conn.execute(_READ, (key,)).fetchone()
        return None if row is None else _row_document(row)

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply every operation or none (:class:`ConflictError`); the new versions.

        One immediate transaction checks every ``expect``, takes the versions from the
        counter and applies the operations: one fsync.
        """
        result = self.commit_group([operations])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def commit_group(
        self, commits: Sequence[Sequence[Operation]]
    ) -> builtins.list[tuple[int, ...] | Exception]:
        """Apply several commits in one transaction, each atomically and on its own: one
        whose condition fails (or whose value cannot be stored) gets its exception and
        changes nothing, the others are applied. One fsync for all; the result of each
        commit, in order. A storage failure raises for all of them."""
        results: builtins.list[tuple[int, ...] | Exception] = []
        prepared: builtins.list[tuple[int, Sequence[Operation], builtins.list[str | None]]] = []
        for operations in commits:
            try:
                check_operations(operations)
                texts = [
                    encode_document(op.value) if isinstance(op, Put) else None
                    for op in operations
                ]
            except Exception as exc:  # that commit's error, not the group's
                results.append(exc)
                continue
            prepared.append((len(results), operations, texts))
            results.append(())  # its versions, below
        if not prepared:
            return results
        # Threads of this process queue here, in order; other processes' write locks are
        # waited for in short steps (_begin_write).
        with self._write_lock, self._connection() as conn:
            self._begin_write(conn)
            try:
                for index, operations, texts in prepared:
                    conn.execute("SAVEPOINT one_commit")
                    try:
                        results[index] = _apply(conn, operations, texts)
                    except ConflictError as exc:
                        conn.execute("ROLLBACK TO one_commit")
                        results[index] = exc
                    conn.execute("RELEASE one_commit")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return results

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock in short, jittered
        steps (SQLite's own busy handler sleeps up to 100 ms a step, so a writer that
        just missed the lock could wait far longer than the holder needs it), up to the
        busy timeout; then the busy error (a 503)."""
        deadline = time.monotonic() + self._busy_timeout
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if _code(exc) != "SQLITE_BUSY" or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(0.0005, 0.002))
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        bounds = _key_range(prefix)
        with self._connection() as conn:
            cursor = conn.execute(_LIST if len(bounds) == 1 else _LIST_BOUNDED, bounds)
            keys = [row[0] for row in cursor]
        return [k[len(prefix) :] for k in keys]

    def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` expiring by ``before``, soonest first.

        Walks the ``expires_at`` index from its start.
        """
        if limit <= 0:
            return []
        bounds = _key_range(prefix)
        query = _EXPIRED if len(bounds) == 1 else _EXPIRED_BOUNDED
        with self._connection() as conn:
            rows = conn.execute(query, (float(before), *bounds, limit)).fetchall()
        return [_row_document(row) for row in rows]

    def close(self) -> None:
        """Close every connection; later calls raise :class:`InternalError`."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AsyncSQLiteStorage:
    """:class:`SQLiteStorage` for asyncio: every call runs on one dedicated thread.

    The thread (a single-thread executor) opens and migrates the file first, then runs
    each call in the order it was made (commits waiting together as one group: see
    :meth:`commit`), while the awaiting task waits without blocking the event loop.
    Cancelling an await only stops the waiting: a call already running (a commit
    included) runs to its end, fully applied or not at all, and one still
    queued is dropped before it starts. Calls of one instance are serialised on its
    thread; open several instances (or processes) on one file for parallel readers.

    Nothing blocks in the constructor: an error opening the file is raised by the first
    call, or by ``await storage.open()`` to find out at startup. :meth:`aclose` closes
    the connection and ends the thread; later calls raise :class:`InternalError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self._path = os.fspath(path)
        if self._path in ("", ":memory:"):
            raise ValueError("AsyncSQLiteStorage needs a file path")
        self._busy_timeout = busy_timeout
        self._storage: SQLiteStorage | None = None  # used on the thread only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aws-iam-sqlite")
        self._queue_lock = threading.Lock()
        self._queue: builtins.list[tuple[builtins.list[Operation], Future[tuple[int, ...]]]] = []
        self._draining = False  # a _drain is submitted or running
        self._executor.submit(self._start)

    def __repr__(self) -> str:
        return f"AsyncSQLiteStorage({self._path!r})"

    def _start(self) -> None:
        """Open the file ahead of the first call (which reports a failure, trying again)."""
        with contextlib.suppress(Exception):
            self._opened()

    def _opened(self) -> SQLiteStorage:
        if self._storage is None:
            self._storage = SQLiteStorage(self._path, busy_timeout=self._busy_timeout)
        return self._storage

    def _on_thread(self, work: Callable[[SQLiteStorage], _T]) -> _T:
        return work(self._opened())

    async def _call(self, work: Callable[[SQLiteStorage], _T]) -> _T:
        """``work(storage)`` on the storage's thread, awaited."""
        try:
            future = self._executor.submit(self._on_thread, work)
        except RuntimeError:  # shut down
            raise InternalError("storage error: closed") from None
        # Cancelling this await cancels ``future`` only if it has not started yet.
        return await asyncio.wrap_future(future)

    async def open(self) -> None:
        """Wait until the file is open and migrated; its error if it could not be."""
        await self._call(lambda storage: None)

    async def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        return await self._call(lambda storage: storage.read(key))

    async def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply every operation or none (:class:`ConflictError`); the new versions.

        Commits made while the thread is busy wait in a queue, and the thread applies all
        those waiting as one group (:meth:`SQLiteStorage.commit_group`): each atomically
        and on its own, one fsync for the group. Each await returns once its commit is
        durable.
        """
        check_operations(operations)
        batch = builtins.list(operations)  # the caller may change its list after cancelling
        waiter: Future[tuple[int, ...]] = Future()
        with self._queue_lock:
            self._queue.append((batch, waiter))
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._executor.submit(self._drain)
            except RuntimeError:  # shut down
                with self._queue_lock:
                    self._queue.clear()
                    self._draining = False
                raise InternalError("storage error: closed") from None
        # Cancelling this await cancels ``waiter`` only if its group has not started.
        return await asyncio.wrap_future(waiter)

    def _drain(self) -> None:
        """On the thread: commit the queued commits, a group at a time, until none wait."""
        while True:
            with self._queue_lock:
                waiting, self._queue = self._queue, []
                if not waiting:
                    self._draining = False
                    return
            group = [(ops, w) for ops, w in waiting if w.set_running_or_notify_cancel()]
            if not group:
                continue
            try:
                results = self._opened().commit_group([ops for ops, _ in group])
            except BaseException as exc:  # the storage failed: every commit of the group
                for _, w in group:
                    w.set_exception(exc)
                continue
            for (_, w), result in zip(group, results, strict=True):
                if isinstance(result, Exception):
                    w.set_exception(result)
                else:
                    w.set_result(result)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        return await self._call(lambda storage: storage.list(prefix))

    async def expired(self, prefix: str, before: float, limit: int) -> builtins.list[Document]:
        """At most ``limit`` documents under ``prefix`` expiring by ``before``, soonest first."""
        return await self._call(lambda storage: storage.expired(prefix, before, limit))

    async def aclose(self) -> None:
        """Close the connection and end the thread, after the calls already made."""
        try:
            closing = self._executor.submit(self._close)
        except RuntimeError:
            return  # already closed
        self._executor.shutdown(wait=False)
        await asyncio.shield(asyncio.wrap_future(closing))

    def _close(self) -> None:
        if self._storage is not None:
            self._storage.close()

    async def __aenter__(self) -> AsyncSQLiteStorage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
