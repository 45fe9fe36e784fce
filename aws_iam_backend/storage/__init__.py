"""Storage implementations of :class:`aws_iam_backend.interfaces.Storage`.

- :class:`MemoryStorage`: in-process, for tests and throwaway servers;
- :class:`SQLiteStorage`: the embedded default, one file shared by threads and processes;
- :func:`open_storage`: either, from a URL (``memory://``, ``sqlite:///<path>``).
"""

from __future__ import annotations

from ..interfaces import Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

_SQLITE_SCHEME = "sqlite:///"


def open_storage(url: str) -> Storage:
    """The storage named by ``url``.

    ``memory://`` is a fresh :class:`MemoryStorage`. ``sqlite:///<path>`` opens
    :class:`SQLiteStorage` at ``<path>`` as written, SQLAlchemy-style:
    ``sqlite:///vault.db`` is relative to the working directory and
    ``sqlite:////var/lib/aws-auth/vault.db`` is absolute. Anything else raises
    :class:`ValueError` (the message never repeats the URL, which may hold credentials).
    """
    if url == "memory://":
        return MemoryStorage()
    if url.startswith(_SQLITE_SCHEME):
        path = url[len(_SQLITE_SCHEME) :]
        if not path or path == ":memory:":
            raise ValueError("sqlite storage URL needs a file path: sqlite:///<path>")
        return SQLiteStorage(path)
    raise ValueError("unsupported storage URL: use memory:// or sqlite:///<path>")


__all__ = ["MemoryStorage", "SQLiteStorage", "open_storage"]
