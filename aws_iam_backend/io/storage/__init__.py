"""Implementations of the :class:`~aws_iam_backend.io.protocols.Storage` contract.

- :class:`MemoryStorage`: in-process, for tests and throwaway servers;
- :class:`SQLiteStorage`: the embedded default, one file shared by threads and processes;
- ``PostgresStorage`` (:mod:`aws_iam_backend.io.storage.postgres`, extra ``postgresql``):
  one database shared by any number of servers;
- wrappers: :class:`~.prefixed.PrefixedStorage`, :class:`~.cached.CachedStorage`,
  :class:`~.sealed.SealedStorage` (encryption at rest);
- :func:`open_storage`: one of them from a URL; :mod:`.ops`: get/put/create/update.
"""

from __future__ import annotations

from aws_iam_backend.io.protocols import Storage
from aws_iam_backend.io.storage.memory import MemoryStorage
from aws_iam_backend.io.storage.sqlite import SQLiteStorage

_SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


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
        path = url[len(_SQLITE_SCHEME) :]
        if not path or path == ":memory:":
            raise ValueError("sqlite storage URL needs a file path: sqlite:///<path>")
        return SQLiteStorage(path)
    if url.startswith(POSTGRES_SCHEMES):
        try:
            from aws_iam_backend.io.storage.postgres import PostgresStorage
        except ImportError:
            raise ValueError(
                "postgresql storage needs psycopg: pip install 'aws_iam_backend[postgresql]'"
            ) from None
        return PostgresStorage(url)
    raise ValueError("unsupported storage URL: use memory://, sqlite:///<path> or postgresql://...")


__all__ = ["POSTGRES_SCHEMES", "MemoryStorage", "SQLiteStorage", "open_storage"]
