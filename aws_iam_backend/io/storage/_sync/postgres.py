# Generated from ../_async/postgres.py by scripts/unasync.py: do not edit.
"""PostgreSQL storage: one table shared by any number of threads, processes and hosts.

:class:`PostgresStorage` keeps every document in ``aws_iam_backend_kv`` and takes
connections from a :class:`psycopg_pool.ConnectionPool`. The schema is created and
migrated when an instance opens, under a transaction-scoped advisory lock, so several
instances may start at once against a fresh database.

Writes are conditioned row by row (``INSERT ... ON CONFLICT``, ``UPDATE``/``DELETE ...
WHERE version = N``) in one READ COMMITTED transaction, in key order so that two
commits never wait on each other in opposite orders. Versions come from one sequence,
so they never repeat, even for a key deleted and created again.

Round trips: a read, a list, a scan for expired documents and a one-operation commit
take one each (a single statement in autocommit mode is its own transaction); a commit
of several operations takes two in pipeline mode (``BEGIN``, the statements and a sync,
then ``COMMIT`` or ``ROLLBACK``). A pooled connection is pinged only when its socket has
something to read while idle (the server closed it or is about to), so a healthy
connection costs no extra round trip.

Credentials and TLS settings come from the URL (``password``, ``sslmode``,
``sslrootcert``, ...) or libpq's environment (``PGPASSWORD``, ``PGSSLMODE``, ...); the
URL is passed through and never logged or repeated in an error.
"""

from __future__ import annotations

import logging
import math
import os
import random
import select
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from types import TracebackType
from typing import Any, Final, TypeVar

import attrs
import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from aws_iam_backend.errors import ConflictError, InternalError, StorageUnavailableError
from aws_iam_backend.io.concurrency import Lock, Result, open_eagerly, sleep
from aws_iam_backend.io.protocols import ABSENT, Check, Delete, Document, Operation, Put
from aws_iam_backend.io.storage.memory import decode_document, encode_document
from aws_iam_backend.io.storage.ops import check_operations, prefix_end

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Connection = psycopg.Connection[TupleRow]
_Rows = list[TupleRow]
_Versions = list[int]
_Statements = list["_Statement"]
_Documents = list[Document]

SCHEMA_TABLE: Final = "aws_iam_backend_schema"
KV_TABLE: Final = "aws_iam_backend_kv"

