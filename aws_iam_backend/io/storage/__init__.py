"""Implementations of the :class:`~aws_iam_backend.io.protocols.Storage` contract, and of its
async twin :class:`~aws_iam_backend.io.protocols.AsyncStorage`.

- :class:`MemoryStorage`, :class:`AsyncMemoryStorage`: in-process, for tests and throwaway
  servers;
- :class:`SQLiteStorage`: the embedded default, one file shared by threads and processes;
  :class:`AsyncSQLiteStorage` runs one on a thread of its own;
- ``PostgresStorage``, ``AsyncPostgresStorage`` (:mod:`._sync.postgres`,
  :mod:`._async.postgres`, extra ``postgresql``): one database shared by any number of
  servers;
- wrappers in :mod:`._sync` and :mod:`._async`: ``PrefixedStorage``, ``CachedStorage``,
  ``SealedStorage`` (encryption at rest) and their ``Async`` twins;
- :func:`open_storage`, :func:`open_async_storage`: one of them from a URL;
  :mod:`._sync.ops`, :mod:`._async.ops`: get/put/create/delete/update.

Each ``_sync`` module is generated from its ``_async`` source by ``scripts/unasync.py``.
"""

from __future__ import annotations

from aws_iam_backend.io.protocols import AsyncStorage, Storage
from aws_iam_backend.io.storage.memory import AsyncMemoryStorage, MemoryStorage
from aws_iam_backend.io.storage.sqlite import AsyncSQLiteStorage, SQLiteStorage

_SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_UNSUPPORTED = "unsupported storage URL: use memory://, sqlite:///<path> or postgresql://..."
_NO_PSYCOPG = "postgresql storage needs psycopg: pip install 'aws_iam_backend[postgresql]'"


def _sqlite_path(url: str) -> str:
    path = url[len(_SQLITE_SCHEME) :]
    if not path or path == ":memory:":
        raise ValueError("sqlite storage URL needs a file path: sqlite:///<path>")
    return path


def open_storage(url: str) -> Storage:
    """The storage named by ``url``.

    ``memory://`` is a fresh :class:`MemoryStorage`. ``sqlite:///<path>`` opens
    :class:`SQLiteStorage` at ``<path>`` as written, SQLAlchemy-style:
    ``sqlite:///vault.db`` is relative to the working directory and
    ``sqlite:////var/lib/aws-auth/vault.db`` is absolute. ``postgresql://...`` (libpq
    URL: password, ``sslmode`` and the rest in the URL or libpq's environment) opens
    ``PostgresStorage``. Anything else raises :class:`ValueError` (the message never
    repeats the URL, which may hold credentials).
    """
    if url == "memory://":
        return MemoryStorage()
    if url.startswith(_SQLITE_SCHEME):
        return SQLiteStorage(_sqlite_path(url))
    if url.startswith(POSTGRES_SCHEMES):
        try:
            from aws_iam_backend.io.storage._sync.postgres import PostgresStorage
        except ImportError:
            raise ValueError(_NO_PSYCOPG) from None
        return PostgresStorage(url)
    raise ValueError(_UNSUPPORTED)


def open_async_storage(url: str) -> AsyncStorage:
    """The async storage named by ``url``: the URLs of :func:`open_storage`.

    ``memory://`` is a fresh :class:`AsyncMemoryStorage`, ``sqlite:///<path>`` an
    :class:`AsyncSQLiteStorage`, ``postgresql://...`` an ``AsyncPostgresStorage``. Nothing
    blocks and nothing connects here: a SQLite file is opened on the storage's own thread,
    a PostgreSQL database on the first call; await the storage's ``open()`` to find out
    at startup whether it can be opened. :class:`ValueError` as for :func:`open_storage`.
    """
    if url == "memory://":
        return AsyncMemoryStorage()
    if url.startswith(_SQLITE_SCHEME):
        return AsyncSQLiteStorage(_sqlite_path(url))
    if url.startswith(POSTGRES_SCHEMES):
        try:
            from aws_iam_backend.io.storage._async.postgres import AsyncPostgresStorage
        except ImportError:
            raise ValueError(_NO_PSYCOPG) from None
        return AsyncPostgresStorage(url)
    raise ValueError(_UNSUPPORTED)


__all__ = [
    "POSTGRES_SCHEMES",
    "AsyncMemoryStorage",
    "AsyncSQLiteStorage",
    "MemoryStorage",
    "SQLiteStorage",
    "open_async_storage",
    "open_storage",
]