MIGRATION_LOCK: Final = 0x6177_735F_6961_6D6B
"""``pg_advisory_xact_lock`` key held while the schema is checked and migrated."""

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the documents, the index tidying scans use, and the version sequence.
    (
        "CREATE SEQUENCE aws_iam_backend_version_seq AS bigint",
        """CREATE TABLE aws_iam_backend_kv (
            key text COLLATE "C" PRIMARY KEY,
            value text NOT NULL,
            version bigint NOT NULL,
            expires_at double precision
        )""",
        "CREATE INDEX aws_iam_backend_kv_expires_at ON aws_iam_backend_kv (expires_at, key) "
        "WHERE expires_at IS NOT NULL",
    ),
)
"""Migration ``n`` is ``MIGRATIONS[n - 1]``; append only, never edit one once released."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_TX_ATTEMPTS = 5
"""Tries of a transaction that hits a serialization failure or a deadlock."""


_CREATE_SCHEMA_TABLE = (
    "CREATE TABLE aws_iam_backend_schema "
    "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
_SCHEMA_VERSION = "SELECT max(version) FROM aws_iam_backend_schema"
_RECORD_MIGRATION = "INSERT INTO aws_iam_backend_schema (version) VALUES (%s)"

_SELECT = "SELECT value, version, expires_at FROM aws_iam_backend_kv WHERE key = %s"
_LIST = "SELECT key FROM aws_iam_backend_kv WHERE key >= %s ORDER BY key"
_LIST_BOUNDED = "SELECT key FROM aws_iam_backend_kv WHERE key >= %s AND key < %s ORDER BY key"
_EXPIRED = (
    "SELECT key, value, version, expires_at FROM aws_iam_backend_kv "
    "WHERE expires_at <= %s AND key >= %s ORDER BY expires_at, key LIMIT %s"
)
_EXPIRED_BOUNDED = (
    "SELECT key, value, version, expires_at FROM aws_iam_backend_kv "
    "WHERE expires_at <= %s AND key >= %s AND key < %s ORDER BY expires_at, key LIMIT %s"
)
_UPSERT = (
    "INSERT INTO aws_iam_backend_kv (key, value, version, expires_at) "
    "VALUES (%s, %s, nextval('aws_iam_backend_version_seq'), %s) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, "
    "expires_at = EXCLUDED.expires_at RETURNING version"
)
_INSERT = (
    "INSERT INTO aws_iam_backend_kv (key, value, version, expires_at) "
    "VALUES (%s, %s, nextval('aws_iam_backend_version_seq'), %s) "
    "ON CONFLICT (key) DO NOTHING RETURNING version"
)
_UPDATE = (
    "UPDATE aws_iam_backend_kv SET value = %s, version = nextval('aws_iam_backend_version_seq'), "
    "expires_at = %s WHERE key = %s AND version = %s RETURNING version"
)
_DELETE = "DELETE FROM aws_iam_backend_kv WHERE key = %s RETURNING version"
_CHECK = "SELECT version FROM aws_iam_backend_kv WHERE key = %s AND version = %s FOR SHARE"
_DELETE_AT = "DELETE FROM aws_iam_backend_kv WHERE key = %s AND version = %s RETURNING version"
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"

_UNAVAILABLE_SQLSTATES = frozenset({"25006", "53300", "57P01", "57P02", "57P03", "57P04"})
"""Beyond class 08: read-only (a standby after failover), too many connections,
shutdowns, and a server not yet accepting connections."""


@attrs.frozen
class _Statement:
    """One operation as SQL: ``conditional`` when no returned row means a conflict."""

    key: str
    sql: str
    params: tuple[Any, ...]
    conditional: bool
    delete: bool


def _storable(text: str) -> bool:
    """Whether PostgreSQL ``text`` can hold ``text`` (UTF-8, no NUL)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _socket_readable(conn: _Connection) -> bool:
    """Whether an idle connection's socket has data or a hang-up waiting (True on doubt)."""
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    except (OSError, ValueError, psycopg.Error):
        return True


def _is_unavailable(exc: psycopg.Error) -> bool:
    """Whether ``exc`` means the server cannot be reached or cannot serve right now."""
    sqlstate = exc.sqlstate
    if sqlstate is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


class PostgresStorage:
    """Documents in ``aws_iam_backend_kv`` of the PostgreSQL database at ``url``.

    ``url`` is a libpq URI or ``key=value`` string. The pool keeps ``min_size`` to
    ``max_size`` connections. ``connect_timeout`` (seconds) bounds connecting and
    waiting for a pooled connection; while the server cannot be reached every call
    raises :class:`StorageUnavailableError` within about that long, and the same
    instance works again once the server is back.

    :meth:`open` connects, creates or migrates the schema and opens the pool: it raises
    :class:`StorageUnavailableError` if the server cannot be reached and
    :class:`InternalError` if the schema is newer than this code or cannot be migrated
    (the constructor raises :class:`ValueError` if ``url`` cannot be parsed). The sync
    storage opens in its constructor; the async one cannot await there, so it opens on
    its first call unless its ``open()`` was awaited (or ``async with`` used) before.
    ``migrated`` lists the migrations this instance applied (empty when the schema was
    already current).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            # The parser's message may quote part of the URL, password included.
            raise ValueError("invalid PostgreSQL URL") from None
        self._location = _location(params)
        self._secrets = tuple(
            s
            for s in (str(params.get("password") or ""), os.environ.get("PGPASSWORD", ""), url)
            if s
        )
        if not connect_timeout > 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        self._timeout = float(connect_timeout)
        connect_kwargs: dict[str, Any] = {"connect_timeout": max(2, math.ceil(self._timeout))}
        if "tcp_user_timeout" not in params:
            # Give up on a connection whose sent data goes unacknowledged this long (a
            # vanished host) instead of the kernel's retransmission limit (~15 minutes).
            connect_kwargs["tcp_user_timeout"] = max(1000, int(self._timeout * 1000))
        self._pipeline = psycopg.Pipeline.is_supported()
        self._url = url
        self._connect_kwargs = connect_kwargs

        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            url,
            kwargs={"autocommit": True, **connect_kwargs},
            min_size=min_size,
            max_size=max_size,
            timeout=self._timeout,
            # Give up a failing reconnection soon, so that the next request starts a
            # fresh attempt instead of waiting out an exponential backoff.
            reconnect_timeout=max(2 * self._timeout, 5.0),
            name="aws_iam_backend",
            open=False,
        )
        self.migrated: tuple[int, ...] = ()
        self._opened = False
        self._closed = False
        self._opening = Lock()
        open_eagerly(self)

    def __repr__(self) -> str:
        return f"PostgresStorage({self._location})"

    def open(self) -> None:
        """Create or migrate the schema and fill the pool (once; later calls return at once).

        :class:`StorageUnavailableError` if no connection could be made in time; a later
        call (or the next storage call) tries again.
        """
        with self._opening:
            if self._opened:
                return
            if self._closed:
                raise InternalError("storage error: closed")
            self.migrated = self._migrate()
            try:
                self._pool.open(wait=True, timeout=self._timeout)
            except PoolTimeout:
                raise self._unavailable("no connection could be opened in time") from None
            self._opened = True

    # -- the Storage protocol ------------------------------------------------------------

    def read(self, key: str) -> Document | None:
        """The document at ``key``, or None."""
        if not _storable(key):
            return None

        def query(conn: _Connection) -> TupleRow | None:
            cursor = conn.execute(_SELECT, (key,))
            return cursor.fetchone()

        row = self._run(query)
        if row is None:
            return None
        return Document(key, decode_document(row[0]), int(row[1]), row[2])

    def commit(self, operations: Sequence[Operation]) -> tuple[int, ...]:
        """Apply every operation or none (:class:`ConflictError`); the new versions."""
        check_operations(operations)
        statements = [_statement(op) for op in operations]
        # One lock order for every commit, so two commits never deadlock.
        order = sorted(range(len(statements)), key=lambda i: statements[i].key)
        ordered = [statements[i] for i in order]

        def apply(conn: _Connection) -> _Versions:
            return self._apply(conn, ordered)

        applied = self._run(apply)
        versions = [0] * len(statements)
        for position, index in enumerate(order):
            versions[index] = applied[position]
        return tuple(versions)

    def list(self, prefix: str) -> list[str]:
        """Sorted keys starting with ``prefix``, with the prefix removed."""
        if not _storable(prefix):
            return []
        end = prefix_end(prefix)

        def query(conn: _Connection) -> _Rows:
            if end is None:
                cursor = conn.execute(_LIST, (prefix,))
            else:
                cursor = conn.execute(_LIST_BOUNDED, (prefix, end))
            return cursor.fetchall()

        return [str(row[0])[len(prefix) :] for row in self._run(query)]

    def expired(self, prefix: str, before: float, limit: int) -> _Documents:
        """At most ``limit`` documents under ``prefix`` expiring by ``before``, soonest first."""
        if limit <= 0 or not _storable(prefix):
            return []
        end = prefix_end(prefix)
        cutoff = float(before)

        def query(conn: _Connection) -> _Rows:
            if end is None:
                cursor = conn.execute(_EXPIRED, (cutoff, prefix, int(limit)))
            else:
                cursor = conn.execute(_EXPIRED_BOUNDED, (cutoff, prefix, end, int(limit)))
            return cursor.fetchall()

        return [
            Document(str(key), decode_document(value), int(version), expires_at)
            for key, value, version, expires_at in self._run(query)
        ]

    def close(self) -> None:
        """Close every connection; later calls raise :class:`InternalError`."""
        self._closed = True
        self._pool.close()

    def __enter__(self) -> PostgresStorage:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------

    def _apply(self, conn: _Connection, statements: _Statements) -> _Versions:
        """Run ``statements`` as one transaction; their versions, or :class:`ConflictError`."""
        if len(statements) == 1:
            # A single statement in autocommit mode is a transaction of its own.
            (statement,) = statements
            cursor = conn.execute(statement.sql, statement.params)
            row = cursor.fetchone()
            if row is None and statement.conditional:
                raise ConflictError(statement.key)
            return [0 if statement.delete or row is None else int(row[0])]
        try:
            # One statement (every operation a CTE), a transaction of its own in
            # autocommit: one round trip. A failed condition aborts it by a division by
            # zero; the statement-by-statement transaction below then names the key.
            sql, params = _combined(statements)
            cursor = conn.execute(sql, params)
            combined = cursor.fetchone()
        except psycopg.errors.DivisionByZero:
            combined = None
        if combined is not None:
            return [
                0 if statement.delete or version is None else int(version)
                for statement, version in zip(statements, combined, strict=False)
            ]
        conflict: str | None = None
        try:
            with conn.pipeline() if self._pipeline else nullcontext() as pipeline:
                conn.execute(_BEGIN)
                cursors = [conn.execute(s.sql, s.params) for s in statements]
                if pipeline is not None:
                    pipeline.sync()
                rows = [cursor.fetchone() for cursor in cursors]
                for statement, row in zip(statements, rows, strict=True):
                    if row is None and statement.conditional:
                        conflict = statement.key
                        break
                conn.execute("ROLLBACK" if conflict is not None else "COMMIT")
        except BaseException:
            _abandon(conn)
            raise
        if conflict is not None:
            raise ConflictError(conflict)
        return [
            0 if statement.delete or row is None else int(row[0])
            for statement, row in zip(statements, rows, strict=True)
        ]

    def _run(self, work: Callable[[_Connection], Result[_T]]) -> _T:
        """``work`` on a pooled connection, retried on serialization failures and deadlocks;
        database errors become :class:`StorageUnavailableError` or :class:`InternalError`."""
        if not self._opened:
            self.open()
        for attempt in range(1, _TX_ATTEMPTS + 1):
            try:
                conn = self._connection()
                try:
                    return work(conn)
                finally:
                    self._pool.putconn(conn)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
                if attempt == _TX_ATTEMPTS:
                    raise InternalError(f"storage error: {exc.sqlstate}") from exc
                sleep(random.uniform(0, 0.005 * 2**attempt))
            except PoolTimeout:
                raise self._unavailable(
                    f"no connection available within {self._timeout:g}s"
                ) from None
            except PoolClosed:
                raise InternalError("storage error: closed") from None
            except psycopg.Error as exc:
                raise self._translate(exc) from exc
            except UnicodeError as exc:
                raise InternalError(f"storage error: {type(exc).__name__}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> _Connection:
        """A healthy pooled connection (give it back with ``putconn``): one whose idle socket
        has something to read (the server closed it, or a notice) is pinged and, if dead,
        replaced."""
        deadline = time.monotonic() + self._timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PoolTimeout()
            conn = self._pool.getconn(timeout=remaining)
            if _healthy(conn):
                break
            conn.close()
            self._pool.putconn(conn)  # the pool discards it and opens a replacement
        return conn

    # -- schema --------------------------------------------------------------------------

    def _migrate(self) -> tuple[int, ...]:
        """Create or migrate the schema on a connection of its own; the versions applied."""
        try:
            conn = psycopg.Connection.connect(
                self._url, autocommit=True, **self._connect_kwargs
            )
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        try:
            with conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                encoding = (conn.execute("SHOW server_encoding")).fetchone()
                if encoding is None or str(encoding[0]).upper() not in {"UTF8", "UTF-8"}:
                    raise InternalError(
                        "storage error: the PostgreSQL database must use the UTF8 encoding"
                    )
                exists = (
                    conn.execute("SELECT to_regclass(%s)", (SCHEMA_TABLE,))
                ).fetchone()
                if exists is None or exists[0] is None:
                    conn.execute(_CREATE_SCHEMA_TABLE)
                found = (conn.execute(_SCHEMA_VERSION)).fetchone()
                current = int(found[0]) if found is not None and found[0] is not None else 0
                if current > SCHEMA_VERSION:
                    raise InternalError(
                        f"storage error: the PostgreSQL schema at {self._location} is at "
                        f"version {current}, newer than this aws_iam_backend supports "
                        f"({SCHEMA_VERSION}); upgrade aws_iam_backend"
                    )
                applied = tuple(range(current + 1, SCHEMA_VERSION + 1))
                for version in applied:
                    for sql in MIGRATIONS[version - 1]:
                        conn.execute(sql)
                    conn.execute(_RECORD_MIGRATION, (version,))
        except psycopg.Error as exc:
            raise self._translate(exc, during="schema migration") from exc
        if applied:
            logger.info(
                "migrated PostgreSQL schema at %s to version %s", self._location, applied[-1]
            )
        return applied

    # -- errors --------------------------------------------------------------------------

    def _translate(self, exc: psycopg.Error, during: str = "") -> InternalError:
        if _is_unavailable(exc):
            return self._unavailable(self._reason(exc))
        name = exc.sqlstate or type(exc).__name__
        return InternalError(f"storage error: {during + ' failed: ' if during else ''}{name}")

    def _unavailable(self, reason: str) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"storage error: PostgreSQL at {self._location} is unavailable: {reason}"
        )

    def _reason(self, exc: psycopg.Error) -> str:
        """A one-line reason from ``exc``, with any secret blanked out."""
        primary = exc.diag.message_primary if exc.sqlstate else None
        if primary:
            reason = primary
        else:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            failed = [line for line in lines if "failed: " in line]
            if failed:
                reason = failed[-1].rsplit("failed: ", 1)[1]
            else:
                reason = lines[0] if lines else type(exc).__name__
        reason = reason.removeprefix("FATAL:").strip()
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        if len(reason) > 200:
            reason = reason[:197] + "..."
        return reason or type(exc).__name__


def _statement(op: Operation) -> _Statement:
    """``op`` as SQL, its value encoded; :class:`InternalError` if PostgreSQL cannot
    store its key."""
    if not _storable(op.key):
        raise InternalError("storage error: key is not storable text (NUL or not UTF-8)")
    if isinstance(op, Check):  # the row stays locked (shared) until the commit ends
        return _Statement(op.key, _CHECK, (op.key, op.expect), conditional=True, delete=False)
    if isinstance(op, Delete):
        if op.expect is None:
            return _Statement(op.key, _DELETE, (op.key,), conditional=False, delete=True)
        return _Statement(op.key, _DELETE_AT, (op.key, op.expect), conditional=True, delete=True)
    assert isinstance(op, Put)
    text = encode_document(op.value)
    expires = None if op.expires_at is None else float(op.expires_at)
    if op.expect is None:
        return _Statement(op.key, _UPSERT, (op.key, text, expires), conditional=False, delete=False)
    if op.expect == ABSENT:
        return _Statement(op.key, _INSERT, (op.key, text, expires), conditional=True, delete=False)
    return _Statement(
        op.key, _UPDATE, (text, expires, op.key, op.expect), conditional=True, delete=False
    )


def _combined(statements: _Statements) -> tuple[str, tuple[Any, ...]]:
    """``statements`` as one: each a data-modifying CTE, the result their versions, and a
    division by zero unless every conditional one returned its row (all or nothing)."""
    ctes = ", ".join(f"c{i} AS ({statement.sql})" for i, statement in enumerate(statements))
    # Only this module's constant statements and counters go in the text; every value is
    # a parameter.
    versions = ", ".join(
        f"(SELECT version FROM c{i})"  # noqa: S608
        for i in range(len(statements))
    )
    conditional = [i for i, statement in enumerate(statements) if statement.conditional]
    guard = ""
    if conditional:  # found / wanted is 1 when every row came back, else 0
        found = " + ".join(f"(SELECT count(*) FROM c{i})" for i in conditional)  # noqa: S608
        guard = f", 1 / (({found}) / {len(conditional)})"
    params = tuple(param for statement in statements for param in statement.params)
    return f"WITH {ctes} SELECT {versions}{guard}", params


def _healthy(conn: _Connection) -> bool:
    """Whether a connection just taken from the pool can be used."""
    if conn.broken or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    if not _socket_readable(conn):
        return True
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error:
        return False
    return True


def _abandon(conn: _Connection) -> None:
    """Roll back what a failed commit left open (the pool discards a broken connection)."""
    if conn.broken or conn.closed:
        return
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _location(params: dict[str, Any]) -> str:
    """``host:port/dbname`` from parsed connection parameters and libpq's environment."""
    env = os.environ
    host = params.get("host") or params.get("hostaddr") or env.get("PGHOST") or "localhost"
    port = params.get("port") or env.get("PGPORT") or "5432"
    dbname = (
        params.get("dbname")
        or env.get("PGDATABASE")
        or params.get("user")
        or env.get("PGUSER")
        or "postgres"
    )
    return f"{host}:{port}/{dbname}"


__all__ = ["KV_TABLE", "MIGRATIONS", "SCHEMA_VERSION", "PostgresStorage"]
